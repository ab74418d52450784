"""Table specs: processes."""

from __future__ import annotations

from hostql.tables.spec import TableSpec

TABLES: list[TableSpec] = []
