"""A REST answer leaves the server only after its transaction is committed.

Over a real uvicorn server (a TestClient waits for the whole ASGI call, so it cannot see the order):
each commit is slowed down, and the client acts on the answer at once.  Had the commit run after
the response (FastAPI's default for dependencies with ``yield``), the follow-up request would not
find what the first one created.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from dbservers import free_port
from server_helpers import PASSWORD, make_user
from sqlalchemy import event

from hostql.server.app import create_app
from hostql.server.state import ServerState
from hostql.server.storage.db import Database

COMMIT_DELAY_S = 0.5  # widens the window a late commit would leave; nothing is timed


@pytest.fixture
def served(state: ServerState) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(state), host="127.0.0.1", port=port, log_level="error",
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def _slow_commits(database: Database) -> None:
    def before_commit(_session: Any) -> None:
        time.sleep(COMMIT_DELAY_S)

    event.listen(database.sessions, "before_commit", before_commit)


def test_a_login_token_and_a_new_query_work_in_the_very_next_request(served: str, database: Database) -> None:
    make_user(database, "admin@example.com", "admin", password=PASSWORD)
    _slow_commits(database)
    with httpx.Client(base_url=served, timeout=30) as client:
        login = client.post("/api/v1/fleet/login", json={"email": "admin@example.com", "password": PASSWORD})
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['token']}"}
        me = client.get("/api/v1/fleet/me", headers=headers)
        assert me.status_code == 200, me.text
        created = client.post("/api/v1/fleet/queries", headers=headers,
                              json={"name": "uptime", "query": "SELECT * FROM uptime;"})
        assert created.status_code == 200, created.text
        query_id = created.json()["query"]["id"]
        fetched = client.get(f"/api/v1/fleet/queries/{query_id}", headers=headers)
        assert fetched.status_code == 200, fetched.text
