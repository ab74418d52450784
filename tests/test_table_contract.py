"""Every registered table matches osquery's schema and returns typed rows."""

from __future__ import annotations

from typing import Any

import pytest

from hostql.tables.registry import platform_specs
from hostql.tables.spec import LINUX, TableSpec
from osquery_data import osquery_tables

SPECS = platform_specs(LINUX)

PYTHON_TYPES = {
    "TEXT": (str,),
    "INTEGER": (int,),
    "BIGINT": (int,),
    "UNSIGNED BIGINT": (int,),
    "DOUBLE": (float,),
    "BLOB": (bytes, str),
}

# A constraint that satisfies each table's required columns on any host.
REQUIRED_CONSTRAINTS = {
    "file": "path = '/etc/hostname' OR path = '/etc/passwd'",
    "hash": "path = '/etc/passwd'",
}


def _option_flags(column: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": column["name"],
        "type": column["type"],
        "required": column["required"],
        "index": column["index"],
        "additional": column["additional"],
        "optimized": column["optimized"],
        "hidden": column["hidden"],
        "collate": column.get("collate"),
        "aliases": tuple(column.get("aliases", ())),
        "platforms": frozenset(column["platforms"]) if column.get("platforms") else None,
    }


def _spec_flags(spec: TableSpec) -> list[dict[str, Any]]:
    return [
        {
            "name": c.name,
            "type": c.type.value,
            "required": c.required,
            "index": c.index,
            "additional": c.additional,
            "optimized": c.optimized,
            "hidden": c.hidden,
            "collate": c.collate,
            "aliases": c.aliases,
            "platforms": c.platforms,
        }
        for c in spec.columns
    ]


@pytest.mark.parametrize("name", sorted(SPECS))
def test_schema_matches_osquery(name: str) -> None:
    reference = osquery_tables()[name]
    spec = SPECS[name]
    assert _spec_flags(spec) == [_option_flags(c) for c in reference["columns"]]
    assert spec.platforms == frozenset(reference["platforms"])
    assert tuple(spec.aliases) == tuple(reference["aliases"])
    assert spec.cacheable == reference["cacheable"]
    assert spec.user_data == reference["user_data"]
    assert spec.utility == reference["utility"]
    assert spec.evented == reference["evented"]
    assert spec.no_pkey == bool(reference.get("other_attributes", {}).get("no_pkey"))


@pytest.mark.parametrize("name", sorted(SPECS))
def test_spec_is_documented(name: str) -> None:
    spec = SPECS[name]
    assert spec.description.strip(), f"{name} has no description"
    reference = osquery_tables()[name]
    assert spec.description != reference["description"], "write the table description in our own words"
    for col in spec.columns:
        assert col.description.strip(), f"{name}.{col.name} has no description"


@pytest.mark.parametrize("name", sorted(SPECS))
def test_table_runs_and_rows_are_typed(db: Any, name: str) -> None:
    spec = SPECS[name]
    where = REQUIRED_CONSTRAINTS.get(name)
    if spec.required_columns:
        assert where, f"give {name} a constraint in REQUIRED_CONSTRAINTS"
    columns = ", ".join(f'"{c}"' for c in spec.column_names)
    sql = f'SELECT {columns} FROM "{name}"' + (f" WHERE {where}" if where else "")
    result = db.execute(sql)
    assert result.columns == spec.column_names
    for row in result.rows:
        for col, value in zip(spec.columns, row):
            if value is not None:
                assert isinstance(value, PYTHON_TYPES[col.type.value]), (name, col.name, value)
