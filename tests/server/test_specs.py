"""``/spec/*``: fleetctl apply semantics (create, then update by name) and get round trips."""

from __future__ import annotations

import pytest
import yaml
from fastapi.testclient import TestClient
from inventory_helpers import make_host
from server_helpers import assert_fleet_error, auth, make_user
from sqlalchemy import select

from hostql.server.services.labels import seed_builtin_labels
from hostql.server.storage.db import Database
from hostql.server.storage.models import Activity, Pack, Query

API = "/api/v1/fleet/spec"


@pytest.fixture(autouse=True)
def builtins(database: Database) -> None:
    with database.session() as session:
        seed_builtin_labels(session)


def activity_types(database: Database) -> list[str]:
    with database.session() as session:
        return [a.type for a in session.scalars(select(Activity).order_by(Activity.id))]


QUERY_YAML = """
apiVersion: v1
kind: query
spec:
  name: osquery_schedule
  description: Report performance stats for each file in the query schedule.
  query: select name, interval, executions, output_size, wall_time from osquery_schedule;
  interval: 3600
  platform: darwin,linux
  min_osquery_version: ""
  automations_enabled: false
  logging: snapshot
  observer_can_run: true
  discard_data: false
  team: ""
"""


def test_query_spec_create_then_update(client: TestClient, database: Database, admin_token: str) -> None:
    h = auth(admin_token)
    spec = yaml.safe_load(QUERY_YAML)["spec"]
    assert client.post(f"{API}/queries", json={"specs": [spec]}, headers=h).json() == {}
    got = client.get(f"{API}/queries/osquery_schedule", headers=h).json()["specs"]
    assert got["interval"] == 3600 and got["observer_can_run"] is True and got["platform"] == "darwin,linux"
    updated = {**spec, "interval": 60, "description": "changed"}
    assert client.post(f"{API}/queries", json={"specs": [updated]}, headers=h).status_code == 200
    with database.session() as session:
        rows = session.scalars(select(Query)).all()
        assert len(rows) == 1 and rows[0].interval == 60 and rows[0].description == "changed"
    assert [s["name"] for s in client.get(f"{API}/queries", headers=h).json()["specs"]] == ["osquery_schedule"]
    bad = client.post(f"{API}/queries", json={"specs": [{**spec, "logging": "sometimes"}]}, headers=h)
    assert bad.status_code == 422
    unknown_field = client.post(f"{API}/queries", json={"specs": [{**spec, "bogus": True}]}, headers=h)
    assert unknown_field.status_code == 422
    assert activity_types(database) == ["applied_spec_saved_query"] * 2


def test_label_specs_dynamic_and_manual(client: TestClient, database: Database, admin_token: str) -> None:
    h = auth(admin_token)
    make_host(database, "hostname1")
    make_host(database, "hostname2")
    docs = [
        {"name": "slack_not_running", "query": "SELECT * FROM system_info;", "platform": "darwin"},
        {"name": "Manually Managed Example", "label_membership_type": "manual", "hosts": ["hostname1", "hostname2"]},
    ]
    assert client.post(f"{API}/labels", json={"specs": docs}, headers=h).status_code == 200
    specs = {s["name"]: s for s in client.get(f"{API}/labels", headers=h).json()["specs"]}
    assert specs["slack_not_running"]["platform"] == "darwin"
    assert specs["Manually Managed Example"]["hosts"] == ["hostname1", "hostname2"]
    docs[1]["hosts"] = ["hostname2"]
    docs[0]["query"] = "SELECT 1;"
    assert client.post(f"{API}/labels", json={"specs": docs}, headers=h).status_code == 200
    manual = client.get(f"{API}/labels/Manually Managed Example", headers=h).json()["specs"]
    assert manual["hosts"] == ["hostname2"]
    assert client.get(f"{API}/labels/slack_not_running", headers=h).json()["specs"]["query"] == "SELECT 1;"
    # Round trip: what GET returns can be applied again.
    again = client.post(f"{API}/labels", json={"specs": [manual]}, headers=h)
    assert again.status_code == 200, again.text
    builtin = client.post(f"{API}/labels", json={"specs": [{"name": "All Hosts", "query": "select 2;"}]},
                          headers=h)
    assert builtin.status_code == 422
    assert_fleet_error(builtin.json())


def test_policy_specs_global_and_team(client: TestClient, database: Database, admin_token: str) -> None:
    h = auth(admin_token)
    client.post("/api/v1/fleet/teams", json={"name": "Laptops"}, headers=h)
    spec = {"name": "Gatekeeper enabled (macOS)", "query": "SELECT 1 FROM gatekeeper WHERE assessments_enabled = 1;",
            "description": "Checks that Gatekeeper is enabled.", "resolution": "Run: spctl --master-enable",
            "platform": "darwin", "critical": False}
    assert client.post(f"{API}/policies", json={"specs": [spec, {**spec, "team": "Laptops"}]},
                       headers=h).status_code == 200
    assert client.post(f"{API}/policies", json={"specs": [{**spec, "critical": True}]}, headers=h).status_code == 200
    policies = client.get("/api/v1/fleet/global/policies", headers=h).json()["policies"]
    assert len(policies) == 1 and policies[0]["critical"] is True
    specs = client.get(f"{API}/policies", headers=h).json()["specs"]
    assert sorted(s["team"] for s in specs) == ["", "Laptops"]
    missing_team = client.post(f"{API}/policies", json={"specs": [{**spec, "team": "Nope"}]}, headers=h)
    assert missing_team.status_code == 422
    with database.session() as session:
        applied = session.scalars(select(Activity).where(Activity.type == "applied_spec_policy")).all()
    assert len(applied) == 2 and applied[0].details["policies"][0]["name"] == spec["name"]


def test_pack_specs(client: TestClient, database: Database, admin_token: str) -> None:
    h = auth(admin_token)
    version = {"name": "osquery_version", "query": "select version from osquery_info;"}
    client.post(f"{API}/queries", json={"specs": [version]}, headers=h)
    pack = {"name": "osquery_monitoring", "disabled": False, "targets": {"labels": ["All Hosts"]},
            "queries": [{"query": "osquery_version", "name": "osquery_version_snapshot", "interval": 7200,
                         "snapshot": True}]}
    assert client.post(f"{API}/packs", json={"specs": [pack]}, headers=h).status_code == 200
    assert client.post(f"{API}/packs", json={"specs": [{**pack, "disabled": True}]}, headers=h).status_code == 200
    with database.session() as session:
        rows = session.scalars(select(Pack)).all()
        assert len(rows) == 1 and rows[0].disabled is True
    got = client.get(f"{API}/packs/osquery_monitoring", headers=h).json()["specs"]
    assert got["targets"]["labels"] == ["All Hosts"] and got["queries"][0]["interval"] == 7200
    assert len(client.get(f"{API}/packs", headers=h).json()["specs"]) == 1
    unknown = {**pack, "name": "bad", "queries": [{"query": "no_such_query", "interval": 10}]}
    assert client.post(f"{API}/packs", json={"specs": [unknown]}, headers=h).status_code == 422
    assert client.get(f"{API}/packs/bad", headers=h).status_code == 404
    assert activity_types(database).count("applied_spec_pack") == 2


def test_team_specs(client: TestClient, database: Database, admin_token: str) -> None:
    h = auth(admin_token)
    team_doc = yaml.safe_load("""
apiVersion: v1
kind: team
spec:
  team:
    name: Client Platform Engineering
    agent_options:
      config: {options: {distributed_interval: 10, logger_tls_period: 10}}
      overrides: {}
    secrets:
      - secret: JZ/C/Z7ucq22dt/zjx2kEuDBN0iLjqfz
""")["spec"]["team"]
    first = client.post(f"{API}/teams", json={"specs": [team_doc]}, headers=h)
    assert first.status_code == 200, first.text
    team_id = first.json()["team_ids_by_name"]["Client Platform Engineering"]
    team_doc["secrets"] = [{"secret": "another"}]
    assert client.post(f"{API}/teams", json={"specs": [team_doc]}, headers=h).json() == {
        "team_ids_by_name": {"Client Platform Engineering": team_id}}
    team = client.get(f"/api/v1/fleet/teams/{team_id}", headers=h).json()["team"]
    assert [s["secret"] for s in team["secrets"]] == ["another"]
    assert team["agent_options"]["config"]["options"]["distributed_interval"] == 10
    dry = client.post(f"{API}/teams", params={"dry_run": "true"}, json={"specs": [{"name": "Dry"}]}, headers=h)
    assert dry.status_code == 200
    names = [t["name"] for t in client.get("/api/v1/fleet/teams", headers=h).json()["teams"]]
    assert names == ["Client Platform Engineering"]
    assert activity_types(database) == ["applied_spec_team"] * 2


def test_observer_cannot_apply(client: TestClient, database: Database) -> None:
    h = auth(make_user(database, "o@example.com", "observer"))
    assert client.get(f"{API}/labels", headers=h).status_code == 200
    response = client.post(f"{API}/labels", json={"specs": [{"name": "x", "query": "select 1;"}]}, headers=h)
    assert response.status_code == 403
    assert_fleet_error(response.json())
