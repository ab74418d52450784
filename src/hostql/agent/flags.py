"""osquery's flags: names, types, defaults, and the values in force.

The table below is the single list of flags, so ``osquery_flags``, ``--help``,
flagfiles and config ``options`` all agree.  Names, gflags type names and
defaults follow osquery; descriptions are our own words.  The shell and the
daemon parse their command lines with :func:`parse_argv` into a
:class:`FlagValues`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence

# Neither dataclasses nor pathlib: the shell imports this module at every
# start, and each would cost it several milliseconds.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

FlagValue = bool | int | float | str


class Flag:
    """One flag: osquery's name, gflags type name, default and our description.

    ``cli_only`` flags are needed before a config can be fetched, so a config
    ``options`` entry for one is refused (osquery: "set via config file will be
    ignored").
    """

    __slots__ = ("cli_only", "default", "description", "hidden", "name", "shell_only", "type")

    def __init__(self, name: str, type: str, default: FlagValue, description: str, shell_only: bool = False,
                 cli_only: bool = False, hidden: bool = False) -> None:
        self.name = name
        self.type = type  # bool, string, int32, uint32, uint64, double
        self.default = default
        self.description = description
        self.shell_only = shell_only
        self.cli_only = cli_only
        self.hidden = hidden

    def __repr__(self) -> str:
        return f"Flag({self.name!r}, {self.type!r}, {self.default!r})"


def _f(name: str, type_: str, default: FlagValue, description: str, **kw: bool) -> Flag:
    return Flag(name, type_, default, description, **kw)


def host_platform(platform: str | None = None) -> str:
    """osquery's name for the running OS family: linux, darwin, windows, freebsd."""
    plat = sys.platform if platform is None else platform
    if plat.startswith("win"):
        return "windows"
    if plat.startswith("freebsd"):
        return "freebsd"
    return plat if plat == "darwin" else "linux"


def default_paths(platform: str | None = None) -> dict[str, str]:
    """The compiled-in locations of files, per OS family.

    Linux and macOS keep osquery's paths so hostql is a drop-in replacement;
    Windows mirrors osquery's ``C:\\Program Files\\osquery`` layout under
    ``C:\\Program Files\\hostql``.
    """
    plat = host_platform(platform)
    if plat == "windows":
        home = "C:\\Program Files\\hostql"
        return {
            "config_path": f"{home}\\osquery.conf",
            "flagfile": f"{home}\\osquery.flags",
            "database_path": f"{home}\\osquery.db",
            "logger_path": f"{home}\\log",
            "pidfile": f"{home}\\osqueryd.pidfile",
            "extensions_socket": "\\\\.\\pipe\\hostql.em",
            "extensions_autoload": f"{home}\\extensions.load",
            "tls_server_certs": f"{home}\\certs\\certs.pem",
            "packs": f"{home}\\packs",
        }
    config_dir = "/var/osquery" if plat == "darwin" else "/etc/osquery"
    share = "/var/osquery" if plat == "darwin" else "/opt/osquery/share/osquery"
    return {
        "config_path": f"{config_dir}/osquery.conf",
        "flagfile": f"{config_dir}/osquery.flags.default",
        "database_path": "/var/osquery/osquery.db",
        "logger_path": "/var/log/osquery/",
        "pidfile": "/var/osquery/osqueryd.pidfile" if plat == "darwin" else "/var/run/osqueryd.pidfile",
        "extensions_socket": "/var/osquery/osquery.em",
        "extensions_autoload": f"{config_dir}/extensions.load",
        "tls_server_certs": f"{share}/certs/certs.pem",
        "packs": f"{share}/packs",
    }


_P = default_paths()

# Grouped as osquery's docs group them.
FLAG_DEFINITIONS: tuple[Flag, ...] = (
    # shell (osqueryi) input and output
    _f("json", "bool", False, "Print each row as a JSON object", shell_only=True),
    _f("json_pretty", "bool", False, "Print the result as pretty-printed JSON", shell_only=True),
    _f("csv", "bool", False, "Print rows as comma-separated values", shell_only=True),
    _f("line", "bool", False, "Print one 'column = value' line per value", shell_only=True),
    _f("list", "bool", False, "Print rows as separator-delimited values", shell_only=True),
    _f("header", "bool", True, "Print the column names before the rows", shell_only=True),
    _f("separator", "string", "|", "Separator for list and csv modes", shell_only=True),
    _f("nullvalue", "string", "", "Text printed and logged for NULL values"),
    _f("planner", "bool", False, "Print the virtual table planner's decisions", shell_only=True),
    _f("A", "string", "", "Select all rows from a table", shell_only=True),
    _f("L", "bool", False, "List all tables", shell_only=True),
    _f("query_file", "string", "", "Read SQL from this file", shell_only=True),
    _f("pack", "string", "", "Run the queries of this config pack and exit", shell_only=True),
    _f("connect", "string", "", "Send queries to a running daemon's extensions socket", shell_only=True),
    _f("output", "string", "", "Write results to this file ('-' is stdout)", shell_only=True),
    _f("profile", "int32", 0, "Run the query this many times and report timings", shell_only=True),
    _f("profile_delay", "int32", 0, "Seconds to pause before profiling", shell_only=True, hidden=True),
    # process control
    _f("flagfile", "string", "", "Read more flags from this file, one per line", cli_only=True),
    _f("D", "bool", False, "Run as the daemon", cli_only=True),
    _f("S", "bool", False, "Run as the shell", cli_only=True),
    _f("daemonize", "bool", False, "Detach from the terminal and run in the background", cli_only=True),
    _f("force", "bool", False, "Stop an already running daemon named in the pidfile", cli_only=True),
    _f("pidfile", "string", _P["pidfile"], "Path of the daemon's pidfile lock", cli_only=True),
    _f("alarm_timeout", "uint64", 15, "Seconds allowed for a clean shutdown before exiting hard", cli_only=True),
    _f("allow_unsafe", "bool", False, "Allow running as root with unsafe file permissions", cli_only=True),
    _f("install", "bool", False, "Install the daemon as a Windows service", cli_only=True),
    _f("uninstall", "bool", False, "Remove the Windows service", cli_only=True),
    # general
    _f("verbose", "bool", False, "Enable verbose informational messages"),
    _f("utc", "bool", True, "Convert all timestamps to UTC"),
    _f("host_identifier", "string", "hostname",
       "How the host identifies itself: hostname, uuid, instance, ephemeral, specified"),
    _f("specified_identifier", "string", "", "Identifier used when host_identifier is 'specified'"),
    _f("disable_logging", "bool", False, "Do not log status lines or results"),
    _f("disable_caching", "bool", False, "Disable scheduled query caching"),
    _f("disable_tables", "string", "", "Comma-separated tables to disable"),
    _f("enable_tables", "string", "", "Comma-separated tables to enable; all others are disabled"),
    _f("disable_hash_cache", "bool", False, "Do not cache hashes of unchanged files"),
    _f("hash_cache_max", "uint32", 500, "Number of file hashes kept in the cache"),
    _f("read_max", "uint64", 52428800, "Largest file the agent will read, in bytes"),
    _f("table_delay", "uint64", 0, "Milliseconds to pause between table scans in a JOIN"),
    _f("enable_foreign", "bool", False, "Enable tables of other platforms (they return no rows)"),
    _f("value_max", "uint64", 512, "Longest string value some tables return, in bytes"),
    _f("worker_threads", "int32", 4, "Accepted for old configs; has no effect", hidden=True),
    # config
    _f("config_plugin", "string", "filesystem", "Config plugin name: filesystem or tls", cli_only=True),
    _f("config_path", "string", _P["config_path"], "Path to the JSON config file", cli_only=True),
    _f("config_check", "bool", False, "Check the config, report problems and exit", cli_only=True),
    _f("config_dump", "bool", False, "Print the config sources as JSON and exit", cli_only=True),
    _f("config_refresh", "uint64", 0, "Seconds between config refreshes; 0 reads it once", cli_only=True),
    _f("config_accelerated_refresh", "uint64", 300, "Refresh interval after a failed config fetch", cli_only=True),
    _f("config_enable_backup", "bool", False, "Keep the last good config and use it when a fetch fails",
       cli_only=True),
    _f("config_tls_endpoint", "string", "", "TLS endpoint path for config retrieval", cli_only=True),
    _f("config_tls_max_attempts", "uint64", 3, "Attempts per TLS config request", cli_only=True),
    # schedule and packs
    _f("schedule_splay_percent", "uint64", 10, "Percent to splay config times"),
    _f("schedule_default_interval", "uint64", 3600, "Default interval for scheduled queries"),
    _f("schedule_timeout", "uint64", 0, "Stop the scheduler after this many seconds (testing); 0 is never"),
    _f("schedule_max_drift", "uint64", 60, "Most seconds the scheduler catches up after falling behind"),
    _f("schedule_reload", "uint64", 300, "Seconds between reloads of the scheduler's state"),
    _f("schedule_epoch", "uint64", 0, "Epoch of differential results; changing it resets every diff"),
    _f("schedule_lognames", "bool", False, "Log each scheduled query's name when it runs"),
    _f("pack_refresh_interval", "uint64", 3600, "Seconds a pack's discovery result is cached"),
    _f("pack_delimiter", "string", "_", "Delimiter between 'pack', the pack name and the query name"),
    _f("disable_decorators", "bool", False, "Do not run decorator queries"),
    _f("decorations_top_level", "bool", False, "Put decorations at the top level of log lines"),
    # logger
    _f("logger_plugin", "string", "filesystem", "Comma-separated logger plugin names", cli_only=True),
    _f("logger_path", "string", _P["logger_path"], "Directory for result and status logs"),
    _f("logger_mode", "string", "0640", "Octal file mode of log files"),
    _f("logger_event_type", "bool", True, "Log one line per added or removed row"),
    _f("logger_snapshot_event_type", "bool", False, "Log one line per row of snapshot queries"),
    _f("logger_numerics", "bool", False, "Use numeric JSON values in result logs"),
    _f("logger_min_status", "int32", 0, "Lowest status severity recorded (0 info .. 3 fatal)"),
    _f("logger_min_stderr", "int32", 0, "Lowest status severity also written to stderr"),
    _f("logger_stderr", "bool", True, "Write status lines to stderr too"),
    _f("logger_status_sync", "bool", False, "Send status lines to logger plugins immediately"),
    _f("logger_rotate", "bool", False, "Rotate the filesystem logger's result files"),
    _f("logger_rotate_size", "uint64", 26214400, "Size in bytes at which result files rotate"),
    _f("logger_rotate_max_files", "uint64", 25, "Rotated result files kept"),
    _f("logger_secondary_status_only", "bool", False, "Send only status lines to secondary loggers"),
    _f("logger_syslog_facility", "int32", 19, "Syslog facility number for the syslog logger"),
    _f("logger_syslog_prepend_cee", "bool", False, "Prefix syslog results with '@cee:'"),
    _f("logger_syslog_socket", "string", "/dev/log", "Unix socket the syslog logger writes to", hidden=True),
    _f("buffered_log_max", "uint64", 1000000, "Most buffered log lines kept; 0 is unlimited"),
    # remote (TLS)
    _f("tls_hostname", "string", "", "TLS server host[:port] for all TLS plugins", cli_only=True),
    _f("tls_server_certs", "string", _P["tls_server_certs"], "PEM bundle of trusted server certificates",
       cli_only=True),
    _f("tls_client_cert", "string", "", "PEM client certificate", cli_only=True),
    _f("tls_client_key", "string", "", "PEM client private key (no password)", cli_only=True),
    _f("proxy_hostname", "string", "", "HTTP proxy host[:port]", cli_only=True),
    _f("tls_session_reuse", "bool", True, "Reuse TLS sessions between requests", cli_only=True),
    _f("tls_session_timeout", "uint32", 3600, "Seconds a reused TLS session is kept", cli_only=True),
    _f("tls_accept_gzip", "bool", False, "Accept gzip-encoded responses", cli_only=True),
    _f("tls_disable_status_log", "bool", False, "Do not send status lines to the TLS logger"),
    _f("tls_dump", "bool", False, "Print TLS request and response bodies (debugging)", hidden=True),
    _f("enroll_tls_endpoint", "string", "", "TLS endpoint path for enrollment", cli_only=True),
    _f("enroll_secret_path", "string", "", "File holding the enrollment secret", cli_only=True),
    _f("enroll_secret_env", "string", "", "Environment variable holding the enrollment secret", cli_only=True),
    _f("enroll_always", "bool", False, "Enroll at start even when no plugin needs it", cli_only=True),
    _f("disable_enrollment", "bool", False, "Never enroll", cli_only=True),
    _f("disable_reenrollment", "bool", False, "Keep the node key when the server rejects it", cli_only=True),
    _f("tls_enroll_max_attempts", "uint64", 12, "Enrollment attempts before giving up", cli_only=True),
    _f("tls_enroll_max_interval", "uint64", 600, "Most seconds between enrollment attempts", cli_only=True),
    _f("logger_tls_endpoint", "string", "", "TLS endpoint path for logs"),
    _f("logger_tls_period", "uint64", 4, "Seconds between TLS log uploads"),
    _f("logger_tls_max_lines", "uint64", 1024, "Most log lines per TLS upload"),
    _f("logger_tls_max_linesize", "uint64", 1048576, "Longest log line sent; longer ones are dropped"),
    _f("logger_tls_backoff_max", "uint64", 3600, "Most seconds between retries of a failed upload"),
    _f("logger_tls_compress", "bool", False, "Gzip TLS log uploads"),
    # distributed queries
    _f("disable_distributed", "bool", True, "Disable distributed queries"),
    _f("distributed_plugin", "string", "tls", "Distributed query plugin name"),
    _f("distributed_interval", "uint64", 60, "Seconds between distributed query polls"),
    _f("distributed_tls_read_endpoint", "string", "", "TLS endpoint path for reading distributed queries"),
    _f("distributed_tls_write_endpoint", "string", "", "TLS endpoint path for writing distributed results"),
    _f("distributed_tls_max_attempts", "uint64", 3, "Attempts per distributed TLS request"),
    _f("distributed_denylist_duration", "uint64", 86400, "Seconds a distributed query that crashed is refused"),
    _f("distributed_loginfo", "bool", False, "Log each distributed query that runs"),
    # file carving
    _f("disable_carver", "bool", True, "Disable the file carver"),
    _f("carver_start_endpoint", "string", "", "TLS endpoint path that starts a carve", cli_only=True),
    _f("carver_continue_endpoint", "string", "", "TLS endpoint path that receives carve blocks", cli_only=True),
    _f("carver_block_size", "uint32", 8192, "Bytes per uploaded carve block", cli_only=True),
    _f("carver_compression", "bool", False, "Compress carves with zstd before upload", cli_only=True),
    _f("carver_expiry", "uint32", 86400, "Seconds carve metadata is kept", cli_only=True),
    _f("carver_disable_function", "bool", True, "Disable the carve() SQL function", cli_only=True),
    # events
    _f("disable_events", "bool", False, "Disable the events publishers and subscribers"),
    _f("events_expiry", "uint64", 3600, "Seconds buffered events are kept"),
    _f("events_max", "uint64", 50000, "Most buffered events per subscriber"),
    _f("events_optimize", "bool", True, "Event queries return only events since their last run"),
    _f("events_enforce_denylist", "bool", False, "Denylist event queries too"),
    _f("enable_file_events", "bool", False, "Enable the file integrity monitoring subscriber"),
    _f("disable_audit", "bool", True, "Disable the Linux audit publisher"),
    _f("audit_allow_config", "bool", False, "Let the agent configure the kernel audit rules"),
    _f("audit_allow_process_events", "bool", True, "Record process events from audit"),
    _f("audit_allow_sockets", "bool", False, "Record socket events from audit"),
    _f("audit_allow_fim_events", "bool", False, "Record file events from audit"),
    _f("audit_allow_user_events", "bool", False, "Record user events from audit"),
    _f("audit_persist", "bool", True, "Keep the audit netlink socket open across errors"),
    _f("audit_backlog_limit", "uint32", 4096, "Kernel audit backlog size"),
    # database
    _f("database_path", "string", _P["database_path"], "Path of the local state store", cli_only=True),
    _f("database_dump", "bool", False, "Print every key of the state store and exit", cli_only=True),
    _f("disable_database", "bool", False, "Keep state in memory only", hidden=True),
    # extensions
    _f("disable_extensions", "bool", False, "Disable extension support", cli_only=True),
    _f("extensions_socket", "string", _P["extensions_socket"], "Path to the extensions socket", cli_only=True),
    _f("extensions_autoload", "string", _P["extensions_autoload"], "File listing extensions to start",
       cli_only=True),
    _f("extensions_timeout", "string", "3", "Seconds to wait for autoloaded extensions to register",
       cli_only=True),
    _f("extensions_interval", "string", "3", "Seconds between extension health checks", cli_only=True),
    _f("extensions_require", "string", "", "Comma-separated extensions that must be running", cli_only=True),
    _f("extensions_default_index", "bool", True, "Let extension tables use the default index", cli_only=True),
    # watchdog
    _f("disable_watchdog", "bool", False, "Disable the watchdog process", cli_only=True),
    _f("watchdog_level", "int32", 0, "Watchdog limits: 0 normal, 1 restrictive, -1 off", cli_only=True),
    _f("watchdog_memory_limit", "uint64", 0, "Override the memory limit, in MB", cli_only=True),
    _f("watchdog_utilization_limit", "uint64", 0, "Override the CPU limit, in percent", cli_only=True),
    _f("watchdog_latency_limit", "uint64", 0, "Override the seconds allowed over the CPU limit", cli_only=True),
    _f("watchdog_delay", "uint64", 60, "Seconds after worker start before limits apply", cli_only=True),
    _f("watchdog_forced_shutdown_delay", "uint64", 4, "Seconds between a polite stop and a kill", cli_only=True),
    _f("watchdog_max_delay", "uint64", 600, "Most seconds between worker respawns", cli_only=True, hidden=True),
    _f("enable_watchdog_debug", "bool", False, "Log the watchdog's measurements (needs --verbose)", cli_only=True),
    _f("enable_extensions_watchdog", "bool", False, "Apply the watchdog limits to extensions", cli_only=True),
    _f("malloc_trim_threshold", "uint64", 0, "RSS in MB above which memory is trimmed; 0 picks a default",
       cli_only=True),
)

FLAGS: dict[str, Flag] = {f.name: f for f in FLAG_DEFINITIONS}

# Old names osquery still accepts for a flag.
ALIASES: dict[str, str] = {
    "log_result_events": "logger_event_type",
    "osquery_log_dir": "logger_path",
    "config_tls_refresh": "config_refresh",
}

MAX_FLAGFILE_DEPTH = 8


class FlagError(ValueError):
    """A flag name or value that cannot be used."""


def lookup(name: str) -> Flag | None:
    """The flag called ``name`` or one of its aliases."""
    return FLAGS.get(ALIASES.get(name, name))


def parse_value(flag: Flag, raw: str | FlagValue) -> FlagValue:
    """Convert a command-line or config value to the flag's type."""
    if flag.type == "bool":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on", "t", "y", ""):
            return True
        if text in ("0", "false", "no", "off", "f", "n"):
            return False
        raise FlagError(f"flag --{flag.name} expects a boolean, got {raw!r}")
    if flag.type in ("int32", "int64", "uint32", "uint64"):
        if isinstance(raw, bool):
            # JSON true is not a number; accepting it would hide a typo.
            raise FlagError(f"flag --{flag.name} expects an integer, got {raw!r}")
        try:
            value = int(str(raw).strip(), 10)
        except ValueError:
            raise FlagError(f"flag --{flag.name} expects an integer, got {raw!r}") from None
        if flag.type.startswith("uint") and value < 0:
            raise FlagError(f"flag --{flag.name} expects a non-negative integer, got {raw!r}")
        bits = 32 if flag.type.endswith("32") else 64
        low, high = (0, 2**bits - 1) if flag.type.startswith("uint") else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
        if not low <= value <= high:
            raise FlagError(f"flag --{flag.name} value {value} is out of range for {flag.type}")
        return value
    if flag.type == "double":
        try:
            return float(str(raw).strip())
        except ValueError:
            raise FlagError(f"flag --{flag.name} expects a number, got {raw!r}") from None
    if isinstance(raw, bool):
        return "true" if raw else "false"
    return str(raw)


def format_value(value: FlagValue) -> str:
    """Render a value as osquery_flags shows it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class FlagValues:
    """The flags in force: defaults overridden by command line, flagfile, config."""

    def __init__(self, overrides: dict[str, FlagValue] | None = None) -> None:
        self._values: dict[str, FlagValue] = {}
        for name, value in (overrides or {}).items():
            self.set(name, value)

    def get(self, name: str) -> FlagValue:
        flag = lookup(name)
        if flag is None:
            raise FlagError(f"unknown flag --{name}")
        return self._values.get(flag.name, flag.default)

    def set(self, name: str, value: str | FlagValue) -> None:
        flag = lookup(name)
        if flag is None:
            raise FlagError(f"unknown flag --{name}")
        self._values[flag.name] = parse_value(flag, value)

    def is_default(self, name: str) -> bool:
        flag = lookup(name)
        return flag is None or flag.name not in self._values

    def items(self) -> list[tuple[Flag, FlagValue]]:
        return [(flag, self.get(flag.name)) for flag in FLAG_DEFINITIONS]

    def copy(self) -> FlagValues:
        other = FlagValues()
        other._values = dict(self._values)
        return other

    def changed(self) -> dict[str, FlagValue]:
        """The flags set explicitly, by name."""
        return dict(self._values)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FlagValues) and other._values == self._values

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"FlagValues({self._values!r})"


# --- command lines and flagfiles -------------------------------------------


class _Parser:
    """Applies gflags-style words to a FlagValues; later words win, as in gflags."""

    def __init__(self, values: FlagValues) -> None:
        self.values = values
        self.rest: list[str] = []
        self.flagfiles: list[str] = []

    def words(self, argv: Sequence[str], where: str = "", depth: int = 0, lines: Sequence[int] = ()) -> None:
        """Apply ``argv``; ``where``/``lines`` name the flagfile and line of each word."""
        i = 0
        while i < len(argv):
            word = argv[i]
            at = f"{where}:{lines[i]}: " if where else ""
            i += 1
            if word == "--":
                if where:
                    raise FlagError(f"{at}'--' is not allowed in a flagfile")
                self.rest.extend(argv[i:])
                return
            if len(word) < 2 or not word.startswith("-"):
                if where:
                    raise FlagError(f"{at}expected --name=value, got {word!r}")
                self.rest.append(word)
                continue
            name, eq, value = word.lstrip("-").partition("=")
            flag = lookup(name)
            if flag is None and not eq and name.startswith("no"):
                negated = lookup(name[2:])
                if negated is not None and negated.type == "bool":
                    self.values.set(negated.name, False)
                    continue
            if flag is None:
                raise FlagError(f"{at}unknown flag --{name}")
            if flag.type != "bool" and not eq:
                # Booleans never take the next word, as in gflags.
                if i >= len(argv):
                    raise FlagError(f"{at}flag --{name} needs a value")
                value = argv[i]
                i += 1
            try:
                if flag.name == "flagfile":
                    self.values.set("flagfile", value)
                    self.flagfile(value, depth + 1)
                else:
                    self.values.set(flag.name, value if (eq or flag.type != "bool") else True)
            except FlagError as exc:
                if at:
                    raise FlagError(f"{at}{exc}") from None
                raise

    def flagfile(self, path: str, depth: int) -> None:
        if depth > MAX_FLAGFILE_DEPTH:
            raise FlagError(f"flagfile {path}: flagfiles nested more than {MAX_FLAGFILE_DEPTH} deep")
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise FlagError(f"cannot read flagfile {path}: {reason}") from None
        self.flagfiles.append(path)
        words, lines = flagfile_words(text)
        self.words(words, path, depth, lines)


def flagfile_words(text: str) -> tuple[list[str], list[int]]:
    """Split flagfile text into command-line words and their line numbers.

    One flag per line; blank lines and lines starting with ``#`` are skipped.
    ``--name value`` is read as ``--name=value``; values are taken as written
    (no quote removal), as gflags does.
    """
    words: list[str] = []
    lines: list[int] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        # "--name value" becomes "--name=value" so a boolean's value on the
        # same line is not mistaken for a stray word.
        words.append(line if len(parts) == 1 or "=" in parts[0] else f"{parts[0]}={parts[1].strip()}")
        lines.append(number)
    return words, lines


def parse_flagfile(path: str | Path, values: FlagValues | None = None) -> FlagValues:
    """Read one flagfile (and any it names) into ``values`` or new defaults."""
    parser = _Parser(values if values is not None else FlagValues())
    parser.flagfile(str(path), 1)
    return parser.values


def parse_argv(argv: Iterable[str], *, values: FlagValues | None = None,
               default_flagfile: str | None = None) -> tuple[FlagValues, list[str]]:
    """Parse osquery flags from a command line; return them and the other words.

    ``--flag=value``, ``--flag value``, ``-flag``, bare ``--flag`` and
    ``--noflag`` for booleans, and ``--flagfile PATH`` (read where it appears,
    recursively).  Words that are not flags are returned in order; ``--``
    ends the flags.  If no ``--flagfile`` is given and ``default_flagfile``
    exists, it is read first, as osquery does with its default flagfile.
    """
    args = list(argv)
    parser = _Parser(values if values is not None else FlagValues())
    names = {w.lstrip("-").partition("=")[0] for w in args if w.startswith("-")}
    if default_flagfile and "flagfile" not in names and os.path.isfile(default_flagfile):
        parser.values.set("flagfile", default_flagfile)
        parser.flagfile(default_flagfile, 1)
    parser.words(args)
    return parser.values, parser.rest
