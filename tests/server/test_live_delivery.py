"""Live-query answers under load: none lost before the WebSocket listens, no DB call on the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from live_helpers import WS, Agent, receive
from osquery_agent_helpers import add_secret, configure
from server_helpers import auth

from hostql.server.services import campaigns
from hostql.server.state import ServerState
from hostql.server.storage.db import Database

RUN = "/api/v1/fleet/queries/run"


@pytest.fixture(autouse=True)
def _settings(state: ServerState, database: Database, tmp_path: Path) -> None:
    configure(state, tmp_path, live_query_status_interval=30.0, live_query_rest_period=5.0)
    add_secret(database, "live-secret")


def start(client: TestClient, token: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(RUN, json=body, headers=auth(token))
    assert response.status_code == 200, response.text
    campaign: dict[str, Any] = response.json()["campaign"]
    return campaign


def test_answers_sent_before_the_websocket_listens_are_delivered_when_it_does(
        client: TestClient, admin_token: str, database: Database, state: ServerState) -> None:
    agents = [Agent(client, f"early{i}") for i in range(3)]
    ids = [agent.host_id(database) for agent in agents]
    campaign = start(client, admin_token, {"query": "SELECT 3", "selected": {"hosts": ids}})
    name = f"fleet_distributed_query_{campaign['id']}"
    for index, agent in enumerate(agents[:2]):  # they answer before the UI opened its WebSocket
        assert name in agent.live_queries()
        agent.answer(name, [{"3": str(index)}])
    with client.websocket_connect(WS) as ws:
        ws.send_json({"type": "auth", "data": {"token": admin_token}})
        ws.send_json({"type": "select_campaign", "data": {"campaign_id": campaign["id"]}})
        messages = [receive(ws) for _ in range(4)]
        results = [m["data"] for m in messages if m["type"] == "result"]
        # Delivered at once, without waiting for the hosts to be asked again a distributed interval later.
        assert sorted(r["host"]["id"] for r in results) == ids[:2]
        assert sorted(r["rows"][0]["3"] for r in results) == ["0", "1"]
        assert all("_retained" not in r for r in results)
        assert agents[0].live_queries() == {} and agents[1].live_queries() == {}  # answered: not asked again
        agents[2].answer(name, [])
        late = receive(ws)
        assert late["type"] == "result" and late["data"]["host"]["id"] == ids[2]


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def test_no_database_call_runs_on_the_event_loop(client: TestClient, admin_token: str, database: Database,
                                                 state: ServerState, monkeypatch: pytest.MonkeyPatch) -> None:
    """A blocked loop stalls every check-in it serves: under SQLite write contention a DB call
    on the loop waited for the write lock and the WebSocket saw only a few dozen answers."""
    early, late = Agent(client, "early"), Agent(client, "late")
    ids = [early.host_id(database), late.host_id(database)]
    campaign = start(client, admin_token, {"query": "SELECT 5", "selected": {"hosts": ids}})
    name = f"fleet_distributed_query_{campaign['id']}"
    on_loop: list[str] = []
    real_session = database.session

    @contextlib.contextmanager
    def watched() -> Iterator[Any]:
        if _on_event_loop():
            on_loop.append("".join(traceback.format_stack(limit=6)))
        with real_session() as session:
            yield session

    monkeypatch.setattr(database, "session", watched)
    early.answer(name, [{"5": "5"}])  # nobody listens yet: the campaign's age is looked up
    with client.websocket_connect(WS) as ws:
        ws.send_json({"type": "auth", "data": {"token": admin_token}})
        ws.send_json({"type": "select_campaign", "data": {"campaign_id": campaign["id"]}})
        kinds = [receive(ws)["type"] for _ in range(3)]
        assert sorted(kinds) == ["result", "status", "totals"]
        late.answer(name, [])
        assert receive(ws)["type"] == "result"
    deadline = time.monotonic() + 5
    while campaigns.target_store(state).active() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert campaigns.target_store(state).active() == set()
    assert on_loop == [], on_loop[0]
