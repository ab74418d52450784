"""Setup, login, logout, sessions, passwords and login rate limiting."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import timedelta
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient
from server_helpers import PASSWORD, assert_fleet_error, auth, make_user, recorded_statements
from sqlalchemy import select, update

from hostql.server.api.deps import token_hash
from hostql.server.app import create_app
from hostql.server.services import auth as auth_service
from hostql.server.state import ServerState
from hostql.server.storage.db import Database
from hostql.server.storage.models import Activity, AppConfig, EnrollSecret, Session, User, utcnow

USER_KEYS = {"id", "name", "email", "global_role", "enabled", "force_password_reset", "sso_enabled", "api_only",
             "teams", "created_at", "updated_at", "gravatar_url"}
SETUP = {"admin": {"name": "Jane Doe", "email": "jane@example.com", "password": PASSWORD,
                   "password_confirmation": PASSWORD},
         "org_info": {"org_name": "Acme"}, "server_url": "https://fleet.example.com",
         "osquery_enroll_secret": "s3cret-enroll"}


def login(client: TestClient, email: str, password: str = PASSWORD, ip: str | None = None) -> object:
    headers = {"x-forwarded-for": ip} if ip else {}
    return client.post("/api/v1/fleet/login", json={"email": email, "password": password}, headers=headers)


def activity_types(database: Database) -> list[str]:
    with database.session() as session:
        return list(session.scalars(select(Activity.type).order_by(Activity.id)))


# --- setup ---------------------------------------------------------------------------


def test_setup_creates_the_admin_config_and_enroll_secret(client: TestClient, database: Database) -> None:
    assert client.get("/api/v1/setup").json() == {"setup_required": True}
    response = client.post("/api/v1/setup", json=SETUP)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) >= {"admin", "org_info", "server_url", "token"}
    assert set(body["admin"]) >= USER_KEYS
    assert body["admin"]["global_role"] == "admin" and body["admin"]["force_password_reset"] is False
    assert body["org_info"]["org_name"] == "Acme" and body["server_url"] == "https://fleet.example.com"
    me = client.get("/api/v1/fleet/me", headers=auth(body["token"]))
    assert me.status_code == 200 and me.json()["user"]["email"] == "jane@example.com"
    with database.session() as session:
        config = session.scalars(select(AppConfig)).one().json_value
        assert config["org_info"]["org_name"] == "Acme"
        assert config["server_settings"]["server_url"] == "https://fleet.example.com"
        secret = session.scalars(select(EnrollSecret)).one()
        assert secret.secret == "s3cret-enroll" and secret.team_id is None
    assert client.get("/api/v1/setup").json() == {"setup_required": False}
    assert login(client, "jane@example.com").status_code == 200


def test_setup_only_once(client: TestClient) -> None:
    assert client.post("/api/v1/setup", json=SETUP).status_code == 200
    again = client.post("/api/v1/setup", json={**SETUP, "admin": {**SETUP["admin"], "email": "evil@example.com"}})
    assert again.status_code == 409
    assert_fleet_error(again.json())
    assert login(client, "evil@example.com").status_code == 401


def test_setup_refuses_bad_input_naming_the_field(client: TestClient) -> None:
    cases = [
        ({**SETUP, "admin": {**SETUP["admin"], "password_confirmation": "other-pass-123!"}}, "password_confirmation"),
        ({**SETUP, "admin": {**SETUP["admin"], "password": "short1!", "password_confirmation": None}}, "password"),
        ({**SETUP, "admin": {**SETUP["admin"], "email": "not-an-email"}}, "email"),
        ({**SETUP, "admin": {**SETUP["admin"], "role": "admin"}}, "admin.role"),
        ({**SETUP, "org_info": {"org_name": 7}}, "org_info.org_name"),
        ({**SETUP, "server_url": "ftp://x"}, "server_url"),
    ]
    for body, field in cases:
        response = client.post("/api/v1/setup", json=body)
        assert response.status_code == 422, (field, response.text)
        assert field in [e["name"] for e in response.json()["errors"]], (field, response.json())
    assert client.get("/api/v1/setup").json() == {"setup_required": True}


def test_setup_without_a_secret_generates_one(client: TestClient, database: Database) -> None:
    body = {k: v for k, v in SETUP.items() if k != "osquery_enroll_secret"}
    response = client.post("/api/v1/setup", json=body)
    assert response.status_code == 200
    with database.session() as session:
        secret = session.scalars(select(EnrollSecret)).one().secret
    assert len(secret) >= 24 and response.json()["osquery_enroll_secret"] == secret


# --- login and logout ------------------------------------------------------------------


@pytest.fixture
def jane(database: Database) -> str:
    make_user(database, "jane@example.com", "admin", password=PASSWORD)
    return "jane@example.com"


def test_login_returns_fleets_user_shape_and_a_working_token(client: TestClient, jane: str) -> None:
    response = login(client, jane)
    assert response.status_code == 200
    body = response.json()
    assert set(body["user"]) >= USER_KEYS and body["user"]["email"] == jane and body["user"]["enabled"] is True
    assert body["user"]["created_at"].endswith("Z") and "T" in body["user"]["created_at"]
    assert len(body["token"]) >= 64
    assert client.get("/api/v1/fleet/me", headers=auth(body["token"])).json()["user"]["email"] == jane


def test_login_is_case_insensitive_on_the_email(client: TestClient, jane: str) -> None:
    assert login(client, "JANE@Example.com").status_code == 200


@pytest.mark.parametrize(("email", "password"), [("jane@example.com", "wrong-password-1!"),
                                                 ("nobody@example.com", PASSWORD), ("jane@example.com", "")])
def test_failed_login_is_fleets_401(client: TestClient, jane: str, email: str, password: str) -> None:
    response = login(client, email, password)
    assert response.status_code == 401
    body = response.json()
    assert body["message"] == "Authentication failed"
    assert body["errors"] == [{"name": "base", "reason": "Authentication failed"}]
    assert_fleet_error(body)


def test_login_and_failures_are_audited(client: TestClient, database: Database, jane: str) -> None:
    login(client, jane, "wrong-password-1!", ip="203.0.113.9")
    login(client, jane, ip="203.0.113.9")
    assert activity_types(database) == ["user_failed_login", "user_logged_in"]
    with database.session() as session:
        failed, ok = session.scalars(select(Activity).order_by(Activity.id)).all()
        assert failed.details == {"email": jane, "public_ip": "203.0.113.9"}
        assert ok.details == {"public_ip": "203.0.113.9"} and ok.user_email == jane


def test_logout_ends_only_that_session(client: TestClient, jane: str) -> None:
    first = login(client, jane).json()["token"]
    second = login(client, jane).json()["token"]
    assert client.post("/api/v1/fleet/logout", headers=auth(first)).status_code == 200
    response = client.get("/api/v1/fleet/me", headers=auth(first))
    assert response.status_code == 401
    assert_fleet_error(response.json())
    assert client.get("/api/v1/fleet/me", headers=auth(second)).status_code == 200


def test_the_token_is_stored_only_as_its_sha256(client: TestClient, database: Database, jane: str) -> None:
    token = login(client, jane).json()["token"]
    with database.session() as session:
        hashes = list(session.scalars(select(Session.key_hash)))
    assert hashlib.sha256(token.encode()).hexdigest() in hashes
    assert token not in hashes


def test_disabled_users_cannot_log_in_or_use_old_tokens(client: TestClient, database: Database, jane: str) -> None:
    token = login(client, jane).json()["token"]
    with database.session() as session:
        session.scalars(select(User).where(User.email == jane)).one().disabled = True
    assert login(client, jane).status_code == 401
    assert client.get("/api/v1/fleet/me", headers=auth(token)).status_code == 401


# --- sessions expire --------------------------------------------------------------------


def test_sessions_expire(client: TestClient, database: Database, jane: str) -> None:
    token = login(client, jane).json()["token"]
    with database.session() as session:
        row = session.scalars(select(Session).order_by(Session.id.desc())).first()
        assert row is not None and row.expires_at is not None
        assert timedelta(days=4, hours=23) < row.expires_at - utcnow() <= timedelta(days=5)
        row.expires_at = utcnow() - timedelta(seconds=1)
    response = client.get("/api/v1/fleet/me", headers=auth(token))
    assert response.status_code == 401
    assert_fleet_error(response.json())
    with database.session() as session:  # the expired row is gone
        assert session.scalars(select(Session).where(Session.key_hash == token_hash(token))).first() is None


def _is_write(statement: str) -> bool:
    return statement.lstrip().split(" ", 1)[0].upper() in ("INSERT", "UPDATE", "DELETE", "REPLACE")


def test_authenticated_reads_write_nothing_and_access_times_are_coarse(client: TestClient, database: Database,
                                                                       jane: str) -> None:
    # A request runs its dependencies and its endpoint on different worker threads; a write in
    # the request's transaction during authentication held SQLite's write lock across that hop
    # and deadlocked a busy server.  The access time is written in a transaction of its own,
    # and only when a minute old.
    token = login(client, jane).json()["token"]
    with recorded_statements(database) as statements:
        assert client.get("/api/v1/fleet/hosts", headers=auth(token)).status_code == 200
    assert [s for s in statements if _is_write(s)] == []
    stale = utcnow() - auth_service.ACCESS_RESOLUTION - timedelta(seconds=1)
    with database.session() as session:
        session.execute(update(Session).where(Session.key_hash == token_hash(token)).values(accessed_at=stale))
    with recorded_statements(database) as statements:
        assert client.get("/api/v1/fleet/hosts", headers=auth(token)).status_code == 200
    assert [s.split()[0] for s in statements if _is_write(s)] == ["UPDATE"]
    with database.session() as session:
        row = session.scalars(select(Session).where(Session.key_hash == token_hash(token))).one()
        assert row.accessed_at > stale


def test_session_duration_comes_from_settings(database: Database, jane: str) -> None:
    state = ServerState(database, settings=SimpleNamespace(session_duration=3600.0))
    with TestClient(create_app(state)) as client:
        assert login(client, jane).status_code == 200
    with database.session() as session:
        row = session.scalars(select(Session).order_by(Session.id.desc())).first()
        assert row is not None and row.expires_at is not None
        assert timedelta(minutes=59) < row.expires_at - utcnow() <= timedelta(hours=1)


def test_api_only_sessions_never_expire(client: TestClient, database: Database) -> None:
    make_user(database, "ci@example.com", "maintainer", api_only=True, password=PASSWORD)
    token = login(client, "ci@example.com").json()["token"]
    with database.session() as session:
        user_id = session.scalars(select(User.id).where(User.email == "ci@example.com")).one()
        rows = list(session.scalars(select(Session).where(Session.user_id == user_id)))
        assert rows and all(row.expires_at is None for row in rows)
    assert client.get("/api/v1/fleet/me", headers=auth(token)).json()["user"]["api_only"] is True


# --- rate limiting ------------------------------------------------------------------------


def test_login_is_rate_limited_per_ip_and_email(client: TestClient, state: ServerState, jane: str) -> None:
    for _ in range(10):
        assert login(client, jane, "wrong-password-1!", ip="198.51.100.1").status_code == 401
    limited = login(client, jane, ip="198.51.100.1")  # even the right password is refused while limited
    assert limited.status_code == 429
    assert_fleet_error(limited.json())
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert login(client, jane, ip="198.51.100.2").status_code == 200  # another address is not affected
    assert login(client, "other@example.com", "x", ip="198.51.100.1").status_code == 401


def test_the_limit_lifts_after_the_window(database: Database, jane: str) -> None:
    now = [1000.0]
    state = ServerState(database)
    state.extras["login_rate_limiter"] = auth_service.MemoryRateLimiter(limit=3, window=60, clock=lambda: now[0])
    with TestClient(create_app(state)) as client:
        for _ in range(3):
            login(client, jane, "wrong-password-1!")
        assert login(client, jane).status_code == 429
        now[0] += 61
        assert login(client, jane).status_code == 200


def test_success_resets_the_counter() -> None:
    limiter = auth_service.MemoryRateLimiter(limit=2, window=60, clock=lambda: 0.0)
    limiter.hit("k")
    limiter.reset("k")
    limiter.hit("k")
    assert limiter.retry_after("k") is None
    limiter.hit("k")
    assert limiter.retry_after("k") == 60


# --- passwords ---------------------------------------------------------------------------


@pytest.mark.parametrize(("password", "ok"), [
    ("correct-horse-battery-7", True), ("Sh0rt!pass", False), ("no-digits-in-here!", False),
    ("nosymbolsatall123", False), ("x" * 47 + "1!", False), ("twelve-char1", True),
])
def test_password_policy(password: str, ok: bool) -> None:
    assert (auth_service.password_problems(password) == []) is ok


def test_passwords_are_argon2_hashed() -> None:
    hashed = auth_service.hash_password(PASSWORD)
    assert hashed.startswith("$argon2id$") and PASSWORD not in hashed
    assert auth_service.verify_password(hashed, PASSWORD)
    assert not auth_service.verify_password(hashed, PASSWORD + "x")
    assert not auth_service.verify_password("garbage", PASSWORD)


def test_change_password(client: TestClient, jane: str) -> None:
    token = login(client, jane).json()["token"]
    new = "another-good-pass-9"
    wrong = client.post("/api/v1/fleet/change_password", json={"old_password": "nope-nope-12!", "new_password": new},
                        headers=auth(token))
    assert wrong.status_code == 422 and wrong.json()["errors"][0]["name"] == "old_password"
    weak = client.post("/api/v1/fleet/change_password", json={"old_password": PASSWORD, "new_password": "weak"},
                       headers=auth(token))
    assert weak.status_code == 422 and {e["name"] for e in weak.json()["errors"]} == {"new_password"}
    ok = client.post("/api/v1/fleet/change_password", json={"old_password": PASSWORD, "new_password": new},
                     headers=auth(token))
    assert ok.status_code == 200
    assert login(client, jane).status_code == 401
    assert login(client, jane, new).status_code == 200


@pytest.fixture
def admin_login(client: TestClient, jane: str) -> Iterator[str]:
    yield login(client, jane).json()["token"]


def test_required_password_reset_blocks_everything_else(client: TestClient, admin_login: str) -> None:
    created = client.post("/api/v1/fleet/users/admin", headers=auth(admin_login), json={
        "name": "Obs", "email": "obs@example.com", "password": PASSWORD, "global_role": "observer"})
    assert created.status_code == 200 and created.json()["user"]["force_password_reset"] is True
    token = login(client, "obs@example.com").json()["token"]
    assert client.get("/api/v1/fleet/me", headers=auth(token)).status_code == 200
    blocked = client.get("/api/v1/fleet/activities", headers=auth(token))
    assert blocked.status_code == 403
    assert_fleet_error(blocked.json())
    same = client.post("/api/v1/fleet/perform_required_password_reset", json={"new_password": PASSWORD},
                       headers=auth(token))
    assert same.status_code == 422
    done = client.post("/api/v1/fleet/perform_required_password_reset", json={"new_password": "fresh-pass-word-5"},
                       headers=auth(token))
    assert done.status_code == 200 and done.json()["user"]["force_password_reset"] is False
    assert client.get("/api/v1/fleet/activities", headers=auth(token)).status_code == 200


# --- activities paging -------------------------------------------------------------------


def test_activities_have_fleets_shape_and_paging(client: TestClient, jane: str) -> None:
    tokens = [login(client, jane).json()["token"] for _ in range(3)]
    first = client.get("/api/v1/fleet/activities?page=0&per_page=2", headers=auth(tokens[0])).json()
    assert first["meta"] == {"has_next_results": True, "has_previous_results": False}
    assert len(first["activities"]) == 2
    item = first["activities"][0]
    assert {"id", "created_at", "actor_full_name", "actor_id", "actor_gravatar", "actor_email", "type",
            "details"} <= set(item)
    assert item["type"] == "user_logged_in" and item["actor_email"] == jane
    second = client.get("/api/v1/fleet/activities?page=1&per_page=2", headers=auth(tokens[0])).json()
    assert second["meta"] == {"has_next_results": False, "has_previous_results": True}
    assert len(second["activities"]) == 1
    ids = [a["id"] for a in first["activities"] + second["activities"]]
    assert ids == sorted(ids, reverse=True)
    ascending = client.get("/api/v1/fleet/activities?order_direction=asc&order_key=id", headers=auth(tokens[0]))
    assert [a["id"] for a in ascending.json()["activities"]] == sorted(ids)
    bad = client.get("/api/v1/fleet/activities?order_key=password", headers=auth(tokens[0]))
    assert bad.status_code == 422 and bad.json()["errors"][0]["name"] == "order_key"


def test_team_users_cannot_read_the_global_audit_log(client: TestClient, database: Database) -> None:
    from server_helpers import make_team

    team = make_team(database, "red")
    token = make_user(database, "t@example.com", None, teams={team: "admin"})
    assert client.get("/api/v1/fleet/activities", headers=auth(token)).status_code == 403
