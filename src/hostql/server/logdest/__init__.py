"""Where the server sends osquery result and status logs.

A destination is anything with ``write(kind, lines)`` (:class:`LogDestination`);
``kind`` is ``"result"`` or ``"status"`` and ``lines`` are the agents' JSON log
lines as dicts.  Destinations are made by name from :data:`REGISTRY`, so a new
one (syslog, Splunk HEC, Elasticsearch, webhook, Kafka, ...) is a module that
calls :func:`register` with a factory; the osquery API never changes.

Settings (read with ``getattr(state.settings, name, default)``):

``result_log_plugin`` / ``status_log_plugin``
    comma-separated destination names (default ``filesystem``); ``""`` or
    ``none`` sends nowhere.
Factories get the settings object and the kind and read their own options
(see :mod:`hostql.server.logdest.filesystem`).

A destination whose writes never wait (an append to a local file, a hand-over to
its own background thread) sets ``inline = True``: the server then writes a
small request's lines on its event loop instead of in a worker thread.

A destination that writes JSON text may also define
``write_encoded(kind, encoded)`` (:class:`EncodedDestination`): ``encoded`` is
each line as compact UTF-8 JSON (no newline), made once per request by the
router and shared by every such destination, so a line is serialised once
however many destinations there are.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol, cast, runtime_checkable

from hostql.server import fastjson

log = logging.getLogger(__name__)

RESULT = "result"
STATUS = "status"
KINDS = (RESULT, STATUS)


@runtime_checkable
class LogDestination(Protocol):
    """One sink for log lines."""

    def write(self, kind: str, lines: list[dict[str, Any]]) -> None: ...


@runtime_checkable
class EncodedDestination(Protocol):
    """A destination that takes the lines already encoded (see the module docs)."""

    def write_encoded(self, kind: str, encoded: list[bytes]) -> None: ...


class ClosableDestination(LogDestination, Protocol):
    def close(self) -> None: ...


# name -> factory(settings, kind) -> destination
Factory = Callable[[Any, str], LogDestination]
REGISTRY: dict[str, Factory] = {}
_LOCK = threading.RLock()


class LogDestinationError(ValueError):
    """A destination name nobody registered, or one that cannot be built."""


def register(name: str, factory: Factory) -> None:
    """Make ``name`` usable in ``result_log_plugin``/``status_log_plugin``."""
    with _LOCK:
        REGISTRY[name] = factory


def _builtin() -> None:
    # Imported lazily so this module has no import cycle with its plugins.
    from hostql.server.logdest import filesystem, stdout

    register("filesystem", filesystem.from_settings)
    register("stdout", stdout.from_settings)


def names_for(settings: Any, kind: str) -> list[str]:
    raw = getattr(settings, f"{kind}_log_plugin", "filesystem")
    if isinstance(raw, str):
        items: Sequence[str] = raw.split(",")
    elif isinstance(raw, (list, tuple)):
        items = [str(item) for item in raw]
    else:
        items = []
    return [name.strip() for name in items if name.strip() and name.strip().lower() != "none"]


def build(settings: Any, kind: str) -> list[LogDestination]:
    """The destinations configured for ``kind``; raises LogDestinationError for unknown names."""
    if not REGISTRY or "filesystem" not in REGISTRY:
        _builtin()
    built: list[LogDestination] = []
    for name in names_for(settings, kind):
        factory = REGISTRY.get(name)
        if factory is None:
            raise LogDestinationError(f"unknown {kind} log destination {name!r}; known: {sorted(REGISTRY)}")
        built.append(factory(settings, kind))
    return built


def writes_inline(destination: LogDestination) -> bool:
    """Whether ``destination`` declares that its writes never wait (``inline = True``: e.g. an append
    to a local file), so the server may call it on its event loop."""
    return getattr(destination, "inline", False) is True


class LogRouter:
    """The destinations of one server process, by kind; failures are logged, never raised."""

    def __init__(self, destinations: dict[str, list[LogDestination]]) -> None:
        self.destinations = destinations
        # Per kind, each destination with whether it takes encoded lines (checked once: a
        # runtime protocol check costs more than a small write).
        self._plan = {kind: [(d, isinstance(d, EncodedDestination)) for d in found]
                      for kind, found in destinations.items()}
        self._inline = {kind: all(writes_inline(d) for d in found) for kind, found in destinations.items()}

    @classmethod
    def from_settings(cls, settings: Any) -> LogRouter:
        return cls({kind: build(settings, kind) for kind in KINDS})

    def writes_inline(self, kind: str) -> bool:
        """Whether every destination of ``kind`` writes without waiting (true when there are none)."""
        return self._inline.get(kind, True)

    def write(self, kind: str, lines: list[dict[str, Any]]) -> None:
        if not lines:
            return
        encoded: list[bytes] | None = None
        for destination, takes_encoded in self._plan.get(kind, ()):
            try:
                if takes_encoded:
                    if encoded is None:
                        encoded = [fastjson.dumps(line) for line in lines]
                    cast(EncodedDestination, destination).write_encoded(kind, encoded)
                else:
                    destination.write(kind, lines)
            except Exception:  # a broken sink must not fail the agent's request
                log.exception("%s log destination %s failed", kind, type(destination).__name__)

    def close(self) -> None:
        for destinations in self.destinations.values():
            for destination in destinations:
                close = getattr(destination, "close", None)
                if callable(close):
                    close()


def router_for(state: Any) -> LogRouter:
    """The process's LogRouter, built from settings on first use (kept in ``state.extras``)."""
    existing = state.extras.get("log_router")
    if isinstance(existing, LogRouter):
        return existing
    with _LOCK:
        existing = state.extras.get("log_router")
        if not isinstance(existing, LogRouter):
            existing = LogRouter.from_settings(state.settings)
            state.extras["log_router"] = existing
    return existing


__all__ = ["KINDS", "REGISTRY", "RESULT", "STATUS", "EncodedDestination", "LogDestination", "LogDestinationError",
           "LogRouter", "build", "names_for", "register", "router_for"]
