"""Fixtures for server tests: an app on a fresh SQLite file, users and tokens.

``client`` is a Starlette TestClient over the real ASGI app (no network);
whole-system tests in tests/e2e run the real ``hostql server`` process.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from server_helpers import make_user

from hostql.server.app import create_app
from hostql.server.state import ServerState
from hostql.server.storage.db import Database


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    db = Database(f"sqlite:///{tmp_path}/server.db")
    db.create_all()
    yield db
    db.dispose()


@pytest.fixture
def state(database: Database) -> ServerState:
    return ServerState(database)


@pytest.fixture
def client(state: ServerState) -> Iterator[TestClient]:
    with TestClient(create_app(state)) as test_client:
        yield test_client


@pytest.fixture
def admin_token(database: Database) -> str:
    return make_user(database, "admin@example.com", "admin")


