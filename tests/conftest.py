from __future__ import annotations

import json
import os
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

# Generator bugs must fail tests instead of ending a scan early, and installed
# third-party plugins must not change what tests observe.
os.environ["HOSTQL_STRICT_TABLES"] = "1"
os.environ["HOSTQL_NO_ENTRYPOINTS"] = "1"

DATA = Path(__file__).parent / "data"
OSQUERY_SCHEMA = DATA / "osquery" / "osquery_schema.json"
OSQUERY_PACKS = DATA / "osquery" / "packs"


@cache
def osquery_tables() -> dict[str, dict[str, Any]]:
    """osquery's own table definitions, by name (reference data)."""
    data = json.loads(OSQUERY_SCHEMA.read_text())
    return {t["name"]: t for t in data["tables"]}


@pytest.fixture(scope="session")
def db() -> Iterator[Any]:
    from hostql.sql.connection import Connection

    conn = Connection()
    yield conn
    conn.close()


def pytest_report_header() -> str:
    import apsw

    return f"apsw {apsw.apswversion()}, SQLite {apsw.sqlite_lib_version()}"
