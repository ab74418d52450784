"""Callbacks for "a row of these models changed in this process" (the caches' invalidation).

The server keeps a few small process-wide caches (the app config, the label and policy
sets, saved-query lookups); each forgets its content when a row it was built from is
inserted, updated or deleted through the ORM, whether object by object (mapper events at
flush) or by a bulk UPDATE/DELETE statement (``do_orm_execute``; one whose model is
unknown counts for every model).  Changes made outside this process are seen when the
cache's TTL ends.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session

_watchers: list[tuple[tuple[type, ...], Callable[[], None]]] = []


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
