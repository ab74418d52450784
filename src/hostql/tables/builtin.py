"""Registers the built-in tables (the ``tables`` hook of the default plugin)."""

from __future__ import annotations

import importlib

from hostql.hookspecs import hookimpl
from hostql.tables.spec import TableSpec

# One module per domain; each defines TABLES.  Kept as names so that adding a
# domain touches this list only.
SPEC_MODULES: tuple[str, ...] = (
    "hostql.tables.specs.osquery",
    "hostql.tables.specs.system",
    "hostql.tables.specs.hardware",
    "hostql.tables.specs.etc",
    "hostql.tables.specs.processes",
    "hostql.tables.specs.network",
    "hostql.tables.specs.users",
    "hostql.tables.specs.software",
    "hostql.tables.specs.files",
)


@hookimpl
def register_tables() -> list[TableSpec]:
    tables: list[TableSpec] = []
    for name in SPEC_MODULES:
        tables.extend(importlib.import_module(name).TABLES)
    return tables
