"""Helpers for server tests (imported by name; see tests/conftest.py)."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, select

from hostql.server.api.deps import token_hash
from hostql.server.storage.db import Database
from hostql.server.storage.models import Session, Team, User, UserTeam

# A password that meets the policy (12+ characters, a digit, a symbol).
PASSWORD = "correct-horse-battery-7"


def make_user(
    database: Database, email: str, role: str | None = "admin", *, api_only: bool = False,
    teams: dict[int, str] | None = None, password: str | None = None,
) -> str:
    """Create a user with a global ``role`` (or ``teams`` {team_id: role}) and a session; returns its token.

    With ``password`` the user can also log in through ``/login``.
    """
    token = secrets.token_urlsafe(32)
    with database.session() as session:
        password_hash = ""
        if password is not None:
            from hostql.server.services.auth import hash_password

            password_hash = hash_password(password)
        user = User(name=email.split("@")[0], email=email, global_role=role, api_only=api_only,
                    password_hash=password_hash)
        session.add(user)
        session.flush()
        for team_id, team_role in (teams or {}).items():
            session.add(UserTeam(user_id=user.id, team_id=team_id, role=team_role))
        session.add(Session(key_hash=token_hash(token), user_id=user.id))
    return token


def new_token(database: Database, email: str) -> str:
    """A fresh session token for the existing user ``email``."""
    token = secrets.token_urlsafe(32)
    with database.session() as session:
        user = session.scalars(select(User).where(User.email == email)).one()
        session.add(Session(key_hash=token_hash(token), user_id=user.id))
    return token


def make_team(database: Database, name: str) -> int:
    with database.session() as session:
        team = Team(name=name)
        session.add(team)
        session.flush()
        return team.id


def user_id(database: Database, email: str) -> int:
    with database.session() as session:
        return session.scalars(select(User.id).where(User.email == email)).one()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_fleet_error(body: Any) -> None:
    """``body`` has Fleet's error shape: message, errors[{name, reason}], uuid."""
    assert isinstance(body, dict), body
    assert isinstance(body.get("message"), str) and body["message"], body
    assert isinstance(body.get("errors"), list), body
    for error in body["errors"]:
        assert set(error) >= {"name", "reason"}, body
    assert isinstance(body.get("uuid"), str) and body["uuid"], body


# --- every route of the app -------------------------------------------------------------


@dataclass(frozen=True)
class RouteInfo:
    method: str
    path: str  # the template, e.g. /api/v1/fleet/users/{user_id}
    has_body: bool
    route: Any

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"

    def url(self, value: str = "999999") -> str:
        """The path with every parameter set to ``value`` (a nonexistent id by default)."""
        return re.sub(r"\{[^}]+\}", value, self.path)


def http_routes(app: Any, prefixes: tuple[str, ...] = ("/api/v1/fleet", "/api/v1/setup")) -> list[RouteInfo]:
    """Every HTTP route of ``app`` whose path starts with one of ``prefixes`` (sorted)."""
    from fastapi.routing import APIRoute

    try:  # FastAPI >= 0.13x keeps included routers as groups
        from fastapi.routing import iter_route_contexts

        candidates: list[Any] = list(iter_route_contexts(app.routes))
    except ImportError:
        candidates = list(app.routes)
    found: dict[str, RouteInfo] = {}
    for candidate in candidates:
        original = getattr(candidate, "original_route", candidate)
        if not isinstance(original, APIRoute):
            continue
        path = candidate.path_format or candidate.path
        if not path.startswith(prefixes):
            continue
        for method in sorted(candidate.methods or ()):
            info = RouteInfo(method, path, original.body_field is not None, original)
            found.setdefault(info.key, info)
    return sorted(found.values(), key=lambda r: r.key)


class SharedClient:
    """One app over one database for a module of route sweeps; ``close()`` when done."""

    def __init__(self, tmp_dir: Any) -> None:
        from fastapi.testclient import TestClient

        from hostql.server.app import create_app
        from hostql.server.state import ServerState

        self.database = Database(f"sqlite:///{tmp_dir}/server.db")
        self.database.create_all()
        self.client = TestClient(create_app(ServerState(self.database)))
        self.client.__enter__()

    def close(self) -> None:
        self.client.__exit__(None, None, None)
        self.database.dispose()


@contextmanager
def recorded_statements(database: Database) -> Iterator[list[str]]:
    """The SQL statements ``database`` runs inside the block, in order."""
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(database.engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(database.engine, "before_cursor_execute", record)
