"""File carving: osquery's carve/begin and carve/block, and the carves REST API."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from osquery_agent_helpers import add_secret, configure, enroll
from server_helpers import assert_fleet_error, auth, make_team, make_user
from sqlalchemy import select

from hostql.server.state import ServerState
from hostql.server.storage.db import Database
from hostql.server.storage.models import Host

API = "/api/v1/fleet"
FILE = b"the contents of /etc/passwd, tarred"  # 35 bytes: blocks of 16, 16 and 3


@pytest.fixture(autouse=True)
def _settings(state: ServerState, tmp_path: Path) -> None:
    configure(state, tmp_path)


@pytest.fixture
def clock(state: ServerState) -> list[datetime]:
    now = [datetime(2024, 5, 1, 12, 0, 0)]
    state.extras["clock"] = lambda: now[0]
    return now


def _begin(client: TestClient, key: str, **overrides: Any) -> Any:
    body = {"node_key": key, "block_count": 3, "block_size": 16, "carve_size": len(FILE),
            "carve_id": "5e7a5c5a-8f2e-4b8a-9a6e-3c1d2b4f6a70", "request_id": "fleet_distributed_query_7",
            **overrides}
    return client.post("/api/v1/osquery/carve/begin", json=body)


def _block(client: TestClient, session_id: str, block_id: int, data: bytes | str) -> Any:
    encoded = data if isinstance(data, str) else base64.b64encode(data).decode()
    return client.post("/api/osquery/carve/block", json={"block_id": block_id, "session_id": session_id,
                                                         "request_id": "fleet_distributed_query_7", "data": encoded})


def _upload(client: TestClient, key: str) -> str:
    began = _begin(client, key)
    assert began.status_code == 200 and began.json()["success"] is True, began.text
    session_id: str = began.json()["session_id"]
    for block_id in range(3):
        reply = _block(client, session_id, block_id, FILE[block_id * 16:(block_id + 1) * 16])
        assert (reply.status_code, reply.json()) == (200, {"success": True}), reply.text
    return session_id


def test_an_agent_uploads_a_carve_and_a_user_reads_it_back(client: TestClient, database: Database,
                                                           admin_token: str, clock: list[datetime]) -> None:
    add_secret(database, "s")
    key = enroll(client, "s", "carved")
    session_id = _upload(client, key)
    h = auth(admin_token)
    [carve] = client.get(f"{API}/carves", headers=h).json()["carves"]
    with database.session() as session:
        host = session.scalars(select(Host)).one()
        hostname, host_id = host.hostname, host.id
    assert carve["name"] == f"{hostname}-2024-05-01T12:00:00Z-fleet_distributed_query_7"
    assert {k: carve[k] for k in ("host_id", "block_count", "block_size", "carve_size", "max_block", "expired",
                                  "session_id", "error", "request_id")} == {
        "host_id": host_id, "block_count": 3, "block_size": 16, "carve_size": len(FILE), "max_block": 2,
        "expired": False, "session_id": session_id, "error": None, "request_id": "fleet_distributed_query_7"}
    assert client.get(f"{API}/carves/{carve['id']}", headers=h).json()["carve"] == carve
    blocks = [client.get(f"{API}/carves/{carve['id']}/block/{i}", headers=h).json()["data"] for i in range(3)]
    assert b"".join(base64.b64decode(block) for block in blocks) == FILE
    missing = client.get(f"{API}/carves/{carve['id']}/block/3", headers=h)
    assert missing.status_code == 404 and missing.json()["errors"][0]["name"] == "block_id"

    # A day later the data is gone; the carve stays listed with expired=true.
    clock[0] += timedelta(hours=25)
    assert client.get(f"{API}/carves", headers=h).json()["carves"] == []
    [old] = client.get(f"{API}/carves", params={"expired": "true"}, headers=h).json()["carves"]
    assert old["expired"] is True and old["max_block"] == 2
    gone = client.get(f"{API}/carves/{carve['id']}/block/0", headers=h)
    assert gone.status_code == 400 and "expired" in gone.json()["errors"][0]["reason"]


def test_blocks_must_come_in_order_within_their_size(client: TestClient, database: Database,
                                                     clock: list[datetime]) -> None:
    add_secret(database, "s")
    key = enroll(client, "s", "careful")
    session_id = _begin(client, key).json()["session_id"]
    refused = [
        (_block(client, session_id, 1, b"x"), "out of order: expected block 0"),
        (_block(client, session_id, 0, b"y" * 17), "more than the block size 16"),
        (_block(client, session_id, 0, "not base64!"), "not base64"),
        (_block(client, "no-such-session", 0, b"z"), "unknown carve session"),
        (_block(client, session_id, 3, b"z"), "block_id must be a whole number from 0 to 2"),
    ]
    for reply, reason in refused:
        assert reply.status_code == 400 and reason in reply.json()["error"], reply.text
    assert _block(client, session_id, 0, b"a" * 16).json() == {"success": True}
    assert "out of order" in _block(client, session_id, 0, b"a" * 16).json()["error"]  # no block twice
    for overrides, reason in (({"block_size": 0}, "block_size"), ({"block_size": 64 * 1024 * 1024}, "block_size"),
                              ({"carve_size": 49}, "carve_size"), ({"carve_id": ""}, "carve_id"),
                              ({"block_count": "3"}, "block_count")):
        reply = _begin(client, key, **overrides)
        assert reply.status_code == 400 and reason in reply.json()["error"], (overrides, reply.text)
    assert _begin(client, "not-a-key").json()["node_invalid"] is True


def test_carves_are_for_maintainers_of_the_hosts_team(client: TestClient, database: Database, admin_token: str,
                                                      clock: list[datetime]) -> None:
    team = make_team(database, "Servers")
    add_secret(database, "team-secret", team_name=None)
    key = enroll(client, "team-secret", "team-box")
    with database.session() as session:
        session.scalars(select(Host)).one().team_id = team
    _upload(client, key)
    carve_id = client.get(f"{API}/carves", headers=auth(admin_token)).json()["carves"][0]["id"]
    other = make_team(database, "Laptops")
    own = auth(make_user(database, "own@example.com", None, teams={team: "maintainer"}))
    stranger = auth(make_user(database, "far@example.com", None, teams={other: "maintainer"}))
    observer = auth(make_user(database, "obs@example.com", "observer"))
    assert [c["id"] for c in client.get(f"{API}/carves", headers=own).json()["carves"]] == [carve_id]
    assert client.get(f"{API}/carves/{carve_id}/block/0", headers=own).status_code == 200
    assert client.get(f"{API}/carves", headers=stranger).json()["carves"] == []
    for headers in (stranger, observer):
        reply = client.get(f"{API}/carves/{carve_id}", headers=headers)
        assert reply.status_code == 403, reply.text
        assert_fleet_error(reply.json())
    # The host goes; its carve stays (evidence), for global users only.
    with database.session() as session:
        session.delete(session.scalars(select(Host)).one())
    assert client.get(f"{API}/carves/{carve_id}", headers=auth(admin_token)).json()["carve"]["host_id"] is None
    assert client.get(f"{API}/carves/{carve_id}", headers=own).status_code == 403
    assert client.get(f"{API}/carves/999", headers=auth(admin_token)).status_code == 404
