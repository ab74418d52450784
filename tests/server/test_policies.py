"""Policies REST API (global and team), counts from results, and the failing-policy webhook."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient
from inventory_helpers import NOW, freeze, make_host, set_result
from server_helpers import assert_fleet_error, auth, make_team, make_user
from sqlalchemy import select

from hostql.server.services.policies import PolicyResultChange, policy_results_changed, record_policy_results
from hostql.server.services.policy_webhook import dispatcher
from hostql.server.state import ServerState
from hostql.server.storage.db import Database
from hostql.server.storage.models import Activity, AppConfig, Host, Team

API = "/api/v1/fleet"
GATEKEEPER = {"name": "Gatekeeper enabled", "query": "SELECT 1 FROM gatekeeper WHERE assessments_enabled = 1;",
              "description": "Checks if gatekeeper is enabled on macOS devices",
              "resolution": "Resolution steps", "platform": "darwin", "critical": False}


def test_create_global_policy_shape(client: TestClient, admin_token: str) -> None:
    response = client.post(f"{API}/global/policies", json=GATEKEEPER, headers=auth(admin_token))
    assert response.status_code == 200, response.text
    policy = response.json()["policy"]
    assert {k: policy[k] for k in GATEKEEPER} == GATEKEEPER
    assert policy["team_id"] is None and policy["author_email"] == "admin@example.com"
    assert policy["author_name"] == "admin" and isinstance(policy["author_id"], int)
    assert policy["passing_host_count"] == 0 and policy["failing_host_count"] == 0
    assert policy["host_count_updated_at"] is None
    for key in ("id", "created_at", "updated_at"):
        assert key in policy
    dup = client.post(f"{API}/global/policies", json=GATEKEEPER, headers=auth(admin_token))
    assert dup.status_code == 409
    bad = client.post(f"{API}/global/policies", json={**GATEKEEPER, "name": "x", "platform": "beos"},
                      headers=auth(admin_token))
    assert bad.status_code == 422
    assert_fleet_error(bad.json())


def test_counts_list_patch_delete(client: TestClient, database: Database, admin_token: str) -> None:
    h = auth(admin_token)
    ids = [client.post(f"{API}/global/policies", json={"name": f"p{i}", "query": "select 1;"}, headers=h)
           .json()["policy"]["id"] for i in range(3)]
    hosts = [make_host(database, f"h{i}") for i in range(4)]
    set_result(database, ids[0], hosts[0], True)
    set_result(database, ids[0], hosts[1], True)
    set_result(database, ids[0], hosts[2], False)
    set_result(database, ids[0], hosts[3], None)
    policy = client.get(f"{API}/global/policies/{ids[0]}", headers=h).json()["policy"]
    assert (policy["passing_host_count"], policy["failing_host_count"]) == (2, 1)
    assert policy["host_count_updated_at"] == NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert client.get(f"{API}/policies/count", headers=h).json() == {"count": 3}
    assert client.get(f"{API}/policies/count", params={"query": "p1"}, headers=h).json() == {"count": 1}
    listed = client.get(f"{API}/global/policies", params={"order_key": "name", "order_direction": "desc"},
                        headers=h).json()["policies"]
    assert [p["name"] for p in listed] == ["p2", "p1", "p0"]

    patched = client.patch(f"{API}/global/policies/{ids[0]}", json={"critical": True, "resolution": "fix it"},
                           headers=h).json()["policy"]
    assert patched["critical"] is True and patched["resolution"] == "fix it" and patched["passing_host_count"] == 2
    requery = client.patch(f"{API}/global/policies/{ids[0]}", json={"query": "select 2;"}, headers=h).json()
    assert requery["policy"]["passing_host_count"] == 0  # old answers were to another question

    deleted = client.post(f"{API}/global/policies/delete", json={"ids": ids[1:]}, headers=h)
    assert deleted.json() == {"deleted": 2}
    assert client.get(f"{API}/global/policies/{ids[1]}", headers=h).status_code == 404
    with database.session() as session:
        types = [a.type for a in session.scalars(select(Activity).order_by(Activity.id))]
        details = session.scalars(select(Activity).where(Activity.type == "deleted_policy")).first()
        assert details is not None and details.details["team_id"] == -1
    assert types == ["created_policy"] * 3 + ["edited_policy"] * 2 + ["deleted_policy"] * 2


def test_team_policies(client: TestClient, database: Database, admin_token: str) -> None:
    h = auth(admin_token)
    team = make_team(database, "Laptops")
    client.post(f"{API}/global/policies", json={"name": "global one", "query": "select 1;"}, headers=h)
    created = client.post(f"{API}/teams/{team}/policies", json={"name": "team one", "query": "select 1;"}, headers=h)
    assert created.status_code == 200, created.text
    policy = created.json()["policy"]
    assert policy["team_id"] == team
    listed = client.get(f"{API}/teams/{team}/policies", headers=h).json()
    assert [p["name"] for p in listed["policies"]] == ["team one"]
    assert [p["name"] for p in listed["inherited_policies"]] == ["global one"]
    assert client.get(f"{API}/teams/{team}/policies/count", headers=h).json() == {"count": 1}
    # A team policy is not reachable as a global one, and the reverse.
    assert client.get(f"{API}/global/policies/{policy['id']}", headers=h).status_code == 404
    patched = client.patch(f"{API}/teams/{team}/policies/{policy['id']}", json={"name": "renamed"}, headers=h)
    assert patched.json()["policy"]["name"] == "renamed"
    # Applies only to that team's hosts.
    mine = make_host(database, "in-team", team_id=team)
    other = make_host(database, "no-team")
    mine_policies = [p["name"] for p in client.get(f"{API}/hosts/{mine}", headers=h).json()["host"]["policies"]]
    other_policies = [p["name"] for p in client.get(f"{API}/hosts/{other}", headers=h).json()["host"]["policies"]]
    assert mine_policies == ["global one", "renamed"] and other_policies == ["global one"]
    assert client.post(f"{API}/teams/{team}/policies/delete", json={"ids": [policy["id"]]},
                       headers=h).json() == {"deleted": 1}
    assert client.get(f"{API}/teams/999/policies", headers=h).status_code == 404


def test_observer_cannot_write_policies(client: TestClient, database: Database) -> None:
    h = auth(make_user(database, "o@example.com", "observer"))
    assert client.get(f"{API}/global/policies", headers=h).status_code == 200
    response = client.post(f"{API}/global/policies", json=GATEKEEPER, headers=h)
    assert response.status_code == 403
    assert_fleet_error(response.json())


# --- failing-policy webhook ----------------------------------------------------------------

class Receiver:
    """A tiny HTTP server on loopback that records the JSON bodies POSTed to it."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def _configure_webhook(database: Database, url: str, policy_ids: list[int], batch: int = 0) -> None:
    with database.session() as session:
        session.add(AppConfig(json_value={
            "server_settings": {"server_url": "https://fleet.example.com"},
            "webhook_settings": {"failing_policies_webhook": {
                "enable_failing_policies_webhook": True, "destination_url": url,
                "policy_ids": policy_ids, "host_batch_size": batch}}}))


def _report(state: ServerState, database: Database, host_id: int, results: dict[int, bool | None]) -> None:
    with database.session() as session:
        host = session.get(Host, host_id)
        assert host is not None
        record_policy_results(state, session, host, results)
    dispatcher(state).wait(10)


def test_webhook_fires_once_per_flip_to_failing(client: TestClient, state: ServerState, database: Database,
                                                admin_token: str, receiver: Receiver) -> None:
    freeze(state)
    h = auth(admin_token)
    watched = client.post(f"{API}/global/policies", json={"name": "disk encrypted", "query": "select 1;"},
                          headers=h).json()["policy"]["id"]
    unwatched = client.post(f"{API}/global/policies", json={"name": "other", "query": "select 1;"},
                            headers=h).json()["policy"]["id"]
    _configure_webhook(database, receiver.url, [watched])
    host = make_host(database, "laptop-7", display_name="Laptop 7")

    _report(state, database, host, {watched: True, unwatched: False})
    assert receiver.bodies == []  # passing, and the failing one is not watched
    _report(state, database, host, {watched: False})
    assert len(receiver.bodies) == 1
    _report(state, database, host, {watched: False})  # still failing: no new flip
    _report(state, database, host, {watched: None})  # no response
    _report(state, database, host, {watched: False})  # None -> False is a flip
    assert len(receiver.bodies) == 2
    _report(state, database, host, {watched: True})
    _report(state, database, host, {watched: False})
    assert len(receiver.bodies) == 3

    body = receiver.bodies[0]
    assert body["timestamp"] == NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert body["policy"]["id"] == watched and body["policy"]["name"] == "disk encrypted"
    assert body["policy"]["failing_host_count"] == 1 and body["policy"]["passing_host_count"] == 0
    assert body["hosts"] == [{"id": host, "hostname": "laptop-7", "display_name": "Laptop 7",
                              "url": f"https://fleet.example.com/hosts/{host}"}]
    issues = client.get(f"{API}/hosts/{host}", headers=h).json()["host"]["issues"]
    assert issues["failing_policies_count"] == 2  # the watched one and the unwatched one


def test_webhook_batches_hosts_and_skips_when_disabled(state: ServerState, database: Database,
                                                       receiver: Receiver) -> None:
    freeze(state)
    with database.session() as session:
        from hostql.server.storage.models import Policy

        policy = Policy(name="p", query="select 1;")
        session.add(policy)
        session.flush()
        policy_id = policy.id
    hosts = [make_host(database, f"h{i}") for i in range(3)]
    with database.session() as session:
        assert policy_results_changed(state, session, [(hosts[0], policy_id, None, False)]) == []  # no config
    _configure_webhook(database, receiver.url, [policy_id], batch=2)
    with database.session() as session:
        deliveries = policy_results_changed(state, session, [
            PolicyResultChange(h, policy_id, True, False) for h in hosts] + [
            PolicyResultChange(hosts[0], policy_id, False, False)])
    dispatcher(state).wait(10)
    assert [len(d.payload["hosts"]) for d in deliveries] == [2, 1]
    assert sorted(len(b["hosts"]) for b in receiver.bodies) == [1, 2]


def test_team_policy_webhook_uses_team_settings(client: TestClient, state: ServerState, database: Database,
                                                admin_token: str, receiver: Receiver) -> None:
    freeze(state)
    team_id = make_team(database, "Desktops")
    policy_id = client.post(f"{API}/teams/{team_id}/policies", json={"name": "t", "query": "select 1;"},
                            headers=auth(admin_token)).json()["policy"]["id"]
    with database.session() as session:
        team = session.get(Team, team_id)
        assert team is not None
        team.config = {"webhook_settings": {"failing_policies_webhook": {
            "enable_failing_policies_webhook": True, "destination_url": receiver.url, "policy_ids": [policy_id]}}}
    host = make_host(database, "desk-1", team_id=team_id)
    _report(state, database, host, {policy_id: False})
    assert len(receiver.bodies) == 1 and receiver.bodies[0]["policy"]["team_id"] == team_id


def test_webhook_fires_from_an_agents_distributed_write(client: TestClient, state: ServerState, database: Database,
                                                        admin_token: str, receiver: Receiver,
                                                        tmp_path: Any) -> None:
    from osquery_agent_helpers import add_secret, configure, enroll

    configure(state, tmp_path)
    add_secret(database, "s3cret")
    policy = client.post(f"{API}/global/policies", json={"name": "ssh off", "query": "select 1;"},
                         headers=auth(admin_token)).json()["policy"]["id"]
    _configure_webhook(database, receiver.url, [policy])
    node_key = enroll(client, "s3cret", "laptop-9")

    def write(rows: list[dict[str, str]]) -> None:
        body = {"node_key": node_key, "queries": {f"fleet_policy_query_{policy}": rows},
                "statuses": {f"fleet_policy_query_{policy}": 0}, "messages": {}}
        assert client.post("/api/osquery/distributed/write", json=body).status_code == 200
        dispatcher(state).wait(10)

    write([{"1": "1"}])
    assert receiver.bodies == []
    write([])  # no row: the policy now fails on this host
    assert len(receiver.bodies) == 1
    assert receiver.bodies[0]["policy"]["id"] == policy
    with database.session() as session:
        host_id = session.scalars(select(Host.id).where(Host.osquery_host_id == "laptop-9")).one()
    assert [h["id"] for h in receiver.bodies[0]["hosts"]] == [host_id]
