"""The osquery TLS API: enroll, config, node keys, both URL prefixes."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from osquery_agent_helpers import add_secret, configure, enroll, enroll_body
from server_helpers import recorded_statements
from sqlalchemy import select

from hostql.agent.config import build_config
from hostql.agent.config_sources import RawSource
from hostql.server.services import checkin
from hostql.server.state import ServerState
from hostql.server.storage.db import Database
from hostql.server.storage.models import AppConfig, Host, Query, Team

PREFIXES = ("/api/osquery", "/api/v1/osquery")


@pytest.fixture(autouse=True)
def _settings(state: ServerState, tmp_path: Path) -> None:
    configure(state, tmp_path)


def _hosts(database: Database) -> list[Host]:
    with database.session() as session:
        return list(session.scalars(select(Host).order_by(Host.id)))


@pytest.mark.parametrize("prefix", PREFIXES)
def test_enroll_with_global_secret(client: TestClient, database: Database, prefix: str) -> None:
    add_secret(database, "global-secret")
    key = enroll(client, "global-secret", "host-a", prefix=prefix)
    [host] = _hosts(database)
    assert host.node_key == key
    assert host.osquery_host_id == "host-a"
    assert host.team_id is None


def test_enroll_with_team_secret_joins_team(client: TestClient, database: Database) -> None:
    team_id = add_secret(database, "team-secret", team_name="Servers")
    enroll(client, "team-secret", "host-b")
    [host] = _hosts(database)
    assert host.team_id == team_id is not None


def test_bad_secret_is_refused(client: TestClient, database: Database) -> None:
    add_secret(database, "right")
    for secret in ("wrong", "", "righ", "right "):
        reply = client.post("/api/osquery/enroll", json=enroll_body(secret, "h"))
        body = reply.json()
        assert body["node_invalid"] is True
        assert body["error"].startswith("enroll failed")
        assert "node_key" not in body
    assert _hosts(database) == []


def test_enroll_ingests_host_details(client: TestClient, database: Database) -> None:
    add_secret(database, "s")
    details = {"os_version": {"name": "Ubuntu", "version": "22.04.3 LTS (Jammy Jellyfish)", "major": "22",
                              "minor": "4", "patch": "3", "platform": "ubuntu", "platform_like": "debian",
                              "codename": "jammy"},
               "osquery_info": {"version": "5.12.1", "uuid": "U-1", "instance_id": "I-1"},
               "system_info": {"hostname": "web-1", "uuid": "U-1", "cpu_brand": "Xeon", "physical_memory": "1024",
                               "cpu_logical_cores": "4", "hardware_serial": "SER"}}
    enroll(client, "s", "web-1", details)
    [host] = _hosts(database)
    assert (host.hostname, host.platform, host.osquery_version) == ("web-1", "ubuntu", "5.12.1")
    assert host.os_version == "Ubuntu 22.04.3 LTS"
    assert (host.memory, host.cpu_logical_cores, host.hardware_serial, host.uuid) == (1024, 4, "SER", "U-1")


def test_reenroll_reuses_the_row_and_kills_the_old_key(client: TestClient, database: Database) -> None:
    add_secret(database, "s")
    first = enroll(client, "s", "same-host")
    assert client.post("/api/osquery/config", json={"node_key": first}).status_code == 200
    second = enroll(client, "s", "same-host")
    assert first != second
    hosts = _hosts(database)
    assert len(hosts) == 1 and hosts[0].node_key == second
    old = client.post("/api/osquery/config", json={"node_key": first})
    assert old.json().get("node_invalid") is True
    assert "node_invalid" not in client.post("/api/osquery/config", json={"node_key": second}).json()


def _clone(uuid: str, instance: str) -> dict[str, dict[str, str]]:
    return {"osquery_info": {"uuid": uuid, "instance_id": instance, "version": "5.23.0"},
            "system_info": {"uuid": uuid, "hostname": "clone"}}


def test_clones_with_same_hardware_uuid_stay_apart_with_instance_identifier(
        client: TestClient, database: Database, state: ServerState, tmp_path: Path) -> None:
    configure(state, tmp_path, host_identifier="instance")
    add_secret(database, "s")
    key_a = enroll(client, "s", "clone", _clone("SAME-UUID", "instance-a"))
    key_b = enroll(client, "s", "clone", _clone("SAME-UUID", "instance-b"))
    hosts = _hosts(database)
    assert len(hosts) == 2
    assert {h.osquery_host_id for h in hosts} == {"instance-a", "instance-b"}
    # both keys keep working: no flapping between the clones
    for key in (key_a, key_b):
        assert "node_invalid" not in client.post("/api/osquery/config", json={"node_key": key}).json()
    # the same instance re-enrolling is still matched to its own row
    enroll(client, "s", "clone", _clone("SAME-UUID", "instance-a"))
    assert len(_hosts(database)) == 2


def test_uuid_identifier_merges_by_hardware_uuid(client: TestClient, database: Database, state: ServerState,
                                                 tmp_path: Path) -> None:
    configure(state, tmp_path, host_identifier="uuid")
    add_secret(database, "s")
    enroll(client, "s", "a", _clone("SAME-UUID", "instance-a"))
    enroll(client, "s", "b", _clone("SAME-UUID", "instance-b"))
    assert [h.osquery_host_id for h in _hosts(database)] == ["SAME-UUID"]


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("endpoint", ["config", "log", "distributed/read", "distributed/write"])
def test_unknown_node_key_is_node_invalid(client: TestClient, prefix: str, endpoint: str) -> None:
    for body in ({"node_key": "nope", "log_type": "status", "data": [], "queries": {}}, {}):
        reply = client.post(f"{prefix}/{endpoint}", json=body)
        assert reply.json()["node_invalid"] is True
        assert reply.status_code == 401


def test_deleted_host_key_is_node_invalid(client: TestClient, database: Database) -> None:
    add_secret(database, "s")
    key = enroll(client, "s", "doomed")
    assert "queries" in client.post("/api/osquery/distributed/read", json={"node_key": key}).json()
    with database.session() as session:
        session.delete(session.scalars(select(Host)).one())
    for endpoint in ("config", "distributed/read", "distributed/write"):
        assert client.post(f"/api/osquery/{endpoint}", json={"node_key": key}).json()["node_invalid"] is True


def test_node_key_header_and_gzip_body(client: TestClient, database: Database, tmp_path: Path) -> None:
    add_secret(database, "s")
    key = enroll(client, "s", "hdr")
    reply = client.post("/api/osquery/config", json={}, headers={"Authorization": f"NodeKey {key}"})
    assert "node_invalid" not in reply.json()
    line = {"severity": "0", "filename": "x.cpp", "line": "1", "message": "hello", "unixTime": "1700000000"}
    payload = gzip.compress(json.dumps({"node_key": key, "log_type": "status", "data": [line]}).encode())
    reply = client.post("/api/osquery/log", content=payload,
                        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})
    assert reply.status_code == 200 and reply.json() == {}
    status_file = tmp_path / "logs" / "status.log"
    assert json.loads(status_file.read_text().splitlines()[-1])["message"] == "hello"


def test_bad_json_is_an_error(client: TestClient) -> None:
    reply = client.post("/api/osquery/config", content=b"{not json")
    assert reply.status_code == 400 and "error" in reply.json()


def _add_queries(database: Database, team_id: int | None = None) -> None:
    with database.session() as session:
        session.add_all([
            Query(name="uptime", query="SELECT * FROM uptime;", interval=60, logging_type="snapshot"),
            Query(name="diff", query="SELECT pid FROM processes;", interval=300, logging_type="differential",
                  platform="linux", min_osquery_version="5.0.0"),
            Query(name="noremove", query="SELECT 1;", interval=30, logging_type="differential_ignore_removals"),
            Query(name="unscheduled", query="SELECT 2;", interval=0),
            Query(name="nowhere", query="SELECT 3;", interval=60, discard_data=True, automations_enabled=False),
        ])
        if team_id is not None:
            session.add(Query(name="team_q", query="SELECT 4;", interval=120, team_id=team_id))


def test_config_has_global_pack_options_and_decorators(client: TestClient, database: Database) -> None:
    add_secret(database, "s")
    _add_queries(database)
    key = enroll(client, "s", "cfg")
    config = client.post("/api/osquery/config", json={"node_key": key}).json()
    assert config["options"]["distributed_interval"] == 10
    assert config["options"]["pack_delimiter"] == "/"
    assert "SELECT uuid AS host_uuid FROM system_info;" in config["decorators"]["load"]
    queries = config["packs"]["Global"]["queries"]
    assert set(queries) == {"uptime", "diff", "noremove"}
    assert queries["uptime"] == {"query": "SELECT * FROM uptime;", "interval": 60, "snapshot": True,
                                 "removed": False}
    assert queries["diff"]["snapshot"] is False and queries["diff"]["removed"] is True
    assert queries["diff"]["platform"] == "linux" and queries["diff"]["version"] == "5.0.0"
    assert queries["noremove"]["snapshot"] is False and queries["noremove"]["removed"] is False
    # our own agent's parser takes it
    parsed = build_config([RawSource("tls_plugin", json.dumps(config))])
    names = {q.name for q in parsed.all_queries()}
    assert {"pack/Global/uptime", "pack/Global/diff", "pack/Global/noremove"} <= names
    assert not [w for w in parsed.warnings if "pack" in w or "decorator" in w], parsed.warnings
    assert list(parsed.decorators.load) == ["SELECT uuid AS host_uuid FROM system_info;",
                                            "SELECT hostname AS hostname FROM system_info;"]
    # the served options fill in the host's intervals (used for online status) ...
    [host] = _hosts(database)
    assert host.distributed_interval == 10 and host.logger_tls_period == 10
    # ... until the agent reports its own flags: those stay, later config fetches write nothing
    with database.session() as session:
        session.get_one(Host, host.id).distributed_interval = 60
    with recorded_statements(database) as statements:
        assert client.post("/api/osquery/config", json={"node_key": key}).status_code == 200
    assert not [sql for sql in statements if sql.lstrip().upper().startswith(("UPDATE", "INSERT", "DELETE"))]
    [host] = _hosts(database)
    assert host.distributed_interval == 60


def test_team_options_pack_and_platform_override(client: TestClient, database: Database) -> None:
    team_id = add_secret(database, "team", team_name="T")
    _add_queries(database, team_id)
    team_options = {"config": {"options": {"distributed_interval": 30}, "decorators": {"always": ["SELECT 5;"]}},
                    "overrides": {"platforms": {"linux": {"options": {"distributed_interval": 7}}}}}
    with database.session() as session:
        team = session.get(Team, team_id)
        assert team is not None
        team.config = {"agent_options": team_options}
        session.add(AppConfig(json_value={"agent_options": {"config": {"options": {"distributed_interval": 99}}}}))
    key = enroll(client, "team", "t1")
    config = client.post("/api/osquery/config", json={"node_key": key}).json()
    assert config["options"] == {"distributed_interval": 30}
    assert config["decorators"] == {"always": ["SELECT 5;"]}
    assert set(config["packs"]) == {"Global", f"team-{team_id}"}
    assert config["packs"][f"team-{team_id}"]["queries"]["team_q"]["interval"] == 120
    # a Linux host gets the platform override instead of the whole config
    with database.session() as session:
        host = session.scalars(select(Host)).one()
        host.platform = "debian"
    checkin.invalidate_host(client.app.state.hostql, 1)  # type: ignore[attr-defined]
    config = client.post("/api/osquery/config", json={"node_key": key}).json()
    assert config["options"] == {"distributed_interval": 7}
    assert "decorators" not in config
    parsed = build_config([RawSource("tls_plugin", json.dumps(config))])
    # no pack_delimiter in the override: osquery's default "_" applies
    assert f"pack_team-{team_id}_team_q" in {q.name for q in parsed.all_queries()}


def test_config_follows_a_team_transfer_and_a_deleted_host_gets_node_invalid(client: TestClient,
                                                                             database: Database) -> None:
    add_secret(database, "s")
    team_id = add_secret(database, "team", team_name="T")
    with database.session() as session:
        session.get_one(Team, team_id).config = {"agent_options": {"config": {"options": {"distributed_interval": 30}}}}
    key = enroll(client, "s", "mover")
    assert "distributed_interval" in client.post("/api/osquery/config", json={"node_key": key}).json()["options"]
    with database.session() as session:  # through the ORM, as the transfer endpoint does: the cache forgets it
        session.scalars(select(Host)).one().team_id = team_id
    assert client.post("/api/osquery/config", json={"node_key": key}).json()["options"] == {"distributed_interval": 30}
    with database.session() as session:
        session.delete(session.scalars(select(Host)).one())
    assert client.post("/api/osquery/config", json={"node_key": key}).json().get("node_invalid") is True


def test_global_agent_options_from_app_config(client: TestClient, database: Database) -> None:
    add_secret(database, "s")
    with database.session() as session:
        session.add(AppConfig(json_value={"agent_options": {"config": {"options": {"logger_tls_period": 33}}}}))
    key = enroll(client, "s", "g")
    assert client.post("/api/osquery/config", json={"node_key": key}).json() == {"options": {"logger_tls_period": 33}}


def test_malformed_json_gets_an_osquery_style_answer_on_both_prefixes(client: TestClient) -> None:
    for prefix in ("/api/osquery", "/api/v1/osquery"):
        reply = client.post(f"{prefix}/distributed/read", content=b"{not json",
                            headers={"content-type": "application/json"})
        # osquery reads a top-level "error" as a failed request; the same answer under both prefixes.
        assert reply.status_code == 400
        assert reply.json() == {"error": "request body is not a JSON object"}


def test_a_gzip_body_that_inflates_without_end_is_refused(client: TestClient, database: Database) -> None:
    add_secret(database, "s")
    key = enroll(client, "s", "bomb")
    # 200 MiB of zeros compress to about 200 KiB: inflated whole it would take the server's memory.
    bomb = gzip.compress(b'{"node_key": "' + key.encode() + b'", "pad": "' + b"0" * (200 * 1024 * 1024) + b'"}')
    for path in ("/api/osquery/log", "/api/osquery/config", "/api/osquery/distributed/read"):
        reply = client.post(path, content=bomb, headers={"Content-Encoding": "gzip"})
        assert reply.status_code == 400, (path, reply.text)
        assert "inflates to more than" in reply.json()["error"]
    broken = client.post("/api/osquery/config", content=gzip.compress(b'{"node_key": "x"}')[:-6],
                         headers={"Content-Encoding": "gzip"})
    assert broken.status_code == 400 and "not valid gzip" in broken.json()["error"]
    assert client.post("/api/osquery/config", content=b"plain", headers={"Content-Encoding": "gzip"}).json() == {
        "error": "request body is not valid gzip"}
