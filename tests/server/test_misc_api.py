"""GET /healthz, GET /api/v1/fleet/version, GET/PATCH /api/v1/fleet/config."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from server_helpers import auth, make_user
from sqlalchemy import create_engine, select

from hostql import __version__
from hostql.server.services.appconfig import DEFAULT_AGENT_OPTIONS
from hostql.server.state import ServerState
from hostql.server.storage.db import Database
from hostql.server.storage.models import Activity


def test_healthz_checks_the_database(client: TestClient, state: ServerState) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/healthz?check=db").status_code == 200
    assert client.get("/healthz?check=redis").status_code == 200  # not configured: nothing to check
    bad = client.get("/healthz?check=nope")
    assert bad.status_code == 400 and bad.json()["errors"][0]["name"] == "check"
    state.database.engine.dispose()
    state.database.engine = create_engine("sqlite:////nonexistent/dir/x.db")  # unreachable database
    failed = client.get("/healthz")
    assert failed.status_code == 500
    assert failed.json()["errors"][0]["name"] == "db"


def test_version_needs_a_login(client: TestClient, admin_token: str) -> None:
    assert client.get("/api/v1/fleet/version").status_code == 401
    response = client.get("/api/v1/fleet/version", headers=auth(admin_token))
    assert response.status_code == 200
    assert response.json()["version"] == __version__


def test_config_defaults_and_roles(client: TestClient, database: Database, admin_token: str) -> None:
    observer = make_user(database, "obs@example.com", "observer")
    assert client.get("/api/v1/fleet/config").status_code == 401
    config = client.get("/api/v1/fleet/config", headers=auth(observer)).json()
    assert config["agent_options"] == DEFAULT_AGENT_OPTIONS
    assert config["server_settings"]["query_report_cap"] == 1000
    assert config["license"] == {"tier": "free"}
    denied = client.patch("/api/v1/fleet/config", headers=auth(observer), json={"org_info": {"org_name": "x"}})
    assert denied.status_code == 403


def test_patch_merges_and_persists(client: TestClient, database: Database, admin_token: str) -> None:
    response = client.patch("/api/v1/fleet/config", headers=auth(admin_token),
                            json={"org_info": {"org_name": "Acme"},
                                  "server_settings": {"server_url": "https://fleet.acme.test"}})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["org_info"]["org_name"] == "Acme" and body["org_info"]["contact_url"] == ""
    assert body["server_settings"]["server_url"] == "https://fleet.acme.test"
    again = client.patch("/api/v1/fleet/config", headers=auth(admin_token),
                         json={"org_info": {"contact_url": "https://acme.test/help"}}).json()
    assert again["org_info"] == {**again["org_info"], "org_name": "Acme", "contact_url": "https://acme.test/help"}
    got = client.get("/api/v1/fleet/config", headers=auth(admin_token)).json()
    assert got["org_info"]["org_name"] == "Acme"
    assert got["server_settings"]["server_url"] == "https://fleet.acme.test"


def test_agent_options_are_replaced_and_audited(client: TestClient, database: Database, admin_token: str) -> None:
    options = {"config": {"options": {"distributed_interval": 3}}, "overrides": {}}
    response = client.patch("/api/v1/fleet/config", headers=auth(admin_token), json={"agent_options": options})
    assert response.json()["agent_options"] == options
    with database.session() as session:
        assert [a.type for a in session.query(Activity)] == ["edited_agent_options"]
    dry = client.patch("/api/v1/fleet/config?dry_run=true", headers=auth(admin_token),
                       json={"agent_options": {"config": {}}})
    assert dry.status_code == 200
    assert client.get("/api/v1/fleet/config", headers=auth(admin_token)).json()["agent_options"] == options


def test_patch_rejects_unknown_and_mistyped_fields(client: TestClient, admin_token: str) -> None:
    unknown = client.patch("/api/v1/fleet/config", headers=auth(admin_token), json={"org_infos": {}})
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["name"] == "org_infos"
    nested = client.patch("/api/v1/fleet/config", headers=auth(admin_token),
                          json={"server_settings": {"server_ur": "x"}})
    assert nested.status_code == 422 and nested.json()["errors"][0]["name"] == "server_settings.server_ur"
    mistyped = client.patch("/api/v1/fleet/config", headers=auth(admin_token),
                            json={"host_expiry_settings": {"host_expiry_enabled": "yes"}})
    assert mistyped.status_code == 422
    assert mistyped.json()["errors"][0]["name"] == "host_expiry_settings.host_expiry_enabled"
    # What GET returns can be sent back: read-only sections are ignored.
    current = client.get("/api/v1/fleet/config", headers=auth(admin_token)).json()
    assert client.patch("/api/v1/fleet/config", headers=auth(admin_token), json=current).status_code == 200


def test_secrets_are_masked_for_non_admins(client: TestClient, database: Database, admin_token: str) -> None:
    client.patch("/api/v1/fleet/config", headers=auth(admin_token), json={"smtp_settings": {"password": "hunter2"}})
    observer = make_user(database, "o@example.com", "observer")
    assert client.get("/api/v1/fleet/config", headers=auth(observer)).json()["smtp_settings"]["password"] == "********"
    assert client.get("/api/v1/fleet/config", headers=auth(admin_token)).json()["smtp_settings"]["password"] == \
        "hunter2"


def test_the_agent_paths_cached_app_config_sees_changes(database: Database,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy import text, update

    from hostql.server.services import appconfig
    from hostql.server.storage.models import AppConfig

    with database.session() as session:
        session.add(AppConfig(json_value={"features": {"enable_host_users": True}}))
    with database.session() as session:
        assert appconfig.cached_document(session)["features"] == {"enable_host_users": True}
    with database.session() as session:  # through the ORM: seen at once
        session.scalars(select(AppConfig)).one().json_value = {"features": {"enable_host_users": False}}
    with database.session() as session:
        assert appconfig.cached_document(session)["features"] == {"enable_host_users": False}
    with database.session() as session:  # a bulk UPDATE through the ORM: seen at once too
        session.execute(update(AppConfig).values(json_value={"features": {}}))
    with database.session() as session:
        assert appconfig.cached_document(session)["features"] == {}
    with database.engine.begin() as connection:  # another process's change: seen when the TTL ends
        connection.execute(text("""UPDATE app_config_json SET json_value = '{"org_info": {}}'"""))
    with database.session() as session:
        assert appconfig.cached_document(session) == {"features": {}}
    monkeypatch.setattr(appconfig._documents, "ttl", 0.0)  # the TTL ends at once
    with database.session() as session:
        assert appconfig.cached_document(session) == {"org_info": {}}
