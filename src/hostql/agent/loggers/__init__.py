"""Logger plugins by name: ``--logger_plugin=filesystem,tls`` -> Logger objects.

Each plugin module has ``create(flags, context) -> Logger``; ``context`` carries
what some loggers need besides flags (the TLS logger's transport, for example).
Modules are imported only when their name is asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from hostql.agent.flags import FlagValues
from hostql.agent.loggers.base import Logger, LoggerError, wants_status

__all__ = [
    "PLUGINS",
    "Logger",
    "LoggerError",
    "LoggerFactory",
    "build_loggers",
    "parse_plugin_names",
    "register",
    "unregister",
    "wants_status",
]

LoggerFactory = Callable[[FlagValues | None, dict[str, Any]], Logger]

# name -> "module:function", imported on first use
PLUGINS: dict[str, str] = {
    "filesystem": "hostql.agent.loggers.filesystem:create",
    "stdout": "hostql.agent.loggers.stdout:create",
    "syslog": "hostql.agent.loggers.syslog:create",
    "tls": "hostql.agent.loggers:create_tls",
}

# osquery's other built-in loggers: named so the error can say why.
NOT_SUPPORTED = ("aws_kinesis", "aws_firehose", "kafka_producer", "windows_event_log")

_registered: dict[str, LoggerFactory] = {}


def register(name: str, factory: LoggerFactory) -> None:
    """Add or replace a logger plugin (extensions, tests)."""
    _registered[name] = factory


def unregister(name: str) -> None:
    _registered.pop(name, None)


def available() -> list[str]:
    return sorted(set(PLUGINS) | set(_registered))


def parse_plugin_names(value: str) -> list[str]:
    """``"filesystem, tls"`` -> ``["filesystem", "tls"]``; duplicates dropped."""
    names: list[str] = []
    for part in value.split(","):
        name = part.strip()
        if name and name not in names:
            names.append(name)
    return names


def create_tls(flags: FlagValues | None, context: dict[str, Any]) -> Logger:
    """The TLS logger (agent/remote/tls_logger.py); needs ``context["client"]``."""
    client = context.get("client")
    if client is None:
        raise LoggerError("the tls logger needs the remote client (context['client'])")
    from hostql.agent.remote.tls_logger import TLSLogger

    return TLSLogger(flags if flags is not None else FlagValues(), client, context.get("store"))


def _factory(name: str) -> LoggerFactory:
    if name in _registered:
        return _registered[name]
    spec = PLUGINS.get(name)
    if spec is None:
        if name in NOT_SUPPORTED:
            raise LoggerError(f"logger plugin '{name}' is an osquery plugin that hostql does not provide")
        raise LoggerError(f"unknown logger plugin '{name}' (available: {', '.join(available())})")
    module_name, _, function = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise LoggerError(f"logger plugin '{name}' is not available in this build") from None
    factory: LoggerFactory | None = getattr(module, function, None)
    if factory is None:
        raise LoggerError(f"logger plugin '{name}' has no factory {spec}")
    return factory


def build_loggers(
    names: Iterable[str], flags: FlagValues | None, context: Mapping[str, Any] | None = None
) -> list[Logger]:
    """One Logger per name, in order; an unknown name raises LoggerError first."""
    wanted = parse_plugin_names(",".join(names))
    if not wanted:
        raise LoggerError("no logger plugin given (--logger_plugin is empty)")
    factories = [(name, _factory(name)) for name in wanted]
    loggers: list[Logger] = []
    for name, factory in factories:
        try:
            loggers.append(factory(flags, dict(context or {})))
        except LoggerError as exc:
            for built in loggers:
                built.close()
            raise LoggerError(f"logger plugin '{name}': {exc}") from exc
    return loggers
