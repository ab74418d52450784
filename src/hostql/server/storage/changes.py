"""Callbacks for "a row of these models changed in this process" (the caches' invalidation).

The server keeps a few small process-wide caches (the app config, the label and policy
sets, saved-query lookups); each forgets its content when a row it was built from is
inserted, updated or deleted through the ORM, whether object by object (mapper events at
flush) or by a bulk UPDATE/DELETE statement (``do_orm_execute``; one whose model is
unknown counts for every model).  Changes made outside this process are seen when the
cache's TTL ends.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session

_watchers: list[tuple[tuple[type, ...], Callable[[], None]]] = []
V = TypeVar("V")


def on_change(models: tuple[type, ...], callback: Callable[[], None]) -> None:
    """Call ``callback()`` whenever a row of one of ``models`` changes through the ORM."""

    def changed(*_: Any) -> None:
        callback()

    for model in models:
        for name in ("after_insert", "after_update", "after_delete"):
            event.listen(model, name, changed)
    _watchers.append((models, callback))


@event.listens_for(Session, "do_orm_execute")
def _bulk_statement(orm_state: ORMExecuteState) -> None:
    if not (orm_state.is_update or orm_state.is_delete):
        return
    mapper = orm_state.bind_mapper
    for models, callback in _watchers:
        if mapper is None or mapper.class_ in models:
            callback()


class ChangeCache(Generic[V]):
    """Values built from rows of ``models``, per database engine and key, reused for ``ttl``
    seconds and forgotten at once when such a row changes through this process's ORM.

    Made once per module (each registers its :func:`on_change` callback for good).  A value
    built while a change happened is kept under the generation read before the build, so
    the next call builds it again.  Engines are held weakly (tests open many databases);
    each engine keeps at most ``max_keys`` values."""

    def __init__(self, models: tuple[type, ...], ttl: float, max_keys: int = 1000) -> None:
        self.ttl = ttl
        self.max_keys = max_keys
        self._generation = 0
        self._lock = threading.Lock()
        self._engines: weakref.WeakKeyDictionary[Any, dict[Hashable, tuple[float, int, V]]] = (
            weakref.WeakKeyDictionary())
        on_change(models, self._changed)

    def _changed(self) -> None:
        self._generation += 1

    def get(self, engine: Any, key: Hashable, build: Callable[[], V]) -> V:
        """The value of ``key`` for ``engine``: cached while current, else ``build()`` (and kept)."""
        generation, now = self._generation, time.monotonic()
        values = self._engines.get(engine)
        hit = values.get(key) if values is not None else None
        if hit is not None and hit[1] == generation and now - hit[0] < self.ttl:
            return hit[2]
        value = build()
        with self._lock:
            values = self._engines.setdefault(engine, {})
            if len(values) >= self.max_keys:
                values.clear()
            values[key] = (now, generation, value)
        return value
