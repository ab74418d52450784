"""Helpers for the live-query tests: agents through the real osquery API, bounded WebSocket reads."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

import anyio
from fastapi.testclient import TestClient
from osquery_agent_helpers import enroll
from sqlalchemy import select
from starlette.testclient import WebSocketTestSession

from hostql.server.storage.db import Database
from hostql.server.storage.models import Host, utcnow

SECRET = "live-secret"
WS = "/api/v1/fleet/results/websocket"
T = TypeVar("T")


class Agent:
    """One enrolled host speaking osquery's distributed protocol to a server."""

    def __init__(self, client: TestClient, name: str, secret: str = SECRET) -> None:
        self.client = client
        self.name = name
        self.node_key = enroll(client, secret, name, {"system_info": {"hostname": name, "uuid": name}})

    def host_id(self, database: Database) -> int:
        with database.session() as session:
            return session.scalars(select(Host.id).where(Host.node_key == self.node_key)).one()

    def read(self) -> dict[str, str]:
        reply = self.client.post("/api/osquery/distributed/read", json={"node_key": self.node_key})
        assert reply.status_code == 200, reply.text
        queries: dict[str, str] = reply.json()["queries"]
        return queries

    def live_queries(self) -> dict[str, str]:
        return {name: sql for name, sql in self.read().items() if name.startswith("fleet_distributed_query_")}

    def answer(self, name: str, rows: list[dict[str, str]], error: str = "") -> None:
        body = {"node_key": self.node_key, "queries": {name: rows}, "statuses": {name: 1 if error else 0},
                "messages": {name: error}}
        reply = self.client.post("/api/osquery/distributed/write", json=body)
        assert reply.status_code == 200, reply.text


def wait_for(probe: Callable[[], T], timeout: float = 10.0, interval: float = 0.02) -> T:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def receive(ws: WebSocketTestSession, timeout: float = 10.0) -> dict[str, Any]:
    """The next JSON message from the server, failing (not hanging) after ``timeout`` seconds."""

    async def bounded() -> Any:
        with anyio.fail_after(timeout):
            return await ws._send_rx.receive()

    message = ws.portal.call(bounded)
    assert message["type"] == "websocket.send", message
    decoded: dict[str, Any] = json.loads(message["text"])
    return decoded


def next_frame(ws: WebSocketTestSession, timeout: float = 10.0) -> dict[str, Any]:
    """The next raw ASGI message the server sends (``websocket.send`` or ``websocket.close``)."""

    async def bounded() -> Any:
        with anyio.fail_after(timeout):
            return await ws._send_rx.receive()

    message: dict[str, Any] = ws.portal.call(bounded)
    return message


def add_offline_host(database: Database, name: str, team_id: int | None = None, *,
                     seen_ago: timedelta = timedelta(hours=2)) -> int:
    with database.session() as session:
        host = Host(osquery_host_id=name, node_key=f"key-{name}", hostname=name, team_id=team_id,
                    seen_time=utcnow() - seen_ago, distributed_interval=10, config_tls_refresh=10)
        session.add(host)
        session.flush()
        return host.id
