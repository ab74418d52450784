"""The empty ``distributed/read`` is answered from memory: no SQL at all, even with labels due."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from osquery_agent_helpers import add_secret, answer_all, configure, enroll, real_host_details
from server_helpers import recorded_statements
from sqlalchemy import select

from hostql.server.state import ServerState
from hostql.server.storage.db import Database
from hostql.server.storage.models import Host, Label, Query, QueryReport, utcnow


@pytest.fixture(autouse=True)
def _settings(state: ServerState, tmp_path: Path) -> None:
    configure(state, tmp_path)


def _read(client: TestClient, key: str) -> dict[str, Any]:
    reply = client.post("/api/osquery/distributed/read", json={"node_key": key})
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


def test_idle_reads_run_no_sql_and_new_labels_still_go_out(client: TestClient, database: Database) -> None:
    add_secret(database, "s")
    with database.session() as session:  # a label for another platform: never sent to this host
        session.add(Label(name="windows only", query="SELECT 1", platform="windows"))
    key = enroll(client, "s", "fast", real_host_details())
    queries = _read(client, key)["queries"]
    client.post("/api/osquery/distributed/write", json={"node_key": key, **answer_all(queries)})
    # Labels stay "due" (the host answered none), but none applies: after one read loads the
    # label and policy sets, reads need no database at all.
    assert _read(client, key)["queries"] == {}
    with recorded_statements(database) as statements:
        for _ in range(5):
            assert _read(client, key) == {"queries": {}, "discovery": {}}
    assert statements == []
    with database.session() as session:  # a change made through the ORM reaches the next read at once
        label = Label(name="everywhere", query="SELECT 2", platform="")
        session.add(label)
        session.flush()
        label_id = label.id
    assert _read(client, key)["queries"] == {f"fleet_label_query_{label_id}": "SELECT 2"}


def test_fast_read_path_answers_before_routing_and_passes_on_the_rest(client: TestClient, database: Database) -> None:
    import gzip
    import json as json_

    from hostql.server import fast_read

    add_secret(database, "s")
    key = enroll(client, "s", "fastpath", real_host_details())
    queries = _read(client, key)["queries"]  # detail queries due: answered by the full path
    assert queries
    client.post("/api/osquery/distributed/write", json={"node_key": key, **answer_all(queries)})
    for prefix in ("/api/osquery", "/api/v1/osquery"):
        reply = client.post(f"{prefix}/distributed/read", json={"node_key": key})
        assert reply.status_code == 200 and reply.content == fast_read.EMPTY_READ
        assert reply.headers["content-type"] == "application/json"
        by_header = client.post(f"{prefix}/distributed/read", content=b"{}",
                                headers={"Authorization": f"NodeKey {key}"})
        assert by_header.json() == {"queries": {}, "discovery": {}}
    # gzip bodies, unknown keys and bodies that are not JSON objects take the full path, as before
    packed = gzip.compress(json_.dumps({"node_key": key}).encode())
    zipped = client.post("/api/osquery/distributed/read", content=packed,
                         headers={"content-encoding": "gzip", "content-type": "application/json"})
    assert zipped.json() == {"queries": {}, "discovery": {}}
    unknown = client.post("/api/osquery/distributed/read", json={"node_key": "nope"})
    assert unknown.status_code == 401 and unknown.json()["node_invalid"] is True
    assert client.post("/api/osquery/distributed/read", content=b"[1]").status_code == 400
    assert client.post("/api/osquery/distributed/read", content=b"{bad").status_code == 400


def test_a_quiet_host_gets_its_detail_queries_when_due_and_on_refetch(client: TestClient, state: ServerState,
                                                                      database: Database) -> None:
    clock = [utcnow()]
    state.extras["clock"] = lambda: clock[0]
    add_secret(database, "s")
    key = enroll(client, "s", "quiet", real_host_details())
    client.post("/api/osquery/distributed/write", json={"node_key": key, **answer_all(_read(client, key)["queries"])})
    for _ in range(3):  # the quiet answer is remembered ...
        assert _read(client, key)["queries"] == {}

    def detail_queries() -> list[str]:
        return [name for name in _read(client, key)["queries"] if name.startswith("fleet_detail_query_")]

    clock[0] += timedelta(minutes=50)
    assert detail_queries() == []
    clock[0] += timedelta(minutes=20)  # ... until the detail interval (1 h, plus at most 10 % jitter) has passed
    assert detail_queries()
    client.post("/api/osquery/distributed/write", json={"node_key": key, **answer_all(_read(client, key)["queries"])})
    assert _read(client, key)["queries"] == {}
    with database.session() as session:  # a refetch (as POST /hosts/{id}/refetch does it) ends the quiet at once
        session.scalars(select(Host).where(Host.node_key == key)).one().refetch_requested = True
    assert detail_queries()


def test_logs_take_the_fast_path_with_the_full_paths_answers(client: TestClient, database: Database,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from hostql.server.services import agent_api

    add_secret(database, "s")
    key = enroll(client, "s", "logger", real_host_details())
    line = {"name": "pack/x/y", "hostIdentifier": "logger", "unixTime": 1, "action": "added", "columns": {"a": "1"}}
    for prefix in ("/api/osquery", "/api/v1/osquery"):
        ok = client.post(f"{prefix}/log", json={"node_key": key, "log_type": "result", "data": [line]})
        assert (ok.status_code, ok.json()) == (200, {})
    unknown = client.post("/api/osquery/log", json={"node_key": "nope", "log_type": "result", "data": []})
    assert unknown.status_code == 401 and unknown.json()["node_invalid"] is True
    bad = client.post("/api/osquery/log", content=b"[1, 2]", headers={"content-type": "application/json"})
    assert bad.status_code == 400 and "error" in bad.json()
    assert client.get("/api/osquery/log").status_code == 405  # not a POST: the full path answers

    def broken(*args: Any) -> dict[str, Any]:
        raise RuntimeError("database on fire")

    monkeypatch.setattr(agent_api, "host_log", broken)
    with database.session() as session:  # a saved query's lines update its report: the full path
        session.add(Query(name="saved", query="SELECT 1;", interval=60))
    saved = dict(line, name="pack/Global/saved")
    failed = client.post("/api/osquery/log", json={"node_key": key, "log_type": "result", "data": [saved]})
    assert failed.status_code == 500 and failed.json()["message"] == "Internal server error"


def test_forwarded_logs_need_no_sql_and_saved_queries_still_get_reports(
        client: TestClient, database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hostql.server.services import agent_api

    full_path = agent_api.host_log
    add_secret(database, "s")
    key = enroll(client, "s", "plainlog", real_host_details())

    def post(log_type: str, *lines: dict[str, Any]) -> None:
        reply = client.post("/api/osquery/log", json={"node_key": key, "log_type": log_type, "data": list(lines)})
        assert (reply.status_code, reply.json()) == (200, {}), reply.text

    event = {"hostIdentifier": "plainlog", "unixTime": 1, "action": "added", "columns": {"a": "1"}}
    post("result", dict(event, name="pack/Global/warmup"))  # caches the host and the lookup, prunes once

    def full_path_taken(*args: Any) -> dict[str, Any]:
        raise AssertionError("the full path (a worker thread and a transaction) was taken")

    monkeypatch.setattr(agent_api, "host_log", full_path_taken)
    with recorded_statements(database) as statements:
        post("status", {"hostIdentifier": "plainlog", "severity": 0, "message": "started"})
        post("result", dict(event, name="pack/osquery-monitoring/schedule"), dict(event, name="pack/Global/warmup"),
             dict(event, name="pack/team-99/other"))  # another team's query is never this host's
    assert statements == []
    monkeypatch.setattr(agent_api, "host_log", full_path)
    results = [json.loads(row) for row in (tmp_path / "logs" / "result.log").read_text().splitlines()]
    assert [row["name"] for row in results] == ["pack/Global/warmup", "pack/osquery-monitoring/schedule",
                                                "pack/Global/warmup", "pack/team-99/other"]
    status = (tmp_path / "logs" / "status.log").read_text().splitlines()
    assert [json.loads(row)["message"] for row in status] == ["started"]
    with database.session() as session:  # a query saved now is seen at once: its lines update its report
        query = Query(name="warmup", query="SELECT 1;", interval=60)
        session.add(query)
        session.flush()
        query_id = query.id
    post("result", dict(event, name="pack/Global/warmup"))
    with database.session() as session:
        report = session.get(QueryReport, (query_id, session.scalars(select(Host.id)).one()))
        assert report is not None and json.loads(report.rows) == [{"a": "1"}]


def test_a_cached_host_is_identified_without_a_worker_thread(client: TestClient, database: Database,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # Agent workers may all be waiting for SQLite's write lock; a live-query answer (or a config
    # fetch) from a host the node-key cache holds must not queue behind them just to be identified.
    from hostql.server import osquery_api
    from hostql.server.services import agent_api

    add_secret(database, "s")
    key = enroll(client, "s", "cached", real_host_details())
    assert _read(client, key)["queries"]  # the host is looked up (and cached)
    identified: list[str] = []
    real_authenticate = agent_api.authenticate

    def authenticate(state: ServerState, node_key: str) -> Host | None:
        identified.append(node_key)
        return real_authenticate(state, node_key)

    monkeypatch.setattr(osquery_api.agent_api, "authenticate", authenticate)
    reply = client.post("/api/osquery/distributed/write", json={"node_key": key, "queries": {}, "statuses": {}})
    assert reply.status_code == 200 and reply.json() == {}
    assert identified == []
    reply = client.post("/api/osquery/distributed/write", json={"node_key": "not-enrolled", "queries": {}})
    assert reply.json().get("node_invalid") is True and identified == ["not-enrolled"]


def test_a_quiet_host_dropped_from_the_cache_costs_one_lookup_not_a_full_read(
        client: TestClient, database: Database, state: ServerState, monkeypatch: pytest.MonkeyPatch) -> None:
    from hostql.server.services import agent_api, checkin, distributed

    monkeypatch.setattr(distributed, "SETS_TTL", 3600.0)  # a slow machine must not see the label sets expire
    add_secret(database, "s")
    key = enroll(client, "s", "evicted", real_host_details())
    queries = _read(client, key)["queries"]
    client.post("/api/osquery/distributed/write", json={"node_key": key, **answer_all(queries)})
    assert _read(client, key) == {"queries": {}, "discovery": {}}
    full_reads: list[int] = []
    real_full_read = agent_api.distributed_read

    def counted_full_read(state: ServerState, host: Host) -> dict[str, Any]:
        full_reads.append(host.id)
        return real_full_read(state, host)

    monkeypatch.setattr(agent_api, "distributed_read", counted_full_read)
    checkin.checkin_for(state).cache.clear()  # as when its TTL ends
    with recorded_statements(database) as statements:
        assert _read(client, key) == {"queries": {}, "discovery": {}}
    assert full_reads == [] and len(statements) == 1 and statements[0].lstrip().upper().startswith("SELECT")
    with recorded_statements(database) as statements:
        assert _read(client, key) == {"queries": {}, "discovery": {}}  # cached again
    assert statements == []
    assert client.post("/api/osquery/distributed/read", json={"node_key": "nope"}).json().get("node_invalid") is True


def test_config_and_writes_skip_the_framework_with_the_same_answers(client: TestClient, database: Database,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from hostql.server.limits import BodyLimitMiddleware

    add_secret(database, "s")
    key = enroll(client, "s", "quick-config", real_host_details())
    routed: list[str] = []
    real_call = BodyLimitMiddleware.__call__

    async def counted(self: BodyLimitMiddleware, scope: Any, receive: Any, send: Any) -> None:
        routed.append(scope["path"])
        await real_call(self, scope, receive, send)

    monkeypatch.setattr(BodyLimitMiddleware, "__call__", counted)
    config = client.post("/api/osquery/config", json={"node_key": key})
    assert config.status_code == 200 and "options" in config.json()
    write = client.post("/api/v1/osquery/distributed/write", json={"node_key": key, "queries": {}, "statuses": {}})
    assert write.status_code == 200 and write.json() == {}
    assert client.post("/api/osquery/config", json={"node_key": "nope"}).status_code == 401
    assert client.post("/api/osquery/config", content=b"[1,2]").json() == {"error": "request body is not a JSON object"}
    assert routed == []  # none of these went through the middleware and FastAPI's routing
    huge = b'{"node_key": "' + b"x" * (20 * 1024 * 1024) + b'"}'
    assert client.post("/api/osquery/distributed/write", content=huge).status_code == 413
    assert client.get("/api/osquery/config").status_code == 405
    assert routed == ["/api/osquery/distributed/write", "/api/osquery/config"]  # the full path answered those
