"""Distributed queries against the real TLS test server and a real SQL connection."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tls_server import READ, WRITE, Agent, TLSTestServer, make_agent

from hostql import OSQUERY_VERSION
from hostql.agent.remote.distributed import (
    ACCELERATE_KEY,
    DENYLISTED,
    Distributed,
    RejectedWork,
    sql_digest,
)
from hostql.agent.store import CONFIGURATIONS, DISTRIBUTED, DISTRIBUTED_RUNNING
from hostql.sql.connection import Connection, QueryResult


@pytest.fixture(scope="module")
def conn() -> Iterator[Connection]:
    c = Connection()
    yield c
    c.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[TLSTestServer]:
    with TLSTestServer(tmp_path) as srv:
        yield srv


@pytest.fixture
def agent(server: TLSTestServer, tmp_path: Path, conn: Connection) -> Iterator[Agent]:
    a = make_agent(server, tmp_path, conn)
    yield a
    a.close()


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def dist(agent: Agent, conn: Connection, clock: Clock | None = None) -> Distributed:
    return Distributed(agent.flags, agent.client, conn, agent.store, clock=clock or Clock())


def test_read_run_write(server: TLSTestServer, agent: Agent, conn: Connection) -> None:
    server.state.reads.append({
        "queries": {"good": "SELECT version, 1 AS one, NULL AS empty FROM osquery_info", "bad": "SELECT * FROM nope"},
    })
    d = dist(agent, conn)
    d.step()
    (read,) = server.to(READ)
    assert read.body == {"node_key": "node-key-1"}
    (write,) = server.to(WRITE)
    body = write.body
    assert list(body) == ["queries", "statuses", "messages", "stats", "node_key"]
    assert body["node_key"] == "node-key-1"
    assert write.headers["authorization"] == "NodeKey node-key-1"
    assert body["queries"] == {"bad": [], "good": [{"version": OSQUERY_VERSION, "one": "1", "empty": ""}]}
    assert list(body["queries"]["good"][0]) == ["version", "one", "empty"]  # SQL column order
    assert body["statuses"] == {"bad": 1, "good": 0}
    assert body["messages"] == {"bad": "no such table: nope", "good": ""}
    assert set(body["stats"]["good"]) == {"wall_time_ms", "user_time", "system_time", "memory"}
    assert all(isinstance(v, int) for v in body["stats"]["good"].values())
    assert body["stats"]["bad"] == {}
    assert d.unsent == {}
    assert agent.store.items(DISTRIBUTED) == [] and agent.store.items(DISTRIBUTED_RUNNING) == []
    d.step()  # nothing new: a read, no write
    assert len(server.to(READ)) == 2 and len(server.to(WRITE)) == 1


def test_queries_are_stored_before_they_run(server: TLSTestServer, agent: Agent, conn: Connection) -> None:
    seen: list[Any] = []

    class Spy:
        def execute(self, sql: str) -> QueryResult:
            seen.append((agent.store.items(DISTRIBUTED), agent.store.items(DISTRIBUTED_RUNNING)))
            return conn.execute(sql)

    server.state.reads.append({"queries": {"a": "SELECT 1"}})
    Distributed(agent.flags, agent.client, Spy(), agent.store, clock=Clock()).step()
    assert seen == [([("a", "SELECT 1")], [(sql_digest("SELECT 1"), "1700000000")])]
    assert agent.store.items(DISTRIBUTED) == [] and agent.store.items(DISTRIBUTED_RUNNING) == []


def test_discovery_filters_queries(server: TLSTestServer, agent: Agent, conn: Connection) -> None:
    server.state.reads.append({
        "queries": {"yes": "SELECT 1 AS x", "no": "SELECT 2 AS x", "plain": "SELECT 3 AS x"},
        "discovery": {"yes": "SELECT 1", "no": "SELECT 1 WHERE 0"},
    })
    dist(agent, conn).step()
    (write,) = server.to(WRITE)
    assert write.body["queries"] == {"plain": [{"x": "3"}], "yes": [{"x": "1"}]}


@pytest.mark.parametrize("body", [
    {"queries": {"a": "SELECT 1"}, "discovery": {"a": "SELECT * FROM nope"}},
    {"queries": {"a": 5}},
    {"queries": {"a": ""}},
    {"queries": ["SELECT 1"]},
    {"queries": {"a": "SELECT 1"}, "discovery": {"a": 1}},
    {"queries": {"a": "SELECT 1"}, "accelerate": "300"},
    {"queries": {"a": "SELECT 1"}, "accelerate": 30.5},
    {"queries": {"a": "SELECT 1"}, "accelerate": True},
])
def test_bad_responses_are_rejected_whole(server: TLSTestServer, agent: Agent, conn: Connection,
                                          body: dict[str, Any]) -> None:
    d = dist(agent, conn)
    with pytest.raises(RejectedWork):
        d.accept(body)
    server.state.reads.append(body)
    d.step()
    assert server.to(WRITE) == []
    assert agent.store.items(DISTRIBUTED) == []
    assert agent.store.get(CONFIGURATIONS, ACCELERATE_KEY) is None


def test_accelerate_shortens_the_interval_until_it_expires(server: TLSTestServer, agent: Agent,
                                                           conn: Connection) -> None:
    clock = Clock()
    agent.flags.set("distributed_interval", 60)
    d = dist(agent, conn, clock)
    assert d.next_interval() == 60
    server.state.reads.append({"queries": {}, "accelerate": 300})
    d.step()
    assert d.next_interval() == 5
    clock.now += 299
    assert d.next_interval() == 5
    clock.now += 1
    assert d.next_interval() == 60


def test_a_query_running_at_a_crash_is_denylisted(server: TLSTestServer, agent: Agent, conn: Connection) -> None:
    clock = Clock()
    sql = "SELECT version FROM osquery_info"
    agent.store.put(DISTRIBUTED_RUNNING, sql_digest(sql), str(int(clock.now) - 100))
    server.state.reads.append({"queries": {"q1": sql, "q2": "SELECT 1 AS x"}})
    dist(agent, conn, clock).step()
    body = server.to(WRITE)[0].body
    assert body["statuses"] == {"q1": 1, "q2": 0}
    assert body["messages"]["q1"] == DENYLISTED
    assert body["queries"]["q1"] == []
    assert agent.store.get(DISTRIBUTED_RUNNING, sql_digest(sql)) is not None  # still refused next time


def test_denylist_expires(server: TLSTestServer, agent: Agent, conn: Connection) -> None:
    clock = Clock()
    sql = "SELECT version FROM osquery_info"
    agent.flags.set("distributed_denylist_duration", 60)
    agent.store.put(DISTRIBUTED_RUNNING, sql_digest(sql), str(int(clock.now) - 61))
    server.state.reads.append({"queries": {"q1": sql}})
    dist(agent, conn, clock).step()
    body = server.to(WRITE)[0].body
    assert body["statuses"] == {"q1": 0}
    assert body["queries"]["q1"] == [{"version": OSQUERY_VERSION}]
    assert agent.store.items(DISTRIBUTED_RUNNING) == []


def test_queries_left_by_a_crash_run_at_the_next_step(server: TLSTestServer, agent: Agent, conn: Connection) -> None:
    agent.store.put(DISTRIBUTED, "left", "SELECT 7 AS x")
    dist(agent, conn).step()
    assert server.to(WRITE)[0].body["queries"] == {"left": [{"x": "7"}]}


def test_failed_write_is_resent_with_the_next_batch(server: TLSTestServer, agent: Agent, conn: Connection) -> None:
    d = dist(agent, conn)
    server.state.reads.append({"queries": {"first": "SELECT 1 AS x"}})
    server.state.fail_writes = 3  # all three attempts of the first write
    d.step()
    assert agent.sleeps == [1, 4]
    assert list(d.unsent) == ["first"]
    server.state.reads.append({"queries": {"second": "SELECT 2 AS x"}})
    d.step()
    writes = server.to(WRITE)
    assert len(writes) == 4
    assert writes[-1].body["queries"] == {"first": [{"x": "1"}], "second": [{"x": "2"}]}
    assert d.unsent == {}


def test_node_invalid_at_read_and_write_reenrolls_once_each(server: TLSTestServer, agent: Agent,
                                                            conn: Connection) -> None:
    d = dist(agent, conn)
    d.step()
    server.revoke_keys()
    server.state.reads.append({"queries": {"a": "SELECT 1 AS x"}})
    d.step()
    assert server.enrollments() == 2
    assert server.to(WRITE)[0].body["node_key"] == "node-key-2"
    server.invalid_once.add(WRITE)
    server.state.reads.append({"queries": {"b": "SELECT 2 AS x"}})
    d.step()
    assert server.enrollments() == 3
    assert d.unsent == {}
    assert server.to(WRITE)[-1].body["queries"] == {"b": [{"x": "2"}]}


def test_disabled_does_nothing(server: TLSTestServer, agent: Agent, conn: Connection) -> None:
    agent.flags.set("disable_distributed", True)
    dist(agent, conn).step()
    assert server.requests == []


def test_server_closing_connections(server: TLSTestServer, agent: Agent, conn: Connection) -> None:
    server.close_after_response = True
    d = dist(agent, conn)
    for n in range(3):
        server.state.reads.append({"queries": {f"q{n}": f"SELECT {n} AS x"}})
        d.step()
    assert [w.body["queries"] for w in server.to(WRITE)] == [{f"q{n}": [{"x": str(n)}]} for n in range(3)]
