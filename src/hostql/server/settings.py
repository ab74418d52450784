"""The server's settings: one documented list, read from flags, ``HOSTQL_*`` or YAML.

Every setting has one name used everywhere: the YAML key (``tls_cert``), the
environment variable (``HOSTQL_TLS_CERT``) and the flag (``--tls-cert``).
Precedence is flags > environment > YAML file (``--config`` / ``HOSTQL_CONFIG``)
> defaults.  :func:`load_settings` parses and :func:`validate` checks what
can be checked without a network; both raise :class:`SettingsError`, whose
message names the setting (``setting tls_cert: cannot read /x.pem: ...``).
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ENV_PREFIX = "HOSTQL_"


class SettingsError(ValueError):
    """A setting the server cannot use; the message starts with ``setting <name>:``."""

    def __init__(self, name: str, reason: str, source: str = "") -> None:
        where = f" (from {source})" if source and source != "default" else ""
        super().__init__(f"setting {name}{where}: {reason}")
        self.setting = name
        self.reason = reason


# ---------------------------------------------------------------------------
# Value parsers: text (flags, env) or YAML values to Python values
# ---------------------------------------------------------------------------

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: Any) -> float:
    """Seconds from ``25``, ``25s``, ``500ms``, ``30m``, ``24h`` or ``5d``."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 25s, 30m or 5d, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = str(value).strip().lower()
        for unit in sorted(_DURATION_UNITS, key=len, reverse=True):
            if text.endswith(unit):
                number, factor = text[: -len(unit)].strip(), _DURATION_UNITS[unit]
                break
        else:
            number, factor = text, 1.0
        try:
            seconds = float(number) * factor
        except ValueError:
            raise ValueError(f"expected a duration such as 25s, 30m or 5d, got {value!r}") from None
    if seconds < 0:
        raise ValueError(f"must not be negative, got {value!r}")
    return seconds


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def parse_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected a whole number, got {value!r}")
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ValueError(f"expected a whole number, got {value!r}") from None
    if number < 0:
        raise ValueError(f"must not be negative, got {value!r}")
    return number


def parse_str(value: Any) -> str:
    if isinstance(value, dict | list):
        raise ValueError(f"expected a string, got {type(value).__name__}")
    return "" if value is None else str(value)


def parse_list(value: Any) -> list[str]:
    """A YAML list, or comma-separated text (flags may also repeat)."""
    if isinstance(value, list | tuple):
        items = [str(item).strip() for item in value]
    else:
        items = [part.strip() for part in str(value).split(",")]
    return [item for item in items if item]


# ---------------------------------------------------------------------------
# The list of settings
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    name: str
    parse: Callable[[Any], Any]
    default: Any
    help: str
    metavar: str = ""

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def flag(self) -> str:
        if self.name == "tls":
            return "--no-tls"
        return "--" + self.name.replace("_", "-")


SPECS: tuple[Spec, ...] = (
    Spec("listen", parse_str, "127.0.0.1:8080", "Address and port to serve on (HOST:PORT; [::1]:8080 for IPv6)",
         "HOST:PORT"),
    Spec("data_dir", parse_str, "./hostql-data",
         "Directory for the default SQLite database, dev certificates and default log files", "DIR"),
    Spec("db", parse_str, "",
         "Database URL: sqlite:///PATH, postgresql://USER:PASS@HOST/DB or mysql://USER:PASS@HOST/DB "
         "(default: SQLite file DATA_DIR/server.db)", "URL"),
    Spec("redis", parse_str, "",
         "Redis URL (redis://HOST:PORT/0); needed to run several server processes. Empty: in-process",
         "URL"),
    Spec("tls", parse_bool, True,
         "Serve HTTPS (default). --no-tls serves plain HTTP, only behind a proxy that terminates TLS"),
    Spec("tls_cert", parse_str, "", "PEM certificate (chain) the server presents (dev: generated)", "PATH"),
    Spec("tls_key", parse_str, "", "PEM private key of --tls-cert (dev: generated)", "PATH"),
    Spec("dev", parse_bool, False,
         "Development mode: create the data dir, run migrations, generate a CA and certificate, "
         "a first admin and an enroll secret"),
    Spec("server_url", parse_str, "",
         "URL agents and users reach this server at (default: derived from --listen)", "URL"),
    Spec("session_duration", parse_duration, 5 * 86400.0,
         "How long a login session lasts without use (e.g. 5d, 12h)", "DURATION"),
    Spec("login_rate_limit", parse_int, 10,
         "Login attempts allowed per client address and email in each login_rate_window (at least 1)", "N"),
    Spec("login_rate_window", parse_duration, 60.0, "The window login_rate_limit counts in", "DURATION"),
    Spec("result_log_plugin", parse_list, ["filesystem"],
         "Where agents' result logs go: filesystem, stdout or none; several comma-separated (or a YAML list)",
         "NAMES"),
    Spec("status_log_plugin", parse_list, ["filesystem"],
         "Where agents' status logs go: same names as result_log_plugin", "NAMES"),
    Spec("filesystem_result_log_file", parse_str, "{data_dir}/osquery_result.log",
         "File of the filesystem result log", "PATH"),
    Spec("filesystem_status_log_file", parse_str, "{data_dir}/osquery_status.log",
         "File of the filesystem status log", "PATH"),
    Spec("filesystem_enable_log_rotation", parse_bool, True,
         "Rotate the filesystem log files when they reach filesystem_max_size"),
    Spec("filesystem_max_size", parse_int, 500, "Size in MB at which a filesystem log file is rotated", "MB"),
    Spec("filesystem_max_backups", parse_int, 3, "Rotated filesystem log files kept (FILE.1 .. FILE.N)", "N"),
    Spec("query_report_cap", parse_int, 1000,
         "Most result rows a scheduled query's report shows (the report is marked clipped beyond it)", "N"),
    Spec("query_report_retention_days", parse_int, 30,
         "Days a host's rows stay in a query report without being refreshed; 0 keeps them forever", "DAYS"),
    Spec("enable_scheduled_query_stats", parse_bool, True,
         "Collect per-host performance stats of scheduled queries"),
    Spec("live_query_rest_period", parse_duration, 25.0,
         "How long the synchronous live-query API (POST /api/v1/fleet/queries/run) waits for answers",
         "DURATION"),
    Spec("live_query_status_interval", parse_duration, 5.0,
         "How often a live query's WebSocket gets a progress (totals) message", "DURATION"),
    Spec("live_query_results_to_log", parse_bool, False, "Also send live query results to the result log"),
    Spec("host_identifier", parse_str, "provided",
         "What identifies a host at enrollment: provided, uuid, hostname or instance", "KIND"),
    Spec("enroll_cooldown", parse_duration, 0.0,
         "Refuse a new enrollment of the same host within this time (0: never refuse)", "DURATION"),
    Spec("node_key_size", parse_int, 24, "Random bytes in a node key", "BYTES"),
    Spec("detail_update_interval", parse_duration, 3600.0, "How often host vitals are re-queried", "DURATION"),
    Spec("max_jitter_percent", parse_int, 10,
         "Per-host spread added to the update intervals, in percent of the interval", "PERCENT"),
    Spec("label_update_interval", parse_duration, 3600.0, "How often label queries are re-sent", "DURATION"),
    Spec("policy_update_interval", parse_duration, 3600.0, "How often policy queries are re-sent", "DURATION"),
    Spec("host_cache_ttl", parse_duration, 300.0,
         "How long a host looked up by node key is cached in memory", "DURATION"),
    Spec("seen_time_flush_interval", parse_duration, 5.0,
         "How often hosts' last-seen times are written to the database in one batch", "DURATION"),
    Spec("log_level", parse_str, "info", "Server log level: debug, info, warning or error", "LEVEL"),
    Spec("access_log", parse_bool, False, "Log every HTTP request"),
    Spec("keep_alive_timeout", parse_duration, 75.0,
         "How long an idle HTTP connection is kept open; longer than clients' own idle timeout, so a "
         "request never races the server closing its connection", "DURATION"),
)

SPEC_BY_NAME: dict[str, Spec] = {spec.name: spec for spec in SPECS}
LOG_LEVELS = ("debug", "info", "warning", "error")
HOST_IDENTIFIERS = ("provided", "uuid", "hostname", "instance")


@dataclass(frozen=True)
class Settings:
    """Resolved settings; durations are seconds.  ``sources`` says where each came from."""

    listen: str = "127.0.0.1:8080"
    data_dir: str = "./hostql-data"
    db: str = ""
    redis: str = ""
    tls: bool = True
    tls_cert: str = ""
    tls_key: str = ""
    dev: bool = False
    server_url: str = ""
    session_duration: float = 5 * 86400.0
    login_rate_limit: int = 10
    login_rate_window: float = 60.0
    result_log_plugin: list[str] = field(default_factory=lambda: ["filesystem"])
    status_log_plugin: list[str] = field(default_factory=lambda: ["filesystem"])
    filesystem_result_log_file: str = ""
    filesystem_status_log_file: str = ""
    filesystem_enable_log_rotation: bool = True
    filesystem_max_size: int = 500
    filesystem_max_backups: int = 3
    query_report_cap: int = 1000
    query_report_retention_days: int = 30
    enable_scheduled_query_stats: bool = True
    live_query_rest_period: float = 25.0
    live_query_status_interval: float = 5.0
    live_query_results_to_log: bool = False
    host_identifier: str = "provided"
    enroll_cooldown: float = 0.0
    node_key_size: int = 24
    detail_update_interval: float = 3600.0
    max_jitter_percent: int = 10
    label_update_interval: float = 3600.0
    policy_update_interval: float = 3600.0
    host_cache_ttl: float = 300.0
    seen_time_flush_interval: float = 5.0
    log_level: str = "info"
    access_log: bool = False
    keep_alive_timeout: float = 75.0
    config_file: str = ""
    sources: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def host(self) -> str:
        return split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return split_listen(self.listen)[1]

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def public_url(self) -> str:
        """``server_url``, or the URL derived from ``listen``."""
        if self.server_url:
            return self.server_url.rstrip("/")
        host = self.host
        if host in ("", "0.0.0.0", "::"):
            host = "localhost"
        if ":" in host:
            host = f"[{host}]"
        return f"{self.scheme}://{host}:{self.port}"

    def source(self, name: str) -> str:
        return self.sources.get(name, "default")


def split_listen(value: str) -> tuple[str, int]:
    """``("127.0.0.1", 8080)`` from ``127.0.0.1:8080``; ``[::1]:8080`` for IPv6."""
    text = value.strip()
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        ipaddress.IPv6Address(host)
    elif ":" in host:
        raise ValueError(f"write IPv6 addresses in brackets ([::1]:8080), got {value!r}")
    port = int(port_text)
    if not 0 < port < 65536:
        raise ValueError(f"port must be 1-65535, got {port}")
    return host, port


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------


def read_yaml(path: str) -> dict[str, Any]:
    import yaml  # type: ignore[import-untyped]

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError("config", f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SettingsError("config", f"{path} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError("config", f"{path} must hold a mapping of setting names to values")
    return {str(key): value for key, value in data.items()}


def load_settings(flags: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Resolve every setting.  ``flags`` maps setting names to values given on the command
    line (None or absent: not given); ``env`` defaults to ``os.environ``."""
    flags = {key: value for key, value in (flags or {}).items() if value is not None}
    env = os.environ if env is None else env
    config_file = str(flags.pop("config", "") or env.get(ENV_PREFIX + "CONFIG", ""))
    yaml_values = read_yaml(config_file) if config_file else {}
    for key in yaml_values:
        if key not in SPEC_BY_NAME:
            raise SettingsError(key, f"unknown setting in {config_file} (known: {', '.join(SPEC_BY_NAME)})")
    unknown_flags = set(flags) - set(SPEC_BY_NAME)
    if unknown_flags:
        raise SettingsError(sorted(unknown_flags)[0], "unknown setting")

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for spec in SPECS:
        if spec.name in flags:
            raw, source = flags[spec.name], spec.flag
        elif spec.env in env:
            raw, source = env[spec.env], spec.env
        elif spec.name in yaml_values:
            raw, source = yaml_values[spec.name], config_file
        else:
            values[spec.name] = list(spec.default) if isinstance(spec.default, list) else spec.default
            sources[spec.name] = "default"
            continue
        try:
            values[spec.name] = spec.parse(raw)
        except ValueError as exc:
            raise SettingsError(spec.name, str(exc), source) from None
        sources[spec.name] = source

    data_dir = str(values["data_dir"]) or "."
    values["data_dir"] = data_dir
    if not values["db"]:
        values["db"] = f"sqlite:///{Path(data_dir).resolve() / 'server.db'}"
    for name in ("filesystem_result_log_file", "filesystem_status_log_file"):
        values[name] = values[name].replace("{data_dir}", str(Path(data_dir).resolve()))
    if values["dev"] and values["tls"] and not values["tls_cert"] and not values["tls_key"]:
        values["tls_cert"] = str(Path(data_dir).resolve() / "server.pem")
        values["tls_key"] = str(Path(data_dir).resolve() / "server-key.pem")
        sources["tls_cert"] = sources["tls_key"] = "dev"
    return Settings(**values, config_file=config_file, sources=sources)


# ---------------------------------------------------------------------------
# Validation (no network: reachability is checked at start by main)
# ---------------------------------------------------------------------------


def _check_readable(settings: Settings, name: str) -> None:
    path = str(getattr(settings, name))
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise SettingsError(name, f"cannot read {path}: {exc.strerror or exc}", settings.source(name)) from None


def validate_db_url(settings: Settings) -> None:
    from sqlalchemy.engine import make_url

    from hostql.server.storage.db import normalise_url

    try:
        url = make_url(normalise_url(settings.db))
        backend = url.get_backend_name()
    except Exception as exc:
        raise SettingsError("db", f"malformed database URL {settings.db!r}: {exc}", settings.source("db")) from None
    if backend not in ("sqlite", "postgresql", "mysql", "mariadb"):
        raise SettingsError("db", f"unsupported database {backend!r} (use sqlite, postgresql or mysql)",
                            settings.source("db"))
    if backend != "sqlite" and not url.host:
        raise SettingsError("db", f"malformed database URL {settings.db!r}: no host", settings.source("db"))


def _check_url(settings: Settings, name: str, schemes: tuple[str, ...]) -> None:
    value = str(getattr(settings, name))
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise SettingsError(name, f"malformed URL {value!r}: {exc}", settings.source(name)) from None
    if parts.scheme not in schemes or not (parts.hostname or parts.scheme == "unix"):
        raise SettingsError(name, f"malformed URL {value!r} (expected {' or '.join(s + '://' for s in schemes)}...)",
                            settings.source(name))


def _check_log_destinations(settings: Settings, name: str) -> None:
    from hostql.server.logdest import REGISTRY, names_for

    known = {"filesystem", "stdout", *REGISTRY}
    for item in names_for(settings, name.split("_")[0]):
        if item not in known:
            raise SettingsError(name, f"unknown log destination {item!r} (known: {', '.join(sorted(known))})",
                                settings.source(name))


def validate(settings: Settings, *, serving: bool = True) -> None:
    """Raise :class:`SettingsError` for the first unusable setting.  ``serving=False``
    checks only what ``prepare-db`` needs."""
    validate_db_url(settings)
    if not serving:
        return
    try:
        split_listen(settings.listen)
    except ValueError as exc:
        raise SettingsError("listen", str(exc), settings.source("listen")) from None
    if settings.redis:
        _check_url(settings, "redis", ("redis", "rediss", "unix"))
    if settings.server_url:
        _check_url(settings, "server_url", ("https", "http"))
    if settings.log_level.lower() not in LOG_LEVELS:
        raise SettingsError("log_level", f"expected one of {', '.join(LOG_LEVELS)}, got {settings.log_level!r}",
                            settings.source("log_level"))
    if settings.host_identifier not in HOST_IDENTIFIERS:
        raise SettingsError("host_identifier",
                            f"expected one of {', '.join(HOST_IDENTIFIERS)}, got {settings.host_identifier!r}",
                            settings.source("host_identifier"))
    for name in ("result_log_plugin", "status_log_plugin"):
        _check_log_destinations(settings, name)
    if settings.login_rate_limit < 1:
        raise SettingsError("login_rate_limit", "must be at least 1", settings.source("login_rate_limit"))
    if not 8 <= settings.node_key_size <= 128:
        raise SettingsError("node_key_size", "must be 8-128 bytes", settings.source("node_key_size"))
    if settings.session_duration <= 0:
        raise SettingsError("session_duration", "must be longer than 0 s", settings.source("session_duration"))
    if settings.live_query_rest_period <= 0:
        raise SettingsError("live_query_rest_period", "must be longer than 0 s",
                            settings.source("live_query_rest_period"))
    if not settings.tls:
        return
    if settings.dev and settings.source("tls_cert") == "dev":
        return  # generated at start
    for name in ("tls_cert", "tls_key"):
        if not getattr(settings, name):
            raise SettingsError(name, "required when TLS is on (give --tls-cert and --tls-key, use --dev for a "
                                      "generated certificate, or --no-tls behind a proxy that terminates TLS)")
        _check_readable(settings, name)
    check_certificate_pair(settings)


def check_certificate_pair(settings: Settings) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(settings.tls_cert, settings.tls_key)
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        raise SettingsError("tls_cert", f"cannot use {settings.tls_cert} with key {settings.tls_key}: {reason}",
                            settings.source("tls_cert")) from None
    except OSError as exc:
        raise SettingsError("tls_cert", f"cannot read {settings.tls_cert}: {exc.strerror or exc}",
                            settings.source("tls_cert")) from None


def redact_url(url: str) -> str:
    """The URL with its password replaced by ``***`` (for messages and logs)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return parts._replace(netloc=netloc).geturl()
    return url


def _duration_text(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def documented() -> list[tuple[str, str, str, str, str]]:
    """(YAML name, flag, env, default, help) for every setting, for docs and ``--help``."""
    rows = []
    for spec in SPECS:
        default = spec.default
        if isinstance(default, bool):
            shown = str(default).lower()
        elif isinstance(default, list):
            shown = ",".join(default)
        elif isinstance(default, float):
            shown = _duration_text(default)
        else:
            shown = str(default)
        rows.append((spec.name, spec.flag, spec.env, shown, spec.help))
    return rows


assert {f.name for f in fields(Settings)} >= set(SPEC_BY_NAME), "Settings lacks a field for a spec"
