"""osquery's flags: names, types, defaults and the values in force.

Only the definitions live here; the shell and the daemon parse their command
lines into a :class:`FlagValues`, and ``osquery_flags`` reports it.
"""

from __future__ import annotations

from dataclasses import dataclass

FlagValue = bool | int | float | str


@dataclass(frozen=True, slots=True)
class Flag:
    name: str
    type: str  # osquery's gflags type name: bool, string, int32, uint64, double
    default: FlagValue
    description: str
    shell_only: bool = False
    cli_only: bool = False
    hidden: bool = False


def _f(name: str, type_: str, default: FlagValue, description: str, **kw: bool) -> Flag:
    return Flag(name, type_, default, description, **kw)


# The table is kept in one place so that osquery_flags, --help and config
# validation agree.  Grouped as osquery's docs group them.
FLAG_DEFINITIONS: tuple[Flag, ...] = (
    # shell output
    _f("json", "bool", False, "Print each row as a JSON object", shell_only=True),
    _f("json_pretty", "bool", False, "Print the result as pretty-printed JSON", shell_only=True),
    _f("csv", "bool", False, "Print rows as comma-separated values", shell_only=True),
    _f("line", "bool", False, "Print one 'column = value' line per value", shell_only=True),
    _f("list", "bool", False, "Print rows as separator-delimited values", shell_only=True),
    _f("header", "bool", True, "Print the column names before the rows", shell_only=True),
    _f("separator", "string", "|", "Separator for list and csv modes", shell_only=True),
    _f("nullvalue", "string", "", "Text printed for NULL values"),
    _f("planner", "bool", False, "Print the virtual table planner's decisions", shell_only=True),
    _f("A", "string", "", "Select all rows from a table", shell_only=True),
    _f("L", "bool", False, "List all tables", shell_only=True),
    _f("query_file", "string", "", "Read SQL from this file", shell_only=True),
    # general
    _f("verbose", "bool", False, "Enable verbose informational messages"),
    _f("config_path", "string", "/etc/osquery/osquery.conf", "Path to the JSON config file"),
    _f("config_plugin", "string", "filesystem", "Config plugin name", cli_only=True),
    _f("logger_plugin", "string", "filesystem", "Logger plugin name", cli_only=True),
    _f("logger_path", "string", "/var/log/osquery/", "Directory for result and status logs"),
    _f("database_path", "string", "/var/osquery/osquery.db", "Path of the local state store"),
    _f("host_identifier", "string", "hostname",
       "How the host identifies itself: hostname, uuid, instance, ephemeral, specified"),
    _f("specified_identifier", "string", "", "Identifier used when host_identifier is 'specified'"),
    _f("utc", "bool", True, "Convert all timestamps to UTC"),
    _f("disable_events", "bool", False, "Disable the events publishers and subscribers"),
    _f("disable_caching", "bool", False, "Disable scheduled query caching"),
    _f("disable_extensions", "bool", False, "Disable extension support"),
    _f("disable_distributed", "bool", True, "Disable distributed queries"),
    _f("disable_watchdog", "bool", False, "Disable the watchdog process"),
    _f("disable_hash_cache", "bool", False, "Do not cache hashes of unchanged files"),
    _f("hash_cache_max", "uint32", 500, "Number of file hashes kept in the cache"),
    _f("read_max", "uint64", 52428800, "Largest file the agent will read, in bytes"),
    _f("table_delay", "uint64", 0, "Milliseconds to pause between table scans in a JOIN"),
    _f("schedule_splay_percent", "uint64", 10, "Percent to splay config times"),
    _f("schedule_default_interval", "uint64", 3600, "Default interval for scheduled queries"),
    _f("logger_numerics", "bool", False, "Use numeric JSON values in result logs"),
    _f("enable_foreign", "bool", False, "Enable tables of other platforms (they return no rows)"),
    _f("extensions_socket", "string", "/var/osquery/osquery.em", "Path to the extensions socket"),
)

FLAGS: dict[str, Flag] = {f.name: f for f in FLAG_DEFINITIONS}


class FlagError(ValueError):
    """A flag name or value that cannot be used."""


def parse_value(flag: Flag, raw: str | FlagValue) -> FlagValue:
    """Convert a command-line or config value to the flag's type."""
    if flag.type == "bool":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on", ""):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise FlagError(f"flag --{flag.name} expects a boolean, got {raw!r}")
    if flag.type in ("int32", "int64", "uint32", "uint64"):
        try:
            value = int(str(raw).strip(), 10)
        except ValueError:
            raise FlagError(f"flag --{flag.name} expects an integer, got {raw!r}") from None
        if flag.type.startswith("uint") and value < 0:
            raise FlagError(f"flag --{flag.name} expects a non-negative integer, got {raw!r}")
        return value
    if flag.type == "double":
        try:
            return float(str(raw).strip())
        except ValueError:
            raise FlagError(f"flag --{flag.name} expects a number, got {raw!r}") from None
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
        if name in self._values:
            return self._values[name]
        try:
            return FLAGS[name].default
        except KeyError:
            raise FlagError(f"unknown flag --{name}") from None

    def set(self, name: str, value: str | FlagValue) -> None:
        flag = FLAGS.get(name)
        if flag is None:
            raise FlagError(f"unknown flag --{name}")
        self._values[name] = parse_value(flag, value)

    def is_default(self, name: str) -> bool:
        return name not in self._values

    def items(self) -> list[tuple[Flag, FlagValue]]:
        return [(flag, self.get(flag.name)) for flag in FLAG_DEFINITIONS]
