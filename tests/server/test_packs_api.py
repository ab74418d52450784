"""Legacy packs: ``/packs``, ``/schedule``, their agreement with ``/spec/packs``, and agent configs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from inventory_helpers import make_host
from osquery_agent_helpers import add_secret, configure, enroll
from server_helpers import assert_fleet_error, auth, make_user
from sqlalchemy import select

from hostql.agent.config import build_config
from hostql.agent.config_sources import RawSource
from hostql.server.services.labels import seed_builtin_labels
from hostql.server.services.packs import SCHEDULE_ID_STRIDE
from hostql.server.state import ServerState
from hostql.server.storage.db import Database
from hostql.server.storage.models import Activity, Host, Pack

API = "/api/v1/fleet"


@pytest.fixture(autouse=True)
def _setup(state: ServerState, database: Database, tmp_path: Path) -> None:
    configure(state, tmp_path)
    with database.session() as session:
        seed_builtin_labels(session)


@pytest.fixture
def h(admin_token: str) -> dict[str, str]:
    return auth(admin_token)


def _query(client: TestClient, h: dict[str, str], name: str, sql: str) -> int:
    response = client.post(f"{API}/queries", json={"name": name, "query": sql}, headers=h)
    assert response.status_code == 200, response.text
    query_id: int = response.json()["query"]["id"]
    return query_id


def _label(client: TestClient, h: dict[str, str], name: str, host_ids: list[int]) -> int:
    response = client.post(f"{API}/labels", json={"name": name, "host_ids": host_ids,
                                                  "label_membership_type": "manual"}, headers=h)
    assert response.status_code == 200, response.text
    label_id: int = response.json()["label"]["id"]
    return label_id


def _pack(client: TestClient, h: dict[str, str], **body: Any) -> dict[str, Any]:
    response = client.post(f"{API}/packs", json=body, headers=h)
    assert response.status_code == 200, response.text
    pack: dict[str, Any] = response.json()["pack"]
    return pack


def _schedule(client: TestClient, h: dict[str, str], **body: Any) -> dict[str, Any]:
    response = client.post(f"{API}/schedule", json=body, headers=h)
    assert response.status_code == 200, response.text
    scheduled: dict[str, Any] = response.json()["scheduled"]
    return scheduled


def _activities(database: Database) -> list[tuple[str, dict[str, Any]]]:
    with database.session() as session:
        return [(a.type, a.details) for a in session.scalars(select(Activity).order_by(Activity.id))]


def _host_id(database: Database, node_key: str) -> int:
    with database.session() as session:
        return session.scalars(select(Host.id).where(Host.node_key == node_key)).one()


def _config(client: TestClient, node_key: str) -> dict[str, Any]:
    response = client.post("/api/osquery/config", json={"node_key": node_key})
    assert response.status_code == 200, response.text
    config: dict[str, Any] = response.json()
    return config


# --- packs ----------------------------------------------------------------------------------

def test_pack_crud_shapes_and_activities(client: TestClient, database: Database, h: dict[str, str]) -> None:
    host = make_host(database, "web-1")
    team = client.post(f"{API}/teams", json={"name": "Servers"}, headers=h).json()["team"]["id"]
    label = _label(client, h, "Web", [host])
    pack = _pack(client, h, name="monitoring", description="watch things", platform="linux",
                 host_ids=[host], label_ids=[label], team_ids=[team])
    assert set(pack) >= {"id", "created_at", "updated_at", "name", "description", "platform", "disabled",
                         "query_count", "total_hosts_count", "host_ids", "label_ids", "team_ids"}
    assert (pack["name"], pack["description"], pack["platform"], pack["disabled"]) == (
        "monitoring", "watch things", "linux", False)
    assert (pack["host_ids"], pack["label_ids"], pack["team_ids"]) == ([host], [label], [team])
    assert pack["query_count"] == 0 and pack["total_hosts_count"] == 1  # the same host three ways

    got = client.get(f"{API}/packs/{pack['id']}", headers=h).json()["pack"]
    assert got == pack
    other = _pack(client, h, name="second")
    assert other["host_ids"] == [] and other["total_hosts_count"] == 0
    listed = client.get(f"{API}/packs", headers=h).json()["packs"]
    assert [p["name"] for p in listed] == ["monitoring", "second"]
    desc = client.get(f"{API}/packs", params={"order_key": "name", "order_direction": "desc"}, headers=h)
    assert [p["name"] for p in desc.json()["packs"]] == ["second", "monitoring"]
    assert [p["name"] for p in client.get(f"{API}/packs", params={"query": "SEC"}, headers=h).json()["packs"]] \
        == ["second"]

    patched = client.patch(f"{API}/packs/{pack['id']}", json={"disabled": True, "label_ids": [], "name": "mon"},
                           headers=h)
    assert patched.status_code == 200, patched.text
    body = patched.json()["pack"]
    assert body["disabled"] is True and body["name"] == "mon" and body["label_ids"] == []
    assert body["host_ids"] == [host] and body["team_ids"] == [team]  # not sent: kept
    assert body["description"] == "watch things"

    assert client.delete(f"{API}/packs/id/{pack['id']}", headers=h).json() == {}
    assert client.get(f"{API}/packs/{pack['id']}", headers=h).status_code == 404
    assert client.delete(f"{API}/packs/second", headers=h).json() == {}
    assert client.get(f"{API}/packs", headers=h).json()["packs"] == []

    pack_events = [(t, d) for t, d in _activities(database) if t.endswith("_pack")]
    assert pack_events == [
        ("created_pack", {"pack_id": pack["id"], "pack_name": "monitoring"}),
        ("created_pack", {"pack_id": other["id"], "pack_name": "second"}),
        ("edited_pack", {"pack_id": pack["id"], "pack_name": "mon"}),
        ("deleted_pack", {"pack_id": pack["id"], "pack_name": "mon"}),
        ("deleted_pack", {"pack_id": other["id"], "pack_name": "second"}),
    ]


def test_pack_errors_in_fleets_shape(client: TestClient, database: Database, h: dict[str, str]) -> None:
    pack = _pack(client, h, name="p")
    cases = [
        (client.post(f"{API}/packs", json={"name": "p"}, headers=h), 409, "name"),
        (client.post(f"{API}/packs", json={"name": "  "}, headers=h), 422, "name"),
        (client.post(f"{API}/packs", json={"name": "Global"}, headers=h), 422, "name"),
        (client.post(f"{API}/packs", json={"name": "team-3"}, headers=h), 422, "name"),
        (client.post(f"{API}/packs", json={"name": "x", "label_ids": [4242]}, headers=h), 422, "label_ids"),
        (client.post(f"{API}/packs", json={"name": "x", "team_ids": [4242]}, headers=h), 422, "team_ids"),
        (client.post(f"{API}/packs", json={"name": "x", "host_ids": [4242]}, headers=h), 422, "host_ids"),
        (client.post(f"{API}/packs", json={"name": "x", "disabled": "yes"}, headers=h), 422, "disabled"),
        (client.post(f"{API}/packs", json={"name": "x", "bogus": 1}, headers=h), 422, "bogus"),
        (client.get(f"{API}/packs/999", headers=h), 404, "id"),
        (client.patch(f"{API}/packs/999", json={"name": "y"}, headers=h), 404, "id"),
        (client.delete(f"{API}/packs/id/999", headers=h), 404, "id"),
        (client.delete(f"{API}/packs/nope", headers=h), 404, "name"),
        (client.get(f"{API}/packs/999/scheduled", headers=h), 404, "id"),
        (client.get(f"{API}/packs", params={"order_key": "bogus"}, headers=h), 422, "order_key"),
    ]
    _pack(client, h, name="q")
    cases.append((client.patch(f"{API}/packs/{pack['id']}", json={"name": "q"}, headers=h), 409, "name"))
    for response, status, field in cases:
        assert response.status_code == status, (response.request.url, response.text)
        body = response.json()
        assert_fleet_error(body)
        assert field in " ".join(e["name"] for e in body["errors"]), body
    # nothing was half-written by the refused requests
    with database.session() as session:
        assert sorted(session.scalars(select(Pack.name))) == ["p", "q"]


def test_observers_read_and_maintainers_write(client: TestClient, database: Database, h: dict[str, str]) -> None:
    pack = _pack(client, h, name="p")
    observer = auth(make_user(database, "o@example.com", "observer"))
    maintainer = auth(make_user(database, "m@example.com", "maintainer"))
    assert client.get(f"{API}/packs/{pack['id']}", headers=observer).status_code == 200
    assert client.get(f"{API}/packs/{pack['id']}/scheduled", headers=observer).status_code == 200
    refused = client.patch(f"{API}/packs/{pack['id']}", json={"disabled": True}, headers=observer)
    assert refused.status_code == 403
    assert_fleet_error(refused.json())
    assert client.delete(f"{API}/packs/p", headers=observer).status_code == 403
    ok = client.patch(f"{API}/packs/{pack['id']}", json={"description": "by m"}, headers=maintainer)
    assert ok.status_code == 200 and ok.json()["pack"]["description"] == "by m"


# --- scheduled queries ----------------------------------------------------------------------

def test_scheduled_queries_in_a_pack(client: TestClient, database: Database, h: dict[str, str]) -> None:
    uptime = _query(client, h, "uptime", "SELECT * FROM uptime;")
    procs = _query(client, h, "procs", "SELECT pid FROM processes;")
    pack = _pack(client, h, name="p")
    first = _schedule(client, h, pack_id=pack["id"], query_id=uptime, interval=60, snapshot=True, shard=50)
    assert first == {"id": first["id"], "pack_id": pack["id"], "name": "uptime", "query_id": uptime,
                     "query_name": "uptime", "query": "SELECT * FROM uptime;", "description": "",
                     "interval": 60, "snapshot": True, "removed": None, "platform": None, "version": None,
                     "shard": 50, "denylist": None}
    second = _schedule(client, h, pack_id=pack["id"], query_id=procs, interval=300, name="procs_diff",
                       removed=True, platform="linux", version="5.0.0")
    third = _schedule(client, h, pack_id=pack["id"], query_id=uptime, interval=3600, name="uptime_hourly")
    assert len({first["id"], second["id"], third["id"]}) == 3

    listed = client.get(f"{API}/packs/{pack['id']}/scheduled", headers=h).json()["scheduled"]
    assert [s["name"] for s in listed] == ["uptime", "procs_diff", "uptime_hourly"]
    assert client.get(f"{API}/packs/{pack['id']}", headers=h).json()["pack"]["query_count"] == 3
    assert client.get(f"{API}/schedule/{second['id']}", headers=h).json()["scheduled"] == second

    changed = client.patch(f"{API}/schedule/{second['id']}", json={"interval": 900, "platform": None,
                                                                   "pack_id": pack["id"]}, headers=h)
    assert changed.status_code == 200, changed.text
    body = changed.json()["scheduled"]
    assert body["interval"] == 900 and body["platform"] is None and body["removed"] is True
    assert body["id"] == second["id"] and body["version"] == "5.0.0"

    assert client.delete(f"{API}/schedule/{first['id']}", headers=h).json() == {}
    assert client.get(f"{API}/schedule/{first['id']}", headers=h).status_code == 404
    remaining = client.get(f"{API}/packs/{pack['id']}/scheduled", headers=h).json()["scheduled"]
    assert [(s["id"], s["name"]) for s in remaining] == [(second["id"], "procs_diff"),
                                                        (third["id"], "uptime_hourly")]
    # the ids of the others survived the deletion
    assert client.get(f"{API}/schedule/{third['id']}", headers=h).json()["scheduled"]["interval"] == 3600

    # every change to the pack's queries is an edit of the pack
    assert [t for t, _ in _activities(database) if t.endswith("_pack")] == ["created_pack"] + ["edited_pack"] * 5


def test_scheduled_query_errors(client: TestClient, database: Database, h: dict[str, str]) -> None:
    uptime = _query(client, h, "uptime", "SELECT * FROM uptime;")
    pack = _pack(client, h, name="p")
    other = _pack(client, h, name="other")
    item = _schedule(client, h, pack_id=pack["id"], query_id=uptime, interval=60)
    cases = [
        (client.post(f"{API}/schedule", json={"pack_id": 999, "query_id": uptime, "interval": 60}, headers=h),
         404, "id"),
        (client.post(f"{API}/schedule", json={"pack_id": pack["id"], "query_id": 999, "interval": 60}, headers=h),
         404, "id"),
        (client.post(f"{API}/schedule", json={"pack_id": pack["id"], "query_id": uptime, "interval": 60},
                     headers=h), 409, "name"),
        (client.post(f"{API}/schedule", json={"pack_id": pack["id"], "query_id": uptime, "interval": 0,
                                              "name": "z"}, headers=h), 422, "interval"),
        (client.post(f"{API}/schedule", json={"pack_id": pack["id"], "query_id": uptime, "interval": 10,
                                              "name": "z", "shard": 101}, headers=h), 422, "shard"),
        (client.post(f"{API}/schedule", json={"pack_id": pack["id"], "query_id": uptime}, headers=h),
         422, "interval"),
        (client.patch(f"{API}/schedule/{item['id']}", json={"pack_id": other["id"]}, headers=h), 422, "pack_id"),
        (client.patch(f"{API}/schedule/{item['id']}", json={"interval": -5}, headers=h), 422, "interval"),
        (client.patch(f"{API}/schedule/{item['id']}", json={"snapshot": "true"}, headers=h), 422, "snapshot"),
        (client.get(f"{API}/schedule/{pack['id'] * SCHEDULE_ID_STRIDE + 77}", headers=h), 404, "id"),
        (client.get(f"{API}/schedule/0", headers=h), 404, "id"),
        (client.patch(f"{API}/schedule/424242", json={"interval": 5}, headers=h), 404, "id"),
        (client.delete(f"{API}/schedule/424242", headers=h), 404, "id"),
    ]
    for response, status, field in cases:
        assert response.status_code == status, (response.request.url, response.text)
        assert_fleet_error(response.json())
        assert field in " ".join(e["name"] for e in response.json()["errors"]), response.json()
    assert client.get(f"{API}/schedule/{item['id']}", headers=h).json()["scheduled"]["interval"] == 60


def test_deleting_or_renaming_the_saved_query(client: TestClient, h: dict[str, str]) -> None:
    uptime = _query(client, h, "uptime", "SELECT * FROM uptime;")
    gone = _query(client, h, "gone", "SELECT 1;")
    pack = _pack(client, h, name="p")
    kept = _schedule(client, h, pack_id=pack["id"], query_id=uptime, interval=60, name="up")
    _schedule(client, h, pack_id=pack["id"], query_id=gone, interval=60)
    assert client.patch(f"{API}/queries/{uptime}", json={"name": "uptime2"}, headers=h).status_code == 200
    assert client.delete(f"{API}/queries/id/{gone}", headers=h).status_code == 200
    listed = client.get(f"{API}/packs/{pack['id']}/scheduled", headers=h).json()["scheduled"]
    assert [(s["id"], s["name"], s["query_name"]) for s in listed] == [(kept["id"], "up", "uptime2")]
    assert client.get(f"{API}/packs/{pack['id']}", headers=h).json()["pack"]["query_count"] == 1


# --- the spec endpoints see the same packs -------------------------------------------------

def test_rest_and_spec_paths_agree(client: TestClient, database: Database, h: dict[str, str]) -> None:
    host = make_host(database, "db-1")
    uptime = _query(client, h, "uptime", "SELECT * FROM uptime;")
    label = _label(client, h, "Databases", [host])
    team = client.post(f"{API}/teams", json={"name": "Servers"}, headers=h).json()["team"]["id"]
    pack = _pack(client, h, name="rest", label_ids=[label], team_ids=[team], host_ids=[host])
    _schedule(client, h, pack_id=pack["id"], query_id=uptime, interval=60, name="up", snapshot=True)

    spec = client.get(f"{API}/spec/packs/rest", headers=h).json()["specs"]
    assert spec["targets"] == {"labels": ["Databases"], "teams": ["Servers"]}
    assert spec["queries"] == [{"query": "uptime", "name": "up", "interval": 60, "snapshot": True}]
    # what fleetctl get prints can be applied again, under another name too
    again = client.post(f"{API}/spec/packs", json={"specs": [spec, {**spec, "name": "copy", "id": None}]},
                        headers=h)
    assert again.status_code == 200, again.text
    rest_view = client.get(f"{API}/packs/{pack['id']}", headers=h).json()["pack"]
    assert rest_view["label_ids"] == [label] and rest_view["team_ids"] == [team]
    assert rest_view["host_ids"] == []  # a spec has no host targets: applying it drops them, as in Fleet

    copy_id = next(p["id"] for p in client.get(f"{API}/packs", headers=h).json()["packs"] if p["name"] == "copy")
    scheduled = client.get(f"{API}/packs/{copy_id}/scheduled", headers=h).json()["scheduled"]
    assert [(s["name"], s["query_id"], s["interval"], s["snapshot"]) for s in scheduled] == [
        ("up", uptime, 60, True)]
    # a spec-applied pack's queries are addressable and editable through /schedule
    edited = client.patch(f"{API}/schedule/{scheduled[0]['id']}", json={"interval": 120}, headers=h)
    assert edited.status_code == 200, edited.text
    assert client.get(f"{API}/spec/packs/copy", headers=h).json()["specs"]["queries"][0]["interval"] == 120


# --- agent configs --------------------------------------------------------------------------

def test_a_pack_reaches_the_hosts_it_targets(client: TestClient, database: Database, h: dict[str, str]) -> None:
    add_secret(database, "global-secret")
    add_secret(database, "team-secret", team_name="Servers")
    in_label = enroll(client, "global-secret", "host-in-label")
    outside = enroll(client, "global-secret", "host-outside")
    in_team = enroll(client, "team-secret", "host-in-team")
    label = _label(client, h, "Chosen", [_host_id(database, in_label)])
    uptime = _query(client, h, "uptime", "SELECT * FROM uptime;")
    pack = _pack(client, h, name="chosen-pack", label_ids=[label])
    _schedule(client, h, pack_id=pack["id"], query_id=uptime, interval=60, snapshot=True, shard=10)

    config = _config(client, in_label)
    assert config["packs"]["chosen-pack"] == {"queries": {"uptime": {
        "query": "SELECT * FROM uptime;", "interval": 60, "snapshot": True, "shard": 10}}}
    assert "chosen-pack" not in _config(client, outside).get("packs", {})
    assert "chosen-pack" not in _config(client, in_team).get("packs", {})
    # the agent takes the pack and names its query the way result logs will name it
    parsed = build_config([RawSource("tls_plugin", json.dumps(config))])
    assert "pack/chosen-pack/uptime" in {q.name for q in parsed.all_queries()}

    # team targets and host targets
    team_id = client.get(f"{API}/teams", headers=h).json()["teams"][0]["id"]
    client.patch(f"{API}/packs/{pack['id']}", json={"label_ids": [], "team_ids": [team_id],
                                                    "host_ids": [_host_id(database, outside)]}, headers=h)
    assert "chosen-pack" not in _config(client, in_label).get("packs", {})
    assert "chosen-pack" in _config(client, outside)["packs"]
    assert "chosen-pack" in _config(client, in_team)["packs"]

    # a disabled pack reaches nobody; the pack's platform is passed on
    client.patch(f"{API}/packs/{pack['id']}", json={"disabled": True}, headers=h)
    assert "chosen-pack" not in _config(client, in_team).get("packs", {})
    client.patch(f"{API}/packs/{pack['id']}", json={"disabled": False, "platform": "linux"}, headers=h)
    assert _config(client, in_team)["packs"]["chosen-pack"]["platform"] == "linux"


def test_a_spec_applied_pack_reaches_hosts_by_label_name(client: TestClient, database: Database,
                                                          h: dict[str, str]) -> None:
    add_secret(database, "s")
    member = enroll(client, "s", "member")
    other = enroll(client, "s", "other")
    _label(client, h, "Chosen", [_host_id(database, member)])
    _query(client, h, "osquery_version", "select version from osquery_info;")
    spec = {"name": "osquery_monitoring", "targets": {"labels": ["Chosen"]},
            "queries": [{"query": "osquery_version", "name": "osquery_version_snapshot", "interval": 7200,
                         "snapshot": True},
                        {"query": "osquery_version", "interval": 0}]}  # never runs: not sent
    assert client.post(f"{API}/spec/packs", json={"specs": [spec]}, headers=h).status_code == 200
    packs = _config(client, member)["packs"]
    assert packs["osquery_monitoring"]["queries"] == {"osquery_version_snapshot": {
        "query": "select version from osquery_info;", "interval": 7200, "snapshot": True}}
    assert "osquery_monitoring" not in _config(client, other).get("packs", {})


def test_configs_are_built_once_per_team_and_platform_and_follow_changes(
        client: TestClient, database: Database, h: dict[str, str]) -> None:
    from server_helpers import recorded_statements

    from hostql.server.services.agent_config import build_config as build_server_config

    add_secret(database, "s")
    first, second = enroll(client, "s", "cache-1"), enroll(client, "s", "cache-2")
    response = client.post(f"{API}/queries", json={"name": "up", "query": "SELECT * FROM uptime;", "interval": 60},
                           headers=h)
    assert response.status_code == 200, response.text
    query_id = response.json()["query"]["id"]
    for _ in range(2):  # the first fetch fills in each host's intervals (a host write), the second caches it
        for key in (first, second):
            _config(client, key)
    with recorded_statements(database) as statements:
        configs = [_config(client, key) for key in (first, second)]
    assert statements == []  # the same document for both, from memory
    assert configs[0] == configs[1] and configs[0]["packs"]["Global"]["queries"]["up"]["interval"] == 60

    # A legacy pack targeting one host: only that host's document has it; a query change reaches both at once.
    pack = _pack(client, h, name="only-first", host_ids=[_host_id(database, first)])
    _schedule(client, h, pack_id=pack["id"], query_id=query_id, interval=300)
    patched = client.patch(f"{API}/queries/{query_id}", json={"interval": 120}, headers=h)
    assert patched.status_code == 200, patched.text
    configs = [_config(client, key) for key in (first, second)]
    assert set(configs[0]["packs"]) == {"Global", "only-first"} and set(configs[1]["packs"]) == {"Global"}
    assert configs[0]["packs"]["only-first"]["queries"]["up"]["interval"] == 300
    assert [c["packs"]["Global"]["queries"]["up"]["interval"] for c in configs] == [120, 120]
    with database.session() as session:  # what the cache serves is what a fresh build gives
        for key, served in zip((first, second), configs):
            host = session.scalars(select(Host).where(Host.node_key == key)).one()
            assert json.loads(json.dumps(build_server_config(session, host))) == served
    client.patch(f"{API}/packs/{pack['id']}", json={"disabled": True}, headers=h)
    assert set(_config(client, first)["packs"]) == {"Global"}
