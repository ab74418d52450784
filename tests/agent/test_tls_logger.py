"""The tls logger against the real TLS test server: batching, dropping, buffering, exactly once."""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from tls_server import LOG, Agent, TLSTestServer, make_agent

from hostql.agent.logformat import status_line
from hostql.agent.remote.tls_logger import SINK, TLSLogger


@pytest.fixture
def server(tmp_path: Path) -> Iterator[TLSTestServer]:
    with TLSTestServer(tmp_path) as srv:
        yield srv


def result(n: int) -> str:
    return json.dumps({"name": "q", "hostIdentifier": "h", "columns": {"n": str(n)}, "action": "added"})


def status(n: int) -> str:
    return status_line("h", 1700000000, 0, "x.py", n, f"message {n}", "5.23.0")


def logger(agent: Agent) -> TLSLogger:
    return TLSLogger(agent.flags, agent.client, agent.store)


def sent(server: TLSTestServer, log_type: str) -> list[object]:
    out: list[object] = []
    for req in server.to(LOG):
        if req.body and req.body["log_type"] == log_type:
            out.extend(req.body["data"])
    return out


def test_results_and_statuses_go_in_separate_requests(server: TLSTestServer, tmp_path: Path) -> None:
    agent = make_agent(server, tmp_path)
    try:
        agent.store.enqueue([SINK], "result", [result(1), result(2)])
        agent.store.enqueue([SINK], "status", [status(1)])
        agent.store.enqueue([SINK], "snapshot", [json.dumps({"snapshot": [], "action": "snapshot"})])
        agent.store.enqueue(["filesystem"], "result", [result(99)])
        assert logger(agent).step()
        assert agent.store.pending_count(SINK) == 0
        assert agent.store.pending_count("filesystem") == 1
    finally:
        agent.close()
    reqs = server.to(LOG)
    assert [r.body["log_type"] for r in reqs] == ["result", "status"]
    assert list(reqs[0].body) == ["node_key", "log_type", "data"]
    assert reqs[0].body["node_key"] == "node-key-1"
    snapshot = {"snapshot": [], "action": "snapshot"}
    assert reqs[0].body["data"] == [json.loads(result(1)), json.loads(result(2)), snapshot]
    assert reqs[1].body["data"] == [json.loads(status(1))]
    assert "content-encoding" not in reqs[0].headers


def test_oversize_and_invalid_lines_are_dropped(server: TLSTestServer, tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    agent = make_agent(server, tmp_path, logger_tls_max_linesize=200)
    big = json.dumps({"name": "q", "columns": {"blob": "x" * 300}})
    try:
        agent.store.enqueue([SINK], "result", [result(1), big, "{not json", result(2)])
        with caplog.at_level(logging.WARNING):
            assert logger(agent).step()
        assert agent.store.pending_count(SINK) == 0
    finally:
        agent.close()
    assert sent(server, "result") == [json.loads(result(1)), json.loads(result(2))]
    assert "max_linesize" in caplog.text and "not JSON" in caplog.text


def test_lines_wait_while_the_server_is_down_and_go_exactly_once(server: TLSTestServer, tmp_path: Path) -> None:
    agent = make_agent(server, tmp_path, logger_tls_max_lines=3, logger_tls_period=2, logger_tls_backoff_max=20)
    try:
        log = logger(agent)
        agent.store.enqueue([SINK], "result", [result(0)])
        assert log.step()
        server.down()
        for n in range(1, 5):
            agent.store.enqueue([SINK], "result", [result(n)])
            agent.store.enqueue([SINK], "status", [status(n)])
            assert not log.step()
        assert log.failures == 4
        assert log.next_interval() == 20  # 2 * 4^2 = 32, capped
        assert agent.store.pending_count(SINK) == 8
        server.up()
        rounds = 0
        while agent.store.pending_count(SINK):
            assert log.step()
            rounds += 1
        assert rounds == 3  # 8 lines, 3 per upload
        assert log.next_interval() == 2
    finally:
        agent.close()
    got = [row["columns"]["n"] for row in sent(server, "result")]  # type: ignore[index]
    assert got == ["0", "1", "2", "3", "4"]
    assert [row["line"] for row in sent(server, "status")] == [1, 2, 3, 4]  # type: ignore[index]


def test_partial_failure_does_not_resend_what_was_accepted(server: TLSTestServer, tmp_path: Path) -> None:
    agent = make_agent(server, tmp_path)
    try:
        log = logger(agent)
        agent.store.enqueue([SINK], "status", [status(1)])
        agent.store.enqueue([SINK], "result", [result(1)])
        log.client.enrollment.node_key()
        server.state.fail_logs = 1  # the results request fails, the status request works
        assert not log.step()
        assert agent.store.pending(SINK) == [(2, "result", result(1))]
        assert log.step()
        assert agent.store.pending_count(SINK) == 0
    finally:
        agent.close()
    assert [r.body["log_type"] for r in server.to(LOG)] == ["result", "status", "result"]
    assert len(sent(server, "status")) == 1


def test_deliver_interface_skips_acknowledged_lines_on_retry(server: TLSTestServer, tmp_path: Path) -> None:
    agent = make_agent(server, tmp_path)
    try:
        log = TLSLogger(agent.flags, agent.client)
        batch = [(1, "result", result(1)), (2, "status", status(2))]
        log.client.enrollment.node_key()
        server.state.fail_logs = 1
        assert log.deliver(batch) is False
        assert log.deliver(batch) is True
        assert log.recover(batch) == []
    finally:
        agent.close()
    assert len(sent(server, "result")) == 2  # refused once, then accepted
    assert len(sent(server, "status")) == 1  # accepted the first time, never resent


def test_gzip_when_compress_is_on(server: TLSTestServer, tmp_path: Path) -> None:
    agent = make_agent(server, tmp_path, logger_tls_compress=True)
    try:
        agent.store.enqueue([SINK], "result", [result(7)])
        assert logger(agent).step()
    finally:
        agent.close()
    (req,) = server.to(LOG)
    assert req.headers["content-encoding"] == "gzip"
    assert json.loads(gzip.decompress(req.raw))["data"] == [json.loads(result(7))]


def test_node_invalid_at_log_reenrolls_once_and_keeps_lines(server: TLSTestServer, tmp_path: Path) -> None:
    agent = make_agent(server, tmp_path)
    try:
        log = logger(agent)
        agent.store.enqueue([SINK], "result", [result(1)])
        assert log.step()
        server.revoke_keys()
        agent.store.enqueue([SINK], "result", [result(2)])
        assert not log.step()  # refused: the key is dropped, the line kept
        assert agent.store.pending_count(SINK) == 1
        assert log.step()
        assert agent.store.pending_count(SINK) == 0
    finally:
        agent.close()
    assert server.enrollments() == 2
    assert [r.body["node_key"] for r in server.to(LOG)] == ["node-key-1", "node-key-1", "node-key-2"]
    # "2" was refused with the old key, then accepted once with the new one
    assert [row["columns"]["n"] for row in sent(server, "result")] == ["1", "2", "2"]  # type: ignore[index]


def test_buffered_log_max_purges_the_oldest(server: TLSTestServer, tmp_path: Path) -> None:
    agent = make_agent(server, tmp_path, buffered_log_max=4)
    try:
        agent.store.enqueue([SINK], "result", [result(n) for n in range(10)])
        assert logger(agent).step()
    finally:
        agent.close()
    assert [row["columns"]["n"] for row in sent(server, "result")] == ["6", "7", "8", "9"]  # type: ignore[index]


def test_status_lines_can_be_turned_off(server: TLSTestServer, tmp_path: Path) -> None:
    agent = make_agent(server, tmp_path, tls_disable_status_log=True)
    try:
        agent.store.enqueue([SINK], "status", [status(1)])
        agent.store.enqueue([SINK], "result", [result(1)])
        assert logger(agent).step()
        assert agent.store.pending_count(SINK) == 0
    finally:
        agent.close()
    assert [r.body["log_type"] for r in server.to(LOG)] == ["result"]


def test_server_closing_connections_loses_and_doubles_nothing(server: TLSTestServer, tmp_path: Path) -> None:
    server.close_after_response = True
    agent = make_agent(server, tmp_path, logger_tls_max_lines=2)
    try:
        log = logger(agent)
        agent.store.enqueue([SINK], "result", [result(n) for n in range(7)])
        while agent.store.pending_count(SINK):
            assert log.step()
    finally:
        agent.close()
    assert [row["columns"]["n"] for row in sent(server, "result")] == [str(n) for n in range(7)]  # type: ignore[index]
    assert server.connections_accepted >= 4


def test_backoff_schedule(server: TLSTestServer, tmp_path: Path) -> None:
    agent = make_agent(server, tmp_path, logger_tls_period=3, logger_tls_backoff_max=100)
    try:
        log = logger(agent)
        expected = {0: 3, 1: 3, 2: 12, 3: 27, 5: 75, 6: 100}
        for failures, interval in expected.items():
            log.failures = failures
            assert log.next_interval() == interval
        agent.flags.set("logger_tls_backoff_max", 0)
        assert log.next_interval() == 3
    finally:
        agent.close()
