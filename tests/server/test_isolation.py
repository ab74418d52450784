"""A node key only ever reaches its own host's work."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from live_helpers import Agent
from osquery_agent_helpers import add_secret, configure
from server_helpers import auth
from sqlalchemy import select

from hostql.server.state import ServerState
from hostql.server.storage.db import Database
from hostql.server.storage.models import Host, HostUser, PolicyMembership


@pytest.fixture(autouse=True)
def _settings(state: ServerState, database: Database, tmp_path: Path) -> None:
    configure(state, tmp_path, live_query_rest_period=2.0)
    add_secret(database, "live-secret")


def test_a_live_query_for_one_host_never_reaches_another(client: TestClient, database: Database,
                                                        admin_token: str) -> None:
    alice, bob = Agent(client, "alice"), Agent(client, "bob")
    alice.read(), bob.read()
    campaign = client.post("/api/v1/fleet/queries/run", headers=auth(admin_token),
                           json={"query": "SELECT 1 AS one", "selected": {"hosts": [bob.host_id(database)]}})
    assert campaign.status_code == 200, campaign.text
    name = f"fleet_distributed_query_{campaign.json()['campaign']['id']}"
    assert name not in alice.live_queries()
    assert name in bob.live_queries()


def test_a_host_cannot_write_answers_for_another(client: TestClient, database: Database) -> None:
    alice, bob = Agent(client, "alice"), Agent(client, "bob")
    with database.session() as session:
        bob_id = session.scalars(select(Host.id).where(Host.node_key == bob.node_key)).one()
    # Alice answers a users detail query: only Alice's host gets the rows, whatever they say.
    alice.answer("fleet_detail_query_users", [{"uid": "0", "username": "mallory", "type": "", "groupname": "",
                                               "shell": "/bin/sh"}])
    with database.session() as session:
        owners = set(session.scalars(select(HostUser.host_id).where(HostUser.username == "mallory")))
        assert bob_id not in owners
        assert owners == {session.scalars(select(Host.id).where(Host.node_key == alice.node_key)).one()}


def test_unknown_policy_and_campaign_ids_are_ignored(client: TestClient, database: Database) -> None:
    alice = Agent(client, "alice")
    alice.answer("fleet_policy_query_999", [{"1": "1"}])
    alice.answer("fleet_distributed_query_999", [{"x": "1"}])
    with database.session() as session:
        assert session.scalars(select(PolicyMembership)).all() == []


def test_a_stolen_node_key_stops_working_after_reenrollment(client: TestClient) -> None:
    first = Agent(client, "alice")
    again = Agent(client, "alice")  # the same identifier enrolls again: the old key is dead
    reply = client.post("/api/osquery/distributed/read", json={"node_key": first.node_key})
    assert reply.json().get("node_invalid") is True
    assert again.read() is not None
