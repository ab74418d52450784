"""hostql: the operating system as SQL, osquery-compatible.

>>> import hostql
>>> hostql.query("SELECT 1 AS one")
[{'one': 1}]
"""

from __future__ import annotations

# Not typing.TYPE_CHECKING: importing typing costs the shell's start-up ~10 ms.
TYPE_CHECKING = False

__version__ = "0.1.0"
# The osquery release whose tables, flags and formats hostql follows.
OSQUERY_VERSION = "5.23.0"

if TYPE_CHECKING:
    from typing import Any

    from hostql.sql.connection import Connection

_default: Connection | None = None


def connect(**kwargs: Any) -> Connection:
    """A new connection with every table of this platform."""
    from hostql.sql.connection import Connection

    return Connection(**kwargs)


def query(sql: str, bindings: Any = None) -> list[dict[str, Any]]:
    """Run ``sql`` on a shared connection and return its rows as dicts."""
    global _default
    if _default is None:
        _default = connect()
    return _default.query(sql, bindings)


__all__ = ["OSQUERY_VERSION", "__version__", "connect", "query"]
