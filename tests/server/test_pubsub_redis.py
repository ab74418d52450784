"""Live queries across two server instances sharing one database and one real Redis.

The test starts a throwaway ``redis-server`` on a free loopback port (never
6379), and stops it by pid at the end.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from live_helpers import WS, Agent, add_offline_host, receive, wait_for
from osquery_agent_helpers import add_secret, agent_settings
from server_helpers import auth, make_user
from sqlalchemy import select

from hostql.server.app import create_app
from hostql.server.pubsub import RedisPubSub, RedisTargetStore
from hostql.server.services import campaigns, checkin
from hostql.server.state import ServerState
from hostql.server.storage.db import Database
from hostql.server.storage.models import Host


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = _free_port()
    assert port != 6379
    log = (tmp_path / "redis.log").open("wb")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--daemonize", "no", "--dir", str(tmp_path)],
        stdout=log, stderr=subprocess.STDOUT)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    if client.ping():
                        break
                except redis.ConnectionError:
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise
                    time.sleep(0.05)
        finally:
            client.close()
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def test_target_store_uses_fleets_layout(redis_url: str, raw: redis.Redis) -> None:
    store = RedisTargetStore(redis.Redis.from_url(redis_url), active_cache_seconds=0)
    other = RedisTargetStore(redis.Redis.from_url(redis_url), active_cache_seconds=0)
    store.add(12, "SELECT 1", [3, 700])
    assert raw.getbit("livequery:{12}", 3) == 1 and raw.getbit("livequery:{12}", 4) == 0
    assert raw.get("sql:livequery:{12}") == b"SELECT 1"
    assert raw.smembers("livequery:active") == {b"12"}
    assert 0 < raw.ttl("livequery:{12}") <= 7 * 24 * 3600
    assert other.pending(700) == {12: "SELECT 1"} and other.pending(4) == {}
    other.clear(12, 700)
    assert store.pending(700) == {} and store.is_pending(12, 3)
    store.remove(12)
    assert raw.exists("livequery:{12}", "sql:livequery:{12}") == 0 and store.active() == set()
    other.clear(12, 3)  # a stopped campaign is not recreated by a late answer
    assert raw.exists("livequery:{12}") == 0


def test_active_set_is_cached_briefly(redis_url: str) -> None:
    writer = RedisTargetStore(redis.Redis.from_url(redis_url), active_cache_seconds=0)
    reader = RedisTargetStore(redis.Redis.from_url(redis_url), active_cache_seconds=0.3)
    assert reader.pending(1) == {}
    writer.add(5, "SELECT 5", [1])
    assert reader.pending(1) == {}  # the empty active set is still cached
    wait_for(lambda: reader.pending(1) == {5: "SELECT 5"}, timeout=5)


def _instance(database_url: str, tmp_path: Path, redis_url: str, name: str) -> ServerState:
    settings = agent_settings(tmp_path / name, live_query_status_interval=30.0, live_query_rest_period=10.0)
    return ServerState(Database(database_url), settings=settings, pubsub=RedisPubSub(redis_url))


def test_campaign_on_instance_a_gets_results_from_agents_at_instance_b(
        tmp_path: Path, redis_url: str, raw: redis.Redis) -> None:
    database_url = f"sqlite:///{tmp_path}/shared.db"
    setup = Database(database_url)
    setup.create_all()
    add_secret(setup, "live-secret")
    token = make_user(setup, "admin@example.com", "admin")
    offline = add_offline_host(setup, "away")
    setup.dispose()

    state_a = _instance(database_url, tmp_path, redis_url, "a")
    state_b = _instance(database_url, tmp_path, redis_url, "b")
    try:
        # Each app closes its pub/sub (and its Redis connections) when it shuts down.
        with TestClient(create_app(state_a)) as a, TestClient(create_app(state_b)) as b:
            _run_both(a, b, state_a, state_b, token, offline, raw)
    finally:
        state_a.database.dispose()
        state_b.database.dispose()


def _run_both(a: TestClient, b: TestClient, state_a: ServerState, state_b: ServerState, token: str,
              offline: int, raw: redis.Redis) -> None:
    agent = Agent(b, "remote")  # enrolls and checks in at instance B only
    host_id = agent.host_id(state_b.database)

    # Campaign + WebSocket at A, agent at B.
    response = a.post("/api/v1/fleet/queries/run", json={"query": "SELECT 'b' AS via",
                                                          "selected": {"hosts": [host_id, offline]}},
                      headers=auth(token))
    assert response.status_code == 200, response.text
    campaign: dict[str, Any] = response.json()["campaign"]
    assert campaign["Metrics"]["TotalHosts"] == 2 and campaign["Metrics"]["OfflineHosts"] == 1
    assert raw.getbit(f"livequery:{{{campaign['id']}}}", host_id) == 1
    name = f"fleet_distributed_query_{campaign['id']}"
    with a.websocket_connect(WS) as ws:
        ws.send_json({"type": "auth", "data": {"token": token}})
        ws.send_json({"type": "select_campaign", "data": {"campaign_id": campaign["id"]}})
        assert receive(ws)["data"] == {"count": 2, "online": 1, "offline": 1, "missing_in_action": 0}
        assert receive(ws)["data"]["status"] == "pending"
        pending = wait_for(agent.live_queries)
        assert pending == {name: "SELECT 'b' AS via"}
        agent.answer(name, [{"via": "b"}])
        result = receive(ws)
        assert result["type"] == "result"
        assert result["data"]["host"] == {"id": host_id, "hostname": "remote", "display_name": "remote"}
        assert result["data"]["rows"] == [{"via": "b", "host_hostname": "remote", "host_display_name": "remote"}]
        assert receive(ws)["data"]["status"] == "finished"
        assert raw.getbit(f"livequery:{{{campaign['id']}}}", host_id) == 0
    # Closing the socket at A stops the campaign for every instance.
    wait_for(lambda: not raw.sismember("livequery:active", campaign["id"]))
    assert raw.exists(f"livequery:{{{campaign['id']}}}", f"sql:livequery:{{{campaign['id']}}}") == 0
    assert campaigns.target_store(state_b).pending(offline) == {}

    # Synchronous run at A, answered at B.
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(a.post, "/api/v1/fleet/hosts/identifier/remote/query",
                             json={"query": "SELECT 42 AS answer"}, headers=auth(token))
        pending = wait_for(agent.live_queries)
        agent.answer(next(iter(pending)), [{"answer": "42"}])
        answered = future.result(timeout=30)
    assert answered.status_code == 200, answered.text
    assert answered.json() == {"host_id": host_id, "query": "SELECT 42 AS answer", "status": "online",
                               "error": None, "rows": [{"answer": "42"}]}
    assert raw.smembers("livequery:active") == set()
    assert a.get("/api/v1/fleet/status/result_store", headers=auth(token)).status_code == 200


def test_a_host_deleted_at_instance_a_stops_working_at_instance_b(tmp_path: Path, redis_url: str) -> None:
    database_url = f"sqlite:///{tmp_path}/shared.db"
    setup = Database(database_url)
    setup.create_all()
    with setup.session() as session:
        session.add(Host(osquery_host_id="h1", node_key="key-1", hostname="one"))
    setup.dispose()
    # A cache TTL far beyond the wait below: only the announcement can explain B forgetting the host.
    states = [ServerState(Database(database_url), settings=SimpleNamespace(host_cache_ttl=3600.0,
                                                                           seen_time_flush_interval=0),
                          pubsub=RedisPubSub(redis_url)) for _ in "ab"]
    helper_a, helper_b = (checkin.checkin_for(state) for state in states)
    try:
        for helper in (helper_a, helper_b):
            helper.start()
        # B's watcher is subscribed once an announcement reaches it: wait for one that changes nothing.
        wait_for(lambda: _announced_and_heard(states[0], helper_b), timeout=10)
        for helper in (helper_a, helper_b):
            assert helper.host_for_key("key-1") is not None  # now cached at both instances
        hits = helper_b.cache.hits
        assert helper_b.host_for_key("key-1") is not None and helper_b.cache.hits == hits + 1
        with states[0].database.session() as session:
            session.delete(session.scalars(select(Host)).one())
        assert helper_a.host_for_key("key-1") is None
        wait_for(lambda: helper_b.host_for_key("key-1") is None, timeout=10)
    finally:
        for state, helper in zip(states, (helper_a, helper_b)):
            helper.stop()
            asyncio.run(state.pubsub.close())
            state.database.dispose()


def _announced_and_heard(sender: ServerState, receiver: checkin.Checkin) -> bool:
    before = receiver.cache.generation
    sender.pubsub.announce_host_changes({999_999})  # no such host
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        if receiver.cache.generation != before:
            return True
        time.sleep(0.02)
    return False
