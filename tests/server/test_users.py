"""Users: creation, roles (global and team), enable/disable, deletion, sessions, team-scoped authz."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from server_helpers import PASSWORD, assert_fleet_error, auth, make_team, make_user, user_id
from sqlalchemy import select

from hostql.server.errors import Forbidden
from hostql.server.services import authz
from hostql.server.storage.db import Database
from hostql.server.storage.models import Activity, User

USERS = "/api/v1/fleet/users"


def create(client: TestClient, token: str, **fields: Any) -> Any:
    body = {"name": "Bob", "email": "bob@example.com", "password": PASSWORD, "global_role": "observer", **fields}
    return client.post(f"{USERS}/admin", json=body, headers=auth(token))


def activities(database: Database) -> list[tuple[str, dict[str, Any]]]:
    with database.session() as session:
        return [(a.type, a.details) for a in session.scalars(select(Activity).order_by(Activity.id))]


def login(client: TestClient, email: str, password: str = PASSWORD) -> Any:
    return client.post("/api/v1/fleet/login", json={"email": email, "password": password})


def test_admin_creates_a_user(client: TestClient, database: Database, admin_token: str) -> None:
    response = create(client, admin_token)
    assert response.status_code == 200, response.text
    user = response.json()["user"]
    assert user["email"] == "bob@example.com" and user["global_role"] == "observer" and user["teams"] == []
    assert "token" not in response.json()
    assert ("created_user", {"user_id": user["id"], "user_name": "Bob", "user_email": "bob@example.com"}) \
        in activities(database)
    assert login(client, "bob@example.com").status_code == 200


@pytest.mark.parametrize(("fields", "status", "name"), [
    ({"global_role": "superuser"}, 422, "global_role"),
    ({"global_role": None}, 422, "global_role"),
    ({"teams": [{"id": 1, "role": "observer"}]}, 422, "global_role"),  # both set
    ({"global_role": None, "teams": [{"id": 999, "role": "observer"}]}, 422, "teams"),
    ({"password": "weak"}, 422, "password"),
    ({"email": "no-at-sign"}, 422, "email"),
    ({"name": "  "}, 422, "name"),
    ({"global_role": 3}, 422, "global_role"),
    ({"api_only": "yes"}, 422, "api_only"),
    ({"teams": [{"id": "1", "role": "observer"}], "global_role": None}, 422, "teams.0.id"),
    ({"is_admin": True}, 422, "is_admin"),
])
def test_bad_users_are_refused_naming_the_field(
    client: TestClient, admin_token: str, fields: dict[str, Any], status: int, name: str
) -> None:
    response = create(client, admin_token, **fields)
    assert response.status_code == status, response.text
    body = response.json()
    assert_fleet_error(body)
    assert name in [e["name"] for e in body["errors"]], body


def test_duplicate_email_is_a_409(client: TestClient, admin_token: str) -> None:
    assert create(client, admin_token).status_code == 200
    again = create(client, admin_token, email="BOB@example.com")
    assert again.status_code == 409
    assert again.json()["errors"][0]["name"] == "email"


def test_api_only_users_get_a_non_expiring_token(client: TestClient, database: Database, admin_token: str) -> None:
    response = create(client, admin_token, email="ci@example.com", api_only=True, global_role="maintainer")
    assert response.status_code == 200
    body = response.json()
    assert body["user"]["api_only"] is True and body["user"]["force_password_reset"] is False
    me = client.get("/api/v1/fleet/me", headers=auth(body["token"]))
    assert me.status_code == 200 and me.json()["user"]["email"] == "ci@example.com"
    sessions = client.get(f"{USERS}/{body['user']['id']}/sessions", headers=auth(admin_token)).json()["sessions"]
    assert sessions and all(s["expires_at"] is None for s in sessions)


def test_team_users(client: TestClient, database: Database, admin_token: str) -> None:
    blue, red = make_team(database, "blue"), make_team(database, "red")
    response = create(client, admin_token, global_role=None,
                      teams=[{"id": blue, "role": "maintainer"}, {"id": red, "role": "observer"}])
    assert response.status_code == 200, response.text
    user = response.json()["user"]
    assert user["global_role"] is None
    assert [(t["id"], t["name"], t["role"]) for t in user["teams"]] == [(blue, "blue", "maintainer"),
                                                                        (red, "red", "observer")]
    with database.session() as session:
        row = session.get(User, user["id"])
        assert row is not None
        assert authz.allowed(row, authz.WRITE, blue) and not authz.allowed(row, authz.WRITE, red)
        assert not authz.allowed(row, authz.WRITE) and not authz.allowed(row, authz.READ)
        assert authz.allowed(row, authz.READ, red) and authz.allowed_any(row, authz.WRITE)
        assert authz.visible_team_ids(row) == {blue, red}
        assert authz.can_see_team(row, blue) and not authz.can_see_team(row, None)
        assert not authz.can_see_team(row, 12345)
        assert authz.best_role(row) == "maintainer"
        with pytest.raises(Forbidden):
            authz.require(row, authz.WRITE, red)
        with pytest.raises(Forbidden):
            authz.require(row, authz.ADMIN, blue)
        authz.require(row, authz.WRITE, blue)
        authz.require_any(row, authz.RUN_ANY)
    teams = client.get("/api/v1/fleet/me", headers=auth(login_token(client, database, "bob@example.com")))
    assert {t["name"] for t in teams.json()["available_teams"]} == {"blue", "red"}


def login_token(client: TestClient, database: Database, email: str) -> str:
    with database.session() as session:
        session.scalars(select(User).where(User.email == email)).one().force_password_reset = False
    token: str = login(client, email).json()["token"]
    return token


def test_global_users_see_everything() -> None:
    user = User(email="g@example.com", global_role="observer")
    assert authz.visible_team_ids(user) is None and authz.can_see_team(user, None)
    assert authz.allowed(user, authz.READ, 5) and not authz.allowed(user, authz.WRITE, 5)
    assert authz.allowed(user, authz.RUN_OBSERVER) and not authz.allowed(user, authz.RUN_ANY)
    plus = User(email="p@example.com", global_role="observer_plus")
    assert authz.allowed(plus, authz.RUN_ANY) and not authz.allowed(plus, authz.WRITE)
    assert authz.meets("maintainer", "observer_plus") and not authz.meets("observer_plus", "maintainer")
    assert not authz.meets(None, "observer")


def test_listing_users(client: TestClient, database: Database, admin_token: str) -> None:
    for name in ("Carol", "Alice", "Dave"):
        assert create(client, admin_token, name=name, email=f"{name.lower()}@example.com").status_code == 200
    names = [u["name"] for u in client.get(USERS, headers=auth(admin_token)).json()["users"]]
    assert names == sorted(names) and {"Alice", "Carol", "Dave"} <= set(names)
    desc = client.get(f"{USERS}?order_key=name&order_direction=desc&per_page=2", headers=auth(admin_token))
    assert [u["name"] for u in desc.json()["users"]] == sorted(names, reverse=True)[:2]
    found = client.get(f"{USERS}?query=aLi", headers=auth(admin_token)).json()["users"]
    assert [u["email"] for u in found] == ["alice@example.com"]
    page = client.get(f"{USERS}?page=1&per_page=1", headers=auth(admin_token)).json()["users"]
    assert [u["name"] for u in page] == [names[1]]
    bad = client.get(f"{USERS}?order_key=password_hash", headers=auth(admin_token))
    assert bad.status_code == 422


def test_users_read_themselves_but_not_others(client: TestClient, database: Database, admin_token: str) -> None:
    token = make_user(database, "obs@example.com", "observer")
    me = user_id(database, "obs@example.com")
    admin = user_id(database, "admin@example.com")
    assert client.get(f"{USERS}/{me}", headers=auth(token)).status_code == 200
    other = client.get(f"{USERS}/{admin}", headers=auth(token))
    assert other.status_code == 403
    assert_fleet_error(other.json())
    assert client.get(f"{USERS}/{me}", headers=auth(admin_token)).json()["user"]["email"] == "obs@example.com"
    assert client.get(f"{USERS}/424242", headers=auth(admin_token)).status_code == 404


def test_users_edit_their_name_but_not_their_role(client: TestClient, database: Database) -> None:
    token = make_user(database, "obs@example.com", "observer", password=PASSWORD)
    make_user(database, "admin@example.com", "admin")
    me = user_id(database, "obs@example.com")
    renamed = client.patch(f"{USERS}/{me}", json={"name": "Olga"}, headers=auth(token))
    assert renamed.status_code == 200 and renamed.json()["user"]["name"] == "Olga"
    promote = client.patch(f"{USERS}/{me}", json={"global_role": "admin"}, headers=auth(token))
    assert promote.status_code == 403
    enable = client.patch(f"{USERS}/{me}", json={"enabled": False}, headers=auth(token))
    assert enable.status_code == 403
    others = client.patch(f"{USERS}/{user_id(database, 'admin@example.com')}", json={"name": "x"},
                          headers=auth(token))
    assert others.status_code == 403
    no_password = client.patch(f"{USERS}/{me}", json={"email": "new@example.com"}, headers=auth(token))
    assert no_password.status_code == 422 and no_password.json()["errors"][0]["name"] == "password"
    with_password = client.patch(f"{USERS}/{me}", json={"email": "new@example.com", "password": PASSWORD},
                                 headers=auth(token))
    assert with_password.status_code == 200 and with_password.json()["user"]["email"] == "new@example.com"


def test_admin_changes_roles_and_it_is_audited(client: TestClient, database: Database, admin_token: str) -> None:
    team = make_team(database, "blue")
    bob = create(client, admin_token).json()["user"]["id"]
    promoted = client.patch(f"{USERS}/{bob}", json={"global_role": "maintainer"}, headers=auth(admin_token))
    assert promoted.status_code == 200 and promoted.json()["user"]["global_role"] == "maintainer"
    moved = client.patch(f"{USERS}/{bob}", json={"teams": [{"id": team, "role": "admin"}]}, headers=auth(admin_token))
    assert moved.status_code == 200
    user = moved.json()["user"]
    assert user["global_role"] is None and [(t["id"], t["role"]) for t in user["teams"]] == [(team, "admin")]
    changed = client.patch(f"{USERS}/{bob}", json={"teams": [{"id": team, "role": "observer"}]},
                           headers=auth(admin_token))
    assert [t["role"] for t in changed.json()["user"]["teams"]] == ["observer"]
    back = client.patch(f"{USERS}/{bob}", json={"global_role": "observer_plus", "teams": []},
                        headers=auth(admin_token))
    assert back.status_code == 200 and back.json()["user"]["teams"] == [] \
        and back.json()["user"]["global_role"] == "observer_plus"
    types = [t for t, _ in activities(database)]
    assert types.count("changed_user_global_role") == 3  # created as observer, maintainer, observer_plus
    assert "deleted_user_global_role" in types and types.count("changed_user_team_role") == 2
    assert "deleted_user_team_role" in types
    details = dict(activities(database))["changed_user_team_role"]
    assert details["team_id"] == team and details["team_name"] == "blue" and details["user_id"] == bob
    both = client.patch(f"{USERS}/{bob}", json={"global_role": "admin", "teams": [{"id": team, "role": "admin"}]},
                        headers=auth(admin_token))
    assert both.status_code == 422


def test_disable_and_enable(client: TestClient, database: Database, admin_token: str) -> None:
    bob = create(client, admin_token, api_only=True).json()
    token = bob["token"]
    off = client.patch(f"{USERS}/{bob['user']['id']}", json={"enabled": False}, headers=auth(admin_token))
    assert off.status_code == 200 and off.json()["user"]["enabled"] is False
    assert client.get("/api/v1/fleet/me", headers=auth(token)).status_code == 401
    assert login(client, "bob@example.com").status_code == 401
    on = client.patch(f"{USERS}/{bob['user']['id']}", json={"enabled": True}, headers=auth(admin_token))
    assert on.json()["user"]["enabled"] is True
    assert login(client, "bob@example.com").status_code == 200
    types = [t for t, _ in activities(database)]
    assert "disabled_user" in types and "enabled_user" in types


def test_the_last_admin_cannot_be_removed(client: TestClient, database: Database, admin_token: str) -> None:
    me = user_id(database, "admin@example.com")
    for body in ({"global_role": "observer"}, {"enabled": False}):
        response = client.patch(f"{USERS}/{me}", json=body, headers=auth(admin_token))
        assert response.status_code == 422, body
    assert client.delete(f"{USERS}/{me}", headers=auth(admin_token)).status_code == 422
    second = create(client, admin_token, global_role="admin", email="admin2@example.com").json()["user"]["id"]
    assert client.patch(f"{USERS}/{me}", json={"global_role": "observer"}, headers=auth(admin_token)).status_code == 200
    assert client.get(f"{USERS}/{second}", headers=auth(admin_token)).status_code == 403  # no longer an admin


def test_delete_user(client: TestClient, database: Database, admin_token: str) -> None:
    bob = create(client, admin_token, api_only=True).json()
    assert client.delete(f"{USERS}/{bob['user']['id']}", headers=auth(admin_token)).status_code == 200
    assert client.get(f"{USERS}/{bob['user']['id']}", headers=auth(admin_token)).status_code == 404
    assert client.get("/api/v1/fleet/me", headers=auth(bob["token"])).status_code == 401
    assert client.delete(f"{USERS}/{bob['user']['id']}", headers=auth(admin_token)).status_code == 404
    assert activities(database)[-1][0] == "deleted_user"


def test_sessions_can_be_listed_and_revoked(client: TestClient, database: Database, admin_token: str) -> None:
    make_user(database, "bob@example.com", "observer", password=PASSWORD)
    bob = user_id(database, "bob@example.com")
    first, second = (login(client, "bob@example.com").json()["token"] for _ in range(2))
    listed = client.get(f"{USERS}/{bob}/sessions", headers=auth(admin_token)).json()["sessions"]
    assert len(listed) == 3  # make_user's own session plus two logins
    assert all("key" not in s and "key_hash" not in s for s in listed)
    info = client.get(f"/api/v1/fleet/sessions/{listed[-1]['id']}", headers=auth(admin_token))
    assert info.status_code == 200 and info.json()["user_id"] == bob
    assert client.delete(f"/api/v1/fleet/sessions/{listed[-1]['id']}", headers=auth(admin_token)).status_code == 200
    assert client.get("/api/v1/fleet/me", headers=auth(second)).status_code == 401
    assert client.get("/api/v1/fleet/me", headers=auth(first)).status_code == 200
    assert client.delete(f"{USERS}/{bob}/sessions", headers=auth(admin_token)).status_code == 200
    assert client.get("/api/v1/fleet/me", headers=auth(first)).status_code == 401
    assert client.get("/api/v1/fleet/sessions/987654", headers=auth(admin_token)).status_code == 404


def test_require_password_reset(client: TestClient, database: Database, admin_token: str) -> None:
    make_user(database, "bob@example.com", "observer", password=PASSWORD)
    bob = user_id(database, "bob@example.com")
    token = login(client, "bob@example.com").json()["token"]
    response = client.post(f"{USERS}/{bob}/require_password_reset", json={"require": True}, headers=auth(admin_token))
    assert response.status_code == 200 and response.json()["user"]["force_password_reset"] is True
    assert client.get("/api/v1/fleet/me", headers=auth(token)).status_code == 401  # sessions were ended
    fresh = login(client, "bob@example.com").json()
    assert fresh["user"]["force_password_reset"] is True
    assert client.get("/api/v1/fleet/activities", headers=auth(fresh["token"])).status_code == 403
    wrong = client.post(f"{USERS}/{bob}/require_password_reset", json={"require": "yes"}, headers=auth(admin_token))
    assert wrong.status_code == 422 and wrong.json()["errors"][0]["name"] == "require"


def test_admin_sets_another_users_password(client: TestClient, database: Database, admin_token: str) -> None:
    make_user(database, "bob@example.com", "observer", password=PASSWORD)
    bob = user_id(database, "bob@example.com")
    weak = client.patch(f"{USERS}/{bob}", json={"new_password": "weak"}, headers=auth(admin_token))
    assert weak.status_code == 422 and weak.json()["errors"][0]["name"] == "new_password"
    ok = client.patch(f"{USERS}/{bob}", json={"new_password": "brand-new-pass-4"}, headers=auth(admin_token))
    assert ok.status_code == 200
    assert login(client, "bob@example.com").status_code == 401
    assert login(client, "bob@example.com", "brand-new-pass-4").status_code == 200
