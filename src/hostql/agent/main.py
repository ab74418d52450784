"""``hostql agent``: osqueryd's command line.

    hostql agent --flagfile /etc/hostql/hostql.flags
    hostql agent --config_path ./osquery.conf --logger_path ./logs --database_path ./state.db
    hostql agent --config_check --config_path ./osquery.conf
    hostql agent --config_dump

With the watchdog on (the default) this process is the watcher and runs the
worker as a child; ``--disable_watchdog`` runs the worker in this process.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence

from hostql import OSQUERY_VERSION, __version__
from hostql.agent.flags import FLAG_DEFINITIONS, FlagError, FlagValues, default_paths, parse_argv

USAGE = """\
Usage: hostql agent [--flag=value]...

Runs the hostql agent (osqueryd-compatible): scheduled queries and packs from
the config, differential result logs, and the TLS conversation with a
management server. Flags and flagfiles use osquery's names.

Agent options:
  --help              Show this message
  --version           Print the version
  --config_check      Check the config, then exit (non-zero with the reason)
  --config_dump       Print the config sources as JSON, then exit
  --flagfile PATH     Read more flags from PATH, one per line
  --disable_watchdog  Run without the watcher process

Common flags (all osquery flags are accepted; SELECT * FROM osquery_flags):
"""

COMMON = ("config_plugin", "config_path", "logger_plugin", "logger_path", "database_path", "tls_hostname",
          "tls_server_certs", "enroll_secret_path", "host_identifier", "watchdog_level", "verbose")


def usage() -> str:
    flags = {f.name: f for f in FLAG_DEFINITIONS}
    lines = [USAGE]
    for name in COMMON:
        flag = flags.get(name)
        if flag is not None:
            default = f" (default: {flag.default})" if flag.default not in ("", False) else ""
            lines.append(f"  --{name:<22}{flag.description}{default}\n")
    return "".join(lines)


def config_source(flags: FlagValues) -> object:
    from hostql.agent.config_sources import FilesystemSource

    if str(flags.get("config_plugin")) == "tls":
        # Checking a TLS config needs enrollment; --config_check reads files.
        raise FlagError("--config_check and --config_dump read filesystem configs; use --config_plugin=filesystem")
    return FilesystemSource(str(flags.get("config_path")))


def config_check(flags: FlagValues) -> int:
    from hostql.agent.config import load_config
    from hostql.agent.config_sources import ConfigError

    try:
        config = load_config(config_source(flags), flags)  # type: ignore[arg-type]
    except (ConfigError, FlagError) as exc:
        print(f"Error reading config: {exc}", file=sys.stderr)
        return 1
    for warning in config.warnings:
        print(f"Warning: {warning}", file=sys.stderr)
    return 0


def config_dump(flags: FlagValues) -> int:
    from hostql.agent.config_sources import ConfigError, config_dump

    try:
        dumped = config_dump(config_source(flags))  # type: ignore[arg-type]
    except (ConfigError, FlagError) as exc:
        print(f"Error reading config: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(dumped, indent=2))
    return 0


def run_worker(flags: FlagValues) -> int:
    from hostql.agent.config_sources import ConfigError
    from hostql.agent.daemon import Daemon
    from hostql.agent.loggers.base import LoggerError
    from hostql.agent.store import StoreError

    try:
        daemon = Daemon(flags)
    except (StoreError, LoggerError, ConfigError, FlagError, OSError) as exc:
        print(f"hostql agent: {exc}", file=sys.stderr)
        return 1
    return daemon.run()


def _watcher_logging(flags: FlagValues) -> None:
    """The watcher's own messages (limits exceeded, respawns) go to glog files
    of its own pid in --logger_path, as osqueryd's watcher writes them."""
    import logging
    import threading

    from hostql.agent.loggers.base import parse_mode
    from hostql.agent.loggers.glog import GlogFiles
    from hostql.agent.status import severity_of

    glog = GlogFiles(str(flags.get("logger_path")), mode=parse_mode(str(flags.get("logger_mode"))))

    class GlogHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            severity = severity_of(record.levelno)
            if severity is not None:
                glog.write(severity, record.created, threading.get_native_id(), record.filename, record.lineno,
                           record.getMessage())

    target = logging.getLogger("hostql")
    target.addHandler(GlogHandler())
    target.setLevel(logging.INFO)


def run_watcher(flags: FlagValues, argv: Sequence[str]) -> int:
    from hostql.agent.watchdog import Watchdog

    _watcher_logging(flags)
    worker = [sys.executable, "-m", "hostql", "agent", *argv]
    return Watchdog(worker, flags).run()


def run(argv: Sequence[str]) -> int:
    words = list(argv)
    if "--help" in words or "-h" in words:
        sys.stdout.write(usage())
        return 0
    if "--version" in words:
        print(f"hostql agent {__version__} (osquery {OSQUERY_VERSION})")
        return 0
    try:
        flags, rest = parse_argv(words, default_flagfile=default_paths()["flagfile"])
    except FlagError as exc:
        print(f"hostql agent: {exc}", file=sys.stderr)
        return 1
    if rest:
        print(f"hostql agent: unexpected argument {rest[0]!r} (see hostql agent --help)", file=sys.stderr)
        return 1
    if flags.get("config_check"):
        return config_check(flags)
    if flags.get("config_dump"):
        return config_dump(flags)
    if flags.get("disable_watchdog") or os.environ.get("HOSTQL_WORKER"):
        return run_worker(flags)
    return run_watcher(flags, words)
