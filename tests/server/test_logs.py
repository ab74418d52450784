"""/log: query reports, forwarding to destinations, status lines, the destination registry."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from osquery_agent_helpers import add_secret, configure, enroll, real_host_details
from sqlalchemy import select

from hostql.server import logdest
from hostql.server.logdest.filesystem import FilesystemDestination
from hostql.server.services.agent_config import parse_schedule_name
from hostql.server.services.logs import prune_reports
from hostql.server.state import ServerState
from hostql.server.storage.db import Database
from hostql.server.storage.models import AppConfig, Host, Query, QueryReport


@pytest.fixture(autouse=True)
def _settings(state: ServerState, tmp_path: Path) -> None:
    configure(state, tmp_path)


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _log(client: TestClient, key: str, log_type: str, data: list[dict[str, Any]]) -> None:
    reply = client.post("/api/osquery/log", json={"node_key": key, "log_type": log_type, "data": data})
    assert reply.status_code == 200 and reply.json() == {}, reply.text


def _snapshot(name: str, rows: list[dict[str, str]], unix: int = 1_700_000_000) -> dict[str, Any]:
    return {"name": name, "hostIdentifier": "h", "calendarTime": "x", "unixTime": unix, "epoch": 0, "counter": 0,
            "numerics": False, "decorations": {}, "action": "snapshot", "snapshot": rows}


def _query(database: Database, name: str, **kw: Any) -> int:
    with database.session() as session:
        query = Query(name=name, query="SELECT 1;", interval=60, **kw)
        session.add(query)
        session.flush()
        return query.id


def _report(database: Database, query_id: int) -> list[dict[str, Any]]:
    with database.session() as session:
        reports = session.scalars(select(QueryReport).where(QueryReport.query_id == query_id)
                                  .order_by(QueryReport.host_id))
        rows = [row for report in reports for row in json.loads(report.rows)]
        assert all(isinstance(row, dict) for row in rows)
        return rows


@pytest.fixture
def key(client: TestClient, database: Database) -> str:
    add_secret(database, "s")
    return enroll(client, "s", "logger", real_host_details())


def test_schedule_names_with_any_delimiter() -> None:
    assert parse_schedule_name("pack/Global/uptime") == (None, "uptime")
    assert parse_schedule_name("pack_Global_my_query") == (None, "my_query")
    assert parse_schedule_name("pack::team-12::a::b") == (12, "a::b")
    assert parse_schedule_name("pack/legacy-pack/q") is None
    assert parse_schedule_name("uptime") is None


def test_snapshot_report_is_stored_and_replaced(client: TestClient, database: Database, key: str,
                                                tmp_path: Path, state: ServerState) -> None:
    qid = _query(database, "uptime")
    state.extras["clock"] = lambda: datetime(2026, 5, 1, 10, 0, 0)
    _log(client, key, "result", [_snapshot("pack/Global/uptime", [{"s": "1"}, {"s": "2"}])])
    assert _report(database, qid) == [{"s": "1"}, {"s": "2"}]
    _log(client, key, "result", [_snapshot("pack::Global::uptime", [{"s": "3"}], unix=1_700_000_100)])
    assert _report(database, qid) == [{"s": "3"}]
    with database.session() as session:
        report = session.scalars(select(QueryReport)).one()
        assert report.last_fetched == datetime(2026, 5, 1, 10, 0, 0)  # the server's receive time
        assert report.row_count == 1 and report.generation == 2
    _log(client, key, "result", [_snapshot("pack/Global/uptime", [])])
    assert _report(database, qid) == []
    # no automations: nothing went to the result log
    assert _lines(tmp_path / "logs" / "result.log") == []


def test_reports_are_per_host_and_have_no_row_cap(client: TestClient, database: Database, key: str) -> None:
    qid = _query(database, "many")
    other = enroll(client, "s", "other-host")
    rows = [{"n": str(i)} for i in range(1500)]
    _log(client, key, "result", [_snapshot("pack/Global/many", rows)])
    _log(client, other, "result", [_snapshot("pack/Global/many", rows[:3])])
    assert len(_report(database, qid)) == 1503
    _log(client, other, "result", [_snapshot("pack/Global/many", [{"n": "x"}])])
    assert len(_report(database, qid)) == 1501


def test_team_query_report_only_for_hosts_of_that_team(client: TestClient, database: Database, key: str) -> None:
    team_id = add_secret(database, "team-secret", team_name="T")
    qid = _query(database, "tq", team_id=team_id)
    team_key = enroll(client, "team-secret", "team-host")
    _log(client, key, "result", [_snapshot(f"pack/team-{team_id}/tq", [{"a": "global host"}])])
    assert _report(database, qid) == []
    _log(client, team_key, "result", [_snapshot(f"pack/team-{team_id}/tq", [{"a": "team host"}])])
    assert _report(database, qid) == [{"a": "team host"}]


def test_differential_report_follows_added_and_removed(client: TestClient, database: Database, key: str) -> None:
    qid = _query(database, "procs", logging_type="differential")
    event = {"name": "pack/Global/procs", "hostIdentifier": "h", "unixTime": 1_700_000_000, "epoch": 1, "counter": 0}
    _log(client, key, "result", [{**event, "action": "added", "columns": {"pid": "1"}},
                                 {**event, "action": "added", "columns": {"pid": "2"}}])
    assert _report(database, qid) == [{"pid": "1"}, {"pid": "2"}]
    _log(client, key, "result", [{**event, "counter": 1, "action": "removed", "columns": {"pid": "1"}}])
    assert _report(database, qid) == [{"pid": "2"}]
    # batch format (logger_event_type=false)
    _log(client, key, "result", [{**event, "counter": 2,
                                  "diffResults": {"added": [{"pid": "3"}], "removed": [{"pid": "2"}]}}])
    assert _report(database, qid) == [{"pid": "3"}]


def test_discard_data_and_automations(client: TestClient, database: Database, key: str, tmp_path: Path) -> None:
    kept = _query(database, "kept", automations_enabled=True)
    dropped = _query(database, "dropped", discard_data=True, automations_enabled=True)
    lines = [_snapshot("pack/Global/kept", [{"k": "1"}]), _snapshot("pack/Global/dropped", [{"d": "1"}]),
             _snapshot("pack/legacy/other", [{"o": "1"}])]
    _log(client, key, "result", lines)
    assert _report(database, kept) == [{"k": "1"}]
    assert _report(database, dropped) == []
    forwarded = _lines(tmp_path / "logs" / "result.log")
    assert [line["name"] for line in forwarded] == ["pack/Global/kept", "pack/Global/dropped", "pack/legacy/other"]


def test_reports_disabled_sends_everything_to_the_log(client: TestClient, database: Database, key: str,
                                                      tmp_path: Path) -> None:
    qid = _query(database, "q")
    with database.session() as session:
        session.add(AppConfig(json_value={"server_settings": {"query_reports_disabled": True}}))
    _log(client, key, "result", [_snapshot("pack/Global/q", [{"a": "1"}])])
    assert _report(database, qid) == []
    assert [line["name"] for line in _lines(tmp_path / "logs" / "result.log")] == ["pack/Global/q"]


def test_status_lines_reach_the_status_file(client: TestClient, key: str, tmp_path: Path) -> None:
    status = [{"hostIdentifier": "h", "calendarTime": "x", "unixTime": "1700000000", "severity": "1",
               "filename": "config.cpp", "line": "42", "message": "config warning", "version": "5.23.0",
               "decorations": {"host_uuid": "u"}}]
    _log(client, key, "status", status)
    assert _lines(tmp_path / "logs" / "status.log") == status
    assert _lines(tmp_path / "logs" / "result.log") == []


def test_bad_log_type_is_an_error(client: TestClient, key: str) -> None:
    reply = client.post("/api/osquery/log", json={"node_key": key, "log_type": "nope", "data": []})
    assert "error" in reply.json() and "node_invalid" not in reply.json()


class Memory:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []

    def write(self, kind: str, lines: list[dict[str, Any]]) -> None:
        self.lines.extend((kind, line) for line in lines)


def test_a_new_destination_plugs_in_by_name(client: TestClient, state: ServerState, tmp_path: Path,
                                            database: Database) -> None:
    memory = Memory()
    logdest.register("memory", lambda settings, kind: memory)
    try:
        configure(state, tmp_path, status_log_plugin=["memory", "filesystem"], result_log_plugin="memory,stdout")
        add_secret(database, "s")
        key = enroll(client, "s", "m")
        _log(client, key, "status", [{"message": "one"}])
        _log(client, key, "result", [_snapshot("pack/x/y", [{"a": "1"}])])
    finally:
        logdest.REGISTRY.pop("memory", None)
    assert [(kind, line.get("message", line.get("name"))) for kind, line in memory.lines] == [
        ("status", "one"), ("result", "pack/x/y")]
    assert _lines(tmp_path / "logs" / "status.log") == [{"message": "one"}]
    with pytest.raises(logdest.LogDestinationError):
        logdest.build(type("S", (), {"result_log_plugin": "kafka-not-yet"})(), "result")
    assert logdest.build(type("S", (), {"result_log_plugin": "none"})(), "result") == []


def test_live_query_results_can_go_to_the_result_log(client: TestClient, state: ServerState, tmp_path: Path,
                                                     database: Database) -> None:
    configure(state, tmp_path, live_query_results_to_log=True)
    add_secret(database, "s")
    key = enroll(client, "s", "live-log", real_host_details())
    reply = client.post("/api/osquery/distributed/write", json={
        "node_key": key, "queries": {"fleet_distributed_query_5": [{"a": "1"}]},
        "statuses": {"fleet_distributed_query_5": 0}})
    assert reply.json() == {}
    [line] = _lines(tmp_path / "logs" / "result.log")
    assert line["name"] == "fleet_distributed_query_5" and line["snapshot"] == [{"a": "1"}]
    assert line["hostIdentifier"] == "live-log"


def test_filesystem_rotation(tmp_path: Path) -> None:
    tmp_path = tmp_path / "rotation"
    destination = FilesystemDestination(tmp_path / "out.log", max_bytes=200, max_backups=2)
    for i in range(20):
        destination.write("result", [{"i": i, "pad": "x" * 40}])
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["out.log", "out.log.1", "out.log.2"]
    assert all(p.stat().st_size <= 200 for p in tmp_path.iterdir())
    newest = [json.loads(line)["i"] for line in (tmp_path / "out.log").read_text().splitlines()]
    assert newest[-1] == 19
    older = [json.loads(line)["i"] for line in (tmp_path / "out.log.1").read_text().splitlines()]
    assert max(older) < min(newest)


def test_retention_prunes_reports_not_refreshed(client: TestClient, database: Database, key: str,
                                         state: ServerState) -> None:
    qid = _query(database, "old")
    state.extras["clock"] = lambda: datetime(2020, 9, 13)
    _log(client, key, "result", [_snapshot("pack/Global/old", [{"a": "1"}])])
    assert _report(database, qid) == [{"a": "1"}]
    with database.session() as session:
        assert prune_reports(session, 0) == 0
        assert prune_reports(session, 30, now=datetime(2020, 9, 13) + timedelta(days=10)) == 0
        assert prune_reports(session, 30, now=datetime(2020, 9, 13) + timedelta(days=31)) == 1
    assert _report(database, qid) == []
    with database.session() as session:
        assert session.scalars(select(Host)).first() is not None


def test_filesystem_destination_writes_the_agents_lines(client: TestClient, key: str, tmp_path: Path) -> None:
    # osquery writes compact UTF-8 JSON; the result file gets each line exactly as sent.
    agent_lines = ['{"name":"pack/legacy/x","hostIdentifier":"h\u00e9","unixTime":1700000000,'
                   '"columns":{"z":"1","a":"\u65e5\u672c"},"action":"added","numerics":false,"f":1.5}',
                   '{"name":"pack/legacy/x","action":"removed","columns":{}}']
    body = '{"node_key":"' + key + '","log_type":"result","data":[' + ",".join(agent_lines) + "]}"
    reply = client.post("/api/osquery/log", content=body.encode(), headers={"content-type": "application/json"})
    assert reply.status_code == 200 and reply.json() == {}
    assert (tmp_path / "logs" / "result.log").read_text(encoding="utf-8").splitlines() == agent_lines


def test_filesystem_destination_makes_its_directory_again(tmp_path: Path) -> None:
    destination = FilesystemDestination(tmp_path / "d" / "r.log", max_bytes=0)
    destination.write("result", [{"a": 1}])
    (tmp_path / "d" / "r.log").unlink()
    (tmp_path / "d").rmdir()
    destination.write_encoded("result", [b'{"b":2}'])
    assert (tmp_path / "d" / "r.log").read_bytes() == b'{"b":2}\n'


def test_filesystem_destination_follows_a_file_moved_by_another_process(tmp_path: Path) -> None:
    # logrotate (without copytruncate) renames the file; the lines after that go to a new one.
    path = tmp_path / "r.log"
    destination = FilesystemDestination(path, max_bytes=10_000)
    destination.write_encoded("result", [b'{"a":1}', b'{"a":2}'])
    path.rename(tmp_path / "r.log.old")
    destination.write_encoded("result", [b'{"a":3}'])
    assert (tmp_path / "r.log.old").read_bytes() == b'{"a":1}\n{"a":2}\n'
    assert path.read_bytes() == b'{"a":3}\n'
    path.write_bytes(b"")  # truncated in place (copytruncate): appends start again at its end
    destination.write_encoded("result", [b'{"a":4}'])
    destination.close()
    destination.write_encoded("result", [b'{"a":5}'])  # a closed destination opens the file again
    assert path.read_bytes() == b'{"a":4}\n{"a":5}\n'
    destination.close()


def test_one_request_is_applied_as_its_lines_in_order(client: TestClient, database: Database, key: str) -> None:
    qid = _query(database, "batched", logging_type="differential")
    event = {"name": "pack/Global/batched", "hostIdentifier": "h", "unixTime": 1_700_000_000, "epoch": 1}
    _log(client, key, "result", [{**event, "action": "added", "columns": {"pid": "1"}},
                                 {**event, "action": "added", "columns": {"pid": "2"}}])
    # A removal matches the oldest equal row: stored rows first, then rows added earlier in the request.
    _log(client, key, "result", [{**event, "action": "added", "columns": {"pid": "1"}},
                                 {**event, "action": "removed", "columns": {"pid": "1"}},
                                 {**event, "action": "added", "columns": {"pid": "3"}},
                                 {**event, "action": "removed", "columns": {"pid": "3"}},
                                 {**event, "action": "removed", "columns": {"pid": "9"}}])
    assert _report(database, qid) == [{"pid": "2"}, {"pid": "1"}]
    # A snapshot in the middle replaces everything before it; later lines apply on top of it.
    _log(client, key, "result", [{**event, "action": "added", "columns": {"pid": "4"}},
                                 _snapshot("pack/Global/batched", [{"pid": "5"}, {"pid": "6"}]),
                                 {**event, "action": "removed", "columns": {"pid": "5"}},
                                 {**event, "action": "added", "columns": {"pid": "7"}}])
    assert _report(database, qid) == [{"pid": "6"}, {"pid": "7"}]
    # An empty snapshot leaves no rows.
    _log(client, key, "result", [_snapshot("pack/Global/batched", [])])
    assert _report(database, qid) == []


def test_each_removal_takes_one_equal_row(client: TestClient, database: Database, key: str) -> None:
    qid = _query(database, "dups", logging_type="differential")
    event = {"name": "pack/Global/dups", "hostIdentifier": "h", "unixTime": 1_700_000_000, "epoch": 1}
    nested = {"pid": "9", "tags": ["x", {"y": "1"}]}  # not what osquery sends, but must not break matching
    _log(client, key, "result", [{**event, "action": "added", "columns": row}
                                 for row in ({"pid": "1"}, {"pid": "1"}, {"pid": "2"}, nested)])
    _log(client, key, "result", [{**event, "action": "removed", "columns": {"pid": "1"}},
                                 {**event, "action": "removed", "columns": {"tags": ["x", {"y": "1"}], "pid": "9"}},
                                 {**event, "action": "removed", "columns": {"pid": "7"}},
                                 {**event, "action": "added", "columns": {"pid": "1"}},
                                 {**event, "action": "removed", "columns": {"pid": "1"}}])
    assert _report(database, qid) == [{"pid": "2"}, {"pid": "1"}]


def test_a_request_writes_each_report_with_one_statement(client: TestClient, database: Database, key: str) -> None:
    from sqlalchemy import event as sa_event

    qid = _query(database, "bulk")
    diff = _query(database, "diff", logging_type="differential")
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement.split()[0].upper())

    event = {"name": "pack/Global/diff", "hostIdentifier": "h", "unixTime": 1_700_000_000, "epoch": 1}
    lines = [_snapshot("pack/Global/bulk", [{"n": str(i)} for i in range(300)]) for _ in range(3)]
    lines += [{**event, "counter": i, "action": "added", "columns": {"n": str(i)}} for i in range(300)]
    _log(client, key, "result", lines[:1])  # the first request also prunes old rows (once an hour)
    sa_event.listen(database.engine, "before_cursor_execute", count)
    try:
        _log(client, key, "result", lines)  # the snapshot report exists, the differential one is new
        _log(client, key, "result", lines)  # both exist
    finally:
        sa_event.remove(database.engine, "before_cursor_execute", count)
    assert statements.count("INSERT") == 1 and statements.count("UPDATE") == 3, statements
    assert statements.count("DELETE") == 0
    assert _report(database, qid) == [{"n": str(i)} for i in range(300)]
    assert _report(database, diff) == [{"n": str(i)} for i in range(300)] * 2


def test_a_concurrent_change_to_a_report_runs_the_request_again(client: TestClient, database: Database,
                                                                 key: str, state: ServerState) -> None:
    """Two requests of one host read the same differential report; the second to write must not
    overwrite the first's rows (the generation check fails and the request is applied again)."""
    from hostql.server.services import agent_api, logs

    qid = _query(database, "race", logging_type="differential")
    event = {"name": "pack/Global/race", "hostIdentifier": "h", "unixTime": 1_700_000_000, "epoch": 1}
    _log(client, key, "result", [{**event, "action": "added", "columns": {"pid": "1"}}])
    host = agent_api.authenticate(state, key)
    assert host is not None
    real_load = logs.ResultProcessor._load
    interleaved: list[bool] = []

    def load_then_let_another_request_write(self: logs.ResultProcessor, query_id: int, report: Any) -> Any:
        rows = real_load(self, query_id, report)
        if not interleaved:  # only the first attempt: another request of the host commits in between
            interleaved.append(True)
            _log(client, key, "result", [{**event, "action": "added", "columns": {"pid": "2"}}])
        return rows

    logs.ResultProcessor._load = load_then_let_another_request_write  # type: ignore[method-assign]
    try:
        answer = agent_api.host_log(state, host, {"log_type": "result",
                                                  "data": [{**event, "action": "added", "columns": {"pid": "3"}}]})
    finally:
        logs.ResultProcessor._load = real_load  # type: ignore[method-assign]
    assert answer == {} and interleaved == [True]
    assert _report(database, qid) == [{"pid": "1"}, {"pid": "2"}, {"pid": "3"}]


def test_query_lookups_are_cached_but_see_changes(client: TestClient, database: Database, key: str) -> None:
    line = _snapshot("pack/Global/later", [{"x": "1"}])
    _log(client, key, "result", [line])  # no such query yet: remembered as "none"
    qid = _query(database, "later")  # created through the ORM: the cache forgets at once
    _log(client, key, "result", [line])
    assert _report(database, qid) == [{"x": "1"}]
    with database.session() as session:
        query = session.get(Query, qid)
        assert query is not None
        query.discard_data = True
    _log(client, key, "result", [_snapshot("pack/Global/later", [{"x": "2"}])])
    assert _report(database, qid) == [{"x": "1"}]


@pytest.mark.parametrize("logging_type", ["snapshot", "differential"])
def test_a_report_for_a_host_deleted_behind_the_cache_answers_node_invalid(
        client: TestClient, database: Database, key: str, logging_type: str) -> None:
    from sqlalchemy import text

    qid = _query(database, "gone", logging_type=logging_type)
    event = {"name": "pack/Global/gone", "hostIdentifier": "h", "unixTime": 1_700_000_000, "epoch": 1}
    line = (_snapshot("pack/Global/gone", [{"a": "1"}]) if logging_type == "snapshot"
            else {**event, "action": "added", "columns": {"a": "1"}})
    _log(client, key, "result", [line])
    with database.engine.begin() as connection:  # not through the ORM: the node-key cache still holds it
        connection.execute(text("DELETE FROM hosts"))
    reply = client.post("/api/osquery/log", json={"node_key": key, "log_type": "result", "data": [line]})
    assert reply.status_code == 401 and reply.json().get("node_invalid") is True
    assert _report(database, qid) == []


def test_forwarded_only_is_decided_from_the_cache_alone() -> None:
    from hostql.server.services.logs import LookupCache, forwarded_only

    lookups = LookupCache()
    assert forwarded_only(lookups, None, [{"name": "pack/osquery-monitoring/schedule"}, {"name": "pack/team-4/q"}])
    assert not forwarded_only(lookups, None, [{"name": "pack/Global/q"}])  # not looked up yet
    assert not forwarded_only(lookups, None, [{"name": ["not", "a", "name"]}])  # the full path copes
    assert forwarded_only(lookups, 4, [{"name": "pack/team-5/q"}])  # another team's query
    assert not forwarded_only(lookups, 4, [{"name": "pack/team-4/q"}])
