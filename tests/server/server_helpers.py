"""Helpers for server tests (imported by name; see tests/conftest.py)."""

from __future__ import annotations

import secrets

from hostql.server.api.deps import token_hash
from hostql.server.storage.db import Database
from hostql.server.storage.models import Session, User


def make_user(database: Database, email: str, role: str | None = "admin", *, api_only: bool = False) -> str:
    """Create a user with ``role`` and a session; returns its bearer token."""
    token = secrets.token_urlsafe(32)
    with database.session() as session:
        user = User(name=email.split("@")[0], email=email, global_role=role, api_only=api_only)
        session.add(user)
        session.flush()
        session.add(Session(key_hash=token_hash(token), user_id=user.id))
    return token


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
