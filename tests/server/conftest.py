"""Fixtures for server tests: an app on a fresh SQLite file, users and tokens.

``client`` is a Starlette TestClient over the real ASGI app (no network);
whole-system tests in tests/e2e run the real ``hostql server`` process.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hostql.server.api.deps import token_hash
from hostql.server.app import create_app
from hostql.server.state import ServerState
from hostql.server.storage.db import Database
from hostql.server.storage.models import Session, User


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


def make_user(database: Database, email: str, role: str | None = "admin", *, api_only: bool = False) -> str:
    """Create a user with ``role`` and a session; returns its bearer token."""
    token = secrets.token_urlsafe(32)
    with database.session() as session:
        user = User(name=email.split("@")[0], email=email, global_role=role, api_only=api_only)
        session.add(user)
        session.flush()
        session.add(Session(key_hash=token_hash(token), user_id=user.id))
    return token


@pytest.fixture
def admin_token(database: Database) -> str:
    return make_user(database, "admin@example.com", "admin")


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
