"""Registers the built-in tables: the default plugin's ``register_tables`` hook.

The function is found by its hook name, so this module does not import pluggy.
"""

from __future__ import annotations

import importlib

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


def register_tables() -> list[TableSpec]:
    tables: list[TableSpec] = []
    for name in SPEC_MODULES:
        tables.extend(importlib.import_module(name).TABLES)
    return tables
