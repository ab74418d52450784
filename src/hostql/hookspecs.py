"""Every hook a hostql plugin can implement.  Implementations may take any
subset of a hook's arguments."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from hostql.tables.spec import TableSpec

hookspec = pluggy.HookspecMarker("hostql")
hookimpl = pluggy.HookimplMarker("hostql")


@hookspec
def register_tables() -> list[TableSpec]:  # type: ignore[empty-body]
    """Return table specs to add to every SQL connection."""


@hookspec
def prepare_connection(connection: Any) -> None:
    """Called with each new apsw connection, after tables and functions exist."""
