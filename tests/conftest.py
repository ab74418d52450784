from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Generator bugs must fail tests instead of ending a scan early, and installed
# third-party plugins must not change what tests observe.
os.environ["HOSTQL_STRICT_TABLES"] = "1"
os.environ["HOSTQL_NO_ENTRYPOINTS"] = "1"

# Shared test helpers live in uniquely named modules (several directories have
# a conftest.py, so ``from conftest import`` would be ambiguous).
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent / "server"))


@pytest.fixture(scope="session")
def db() -> Iterator[Any]:
    from hostql.sql.connection import Connection

    conn = Connection()
    yield conn
    conn.close()


def pytest_report_header() -> str:
    import apsw

    return f"apsw {apsw.apswversion()}, SQLite {apsw.sqlite_lib_version()}"

