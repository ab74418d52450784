"""SQL functions and collations osquery adds to SQLite."""

from __future__ import annotations

import apsw

from hostql.sql import versions


def register(db: apsw.Connection) -> None:
    """Add osquery's functions and collations to ``db``."""
    for name, compare in versions.COLLATIONS.items():
        db.create_collation(name, compare)
