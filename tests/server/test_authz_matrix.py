"""The authorization matrix: every REST route against every role and against no token.

Routes come from the real app (``create_app``), so routes added later are
covered automatically; the expectations come from
``hostql.server.services.route_roles.ROUTE_ROLES`` (one line per route -- see
that module's docstring).  A route missing from the table, or a table line
without a route, fails here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from server_helpers import RouteInfo, SharedClient, assert_fleet_error, auth, http_routes, make_user, new_token

from hostql.server.app import create_app
from hostql.server.services import authz
from hostql.server.services.route_roles import LEVELS, ROUTE_ROLES
from hostql.server.state import ServerState
from hostql.server.storage.db import Database

PREFIXES = ("/api/v1/fleet", "/api/v1/setup")
GLOBAL_ROLES = ("observer", "observer_plus", "maintainer", "admin")


def _routes() -> list[RouteInfo]:
    return http_routes(create_app(ServerState(Database("sqlite://"))), PREFIXES)


ROUTES = _routes()


def _call(client: TestClient, route: RouteInfo, headers: dict[str, str] | None = None) -> Any:
    kwargs: dict[str, Any] = {"headers": headers or {}}
    if route.has_body:
        kwargs["json"] = {}
    return client.request(route.method, route.url(), **kwargs)


def test_routes_were_found() -> None:
    keys = {r.key for r in ROUTES}
    assert "POST /api/v1/fleet/login" in keys and "GET /api/v1/fleet/me" in keys
    assert len(keys) > 15


def test_every_route_has_a_table_entry_and_every_entry_a_route() -> None:
    keys = {r.key for r in ROUTES}
    missing = sorted(keys - set(ROUTE_ROLES))
    stale = sorted(k for k in ROUTE_ROLES if k.split(" ", 1)[1].startswith(PREFIXES) and k not in keys)
    assert not missing, f"add these routes to hostql.server.services.route_roles.ROUTE_ROLES: {missing}"
    assert not stale, f"table lines without a route (path typo or removed route): {stale}"
    bad_levels = {k: v for k, v in ROUTE_ROLES.items() if v not in LEVELS}
    assert not bad_levels


@pytest.mark.parametrize("route", [r for r in ROUTES if ROUTE_ROLES.get(r.key) != "public"], ids=lambda r: r.key)
def test_without_a_token_the_answer_is_401(shared: SharedClient, route: RouteInfo) -> None:
    client = shared.client
    response = _call(client, route)
    assert response.status_code == 401, (route.key, response.status_code, response.text)
    assert_fleet_error(response.json())
    bad = _call(client, route, auth("not-a-real-token"))
    assert bad.status_code == 401, (route.key, bad.status_code, bad.text)
    assert_fleet_error(bad.json())


@pytest.mark.parametrize("route", [r for r in ROUTES if ROUTE_ROLES.get(r.key) == "public"], ids=lambda r: r.key)
def test_public_routes_answer_without_a_token(client: TestClient, route: RouteInfo) -> None:
    response = _call(client, route)
    assert response.status_code not in (401, 403), (route.key, response.text)
    assert response.status_code < 500, (route.key, response.text)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedClient]:
    """One app for the whole sweep, with one user per global role (emails ``<role>@example.com``)."""
    app = SharedClient(tmp_path_factory.mktemp("matrix"))
    for role in GLOBAL_ROLES:
        make_user(app.database, f"{role}@example.com", role)
    yield app
    app.close()


@pytest.mark.parametrize("route", [r for r in ROUTES if r.key in ROUTE_ROLES], ids=lambda r: r.key)
def test_each_role_gets_what_the_table_says(shared: SharedClient, route: RouteInfo) -> None:
    client, database = shared.client, shared.database
    role_users = {role: f"{role}@example.com" for role in GLOBAL_ROLES}
    level = ROUTE_ROLES[route.key]
    for role in GLOBAL_ROLES:
        # A fresh session per call: logout or session deletion must not leak into the next call.
        token = new_token(database, role_users[role])
        response = _call(client, route, auth(token))
        allowed = level in ("public", "user") or authz.meets(role, level)
        context = (route.key, role, level, response.status_code, response.text[:300])
        assert response.status_code < 500, context
        if allowed:
            assert response.status_code not in (401, 403), context
        else:
            assert response.status_code == 403, context
            assert_fleet_error(response.json())


def test_a_user_without_any_role_only_reaches_user_level_routes(client: TestClient, database: Database) -> None:
    make_user(database, "nobody@example.com", None)
    for route in ROUTES:
        level = ROUTE_ROLES.get(route.key)
        if level in (None, "public", "user"):
            continue
        response = _call(client, route, auth(new_token(database, "nobody@example.com")))
        assert response.status_code == 403, (route.key, response.status_code)


def test_a_route_missing_from_the_table_is_refused(client: TestClient, admin_token: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from hostql.server.services import route_roles

    monkeypatch.delitem(route_roles.ROUTE_ROLES, "GET /api/v1/fleet/me")
    response = client.get("/api/v1/fleet/me", headers=auth(admin_token))
    assert response.status_code == 403
    assert "ROUTE_ROLES" in response.json()["errors"][0]["reason"]


def test_the_table_is_enforced_before_the_body_is_validated(client: TestClient, database: Database) -> None:
    token = make_user(database, "obs@example.com", "observer")
    response = client.post("/api/v1/fleet/users/admin", json={"unexpected": True}, headers=auth(token))
    assert response.status_code == 403


def test_team_roles_count_for_the_table(client: TestClient, database: Database) -> None:
    from server_helpers import make_team

    team = make_team(database, "blue")
    observer = make_user(database, "team-obs@example.com", None, teams={team: "observer"})
    admin = make_user(database, "team-admin@example.com", None, teams={team: "admin"})
    # A team observer reaches observer-level routes, a team admin passes the table for admin-level ones
    # (the handler then decides on the object: user management is for global admins only).
    assert client.get("/api/v1/fleet/me", headers=auth(observer)).status_code == 200
    assert client.get("/api/v1/fleet/users", headers=auth(observer)).status_code == 403
    listing = client.get("/api/v1/fleet/users", headers=auth(admin))
    assert listing.status_code == 403
    assert_fleet_error(listing.json())
