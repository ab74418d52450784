"""The real ``hostql agent`` against the HTTPS test server (tests/agent/tls_server.py)."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tls_server import CONFIG, ENROLL, LOG, READ, SECRET, WRITE, TLSTestServer

from hostql import OSQUERY_VERSION


@pytest.fixture
def server(tmp_path: Path) -> Iterator[TLSTestServer]:
    with TLSTestServer(tmp_path) as srv:
        yield srv


def serve_schedule(server: TLSTestServer, watch: Path) -> None:
    sql = f"SELECT path FROM file WHERE directory = '{watch}'"
    server.state.config = {"schedule": {"files": {"query": sql, "interval": 1}}, "options": {}}


def tls_args(server: TLSTestServer, tmp_path: Path, *extra: str, watchdog: bool = False) -> list[str]:
    secret = tmp_path / "secret.txt"
    secret.write_text(f"{SECRET}\n")
    args = [
        "--config_plugin=tls",
        "--logger_plugin=tls,filesystem",
        f"--tls_hostname=127.0.0.1:{server.port}",
        f"--tls_server_certs={server.ca_path}",
        f"--enroll_secret_path={secret}",
        f"--enroll_tls_endpoint={ENROLL}",
        f"--config_tls_endpoint={CONFIG}",
        f"--logger_tls_endpoint={LOG}",
        "--logger_tls_period=1",
        "--disable_distributed=false",
        "--distributed_interval=1",
        f"--distributed_tls_read_endpoint={READ}",
        f"--distributed_tls_write_endpoint={WRITE}",
        f"--logger_path={tmp_path / 'logs'}",
        f"--database_path={tmp_path / 'state.db'}",
        *extra,
    ]
    if not watchdog:
        args.append("--disable_watchdog")
    return args


def tls_data(server: TLSTestServer, log_type: str) -> list[dict[str, Any]]:
    """Every line the server received with ``log_type``, in arrival order."""
    out: list[dict[str, Any]] = []
    for request in server.to(LOG):
        if request.body.get("log_type") == log_type:
            out.extend(request.body["data"])
    return out


def file_results(agents: Any, tmp_path: Path) -> list[dict[str, Any]]:
    return list(agents.log_file(tmp_path / "logs" / "osqueryd.results.log").objects())


def assert_same_results(server: TLSTestServer, agents: Any, tmp_path: Path) -> list[dict[str, Any]]:
    """Both sinks got the same result lines, once each, in the same order."""
    sent = tls_data(server, "result")
    written = file_results(agents, tmp_path)
    dumped = [json.dumps(o, sort_keys=True) for o in sent]
    assert len(dumped) == len(set(dumped)), "a result line reached the server twice"
    assert sent == written
    return written


def changed_paths(objects: list[dict[str, Any]]) -> set[str]:
    return {o["columns"]["path"] for o in objects if o.get("name") == "files"}


def test_enroll_config_logs_and_distributed(agents: Any, server: TLSTestServer, tmp_path: Path,
                                            watch_dir: Path) -> None:
    serve_schedule(server, watch_dir)
    (watch_dir / "first").write_text("")
    server.state.reads.append({"queries": {"q1": "SELECT 'z' AS zed, 1 AS alpha, 2.5 AS mid, NULL AS empty"}})
    agent = agents.start(*tls_args(server, tmp_path))
    agents.wait_for(lambda: str(watch_dir / "first") in changed_paths(tls_data(server, "result")), 15,
                    what="the first result line at the server")
    (watch_dir / "second").write_text("")
    agents.wait_for(lambda: str(watch_dir / "second") in changed_paths(tls_data(server, "result")), 10,
                    what="the second result line at the server")
    agents.wait_for(lambda: server.to(WRITE), 10, what="the distributed write")
    agents.wait_for(lambda: tls_data(server, "status"), 10, what="status lines")
    assert agent.alive()
    assert agent.stop() == 0

    (enroll,) = server.to(ENROLL)
    assert list(enroll.body) == ["enroll_secret", "host_identifier", "platform_type", "host_details"]
    assert enroll.body["enroll_secret"] == SECRET
    assert enroll.body["platform_type"] == "9"
    assert isinstance(enroll.body["host_identifier"], str) and enroll.body["host_identifier"]
    details = enroll.body["host_details"]
    assert {"os_version", "osquery_info", "system_info"} <= set(details) <= {
        "os_version", "osquery_info", "platform_info", "system_info"}
    assert details["osquery_info"]["version"] == OSQUERY_VERSION
    assert all(isinstance(v, str) for row in details.values() for v in row.values())
    assert enroll.headers["user-agent"] == f"osquery/{OSQUERY_VERSION}"
    assert enroll.headers["content-type"] == "application/json"
    assert "authorization" not in enroll.headers

    key = "node-key-1"
    others = [r for r in server.requests if r.path != ENROLL]
    assert {r.path for r in others} == {CONFIG, LOG, READ, WRITE}
    for request in others:
        assert request.headers["authorization"] == f"NodeKey {key}", request.path
        assert request.headers["user-agent"] == f"osquery/{OSQUERY_VERSION}"
        assert request.node_key == key
    assert all(r.body == {"node_key": key} for r in server.to(CONFIG))

    for request in server.to(LOG):
        assert list(request.body) == ["node_key", "log_type", "data"]
        assert request.body["log_type"] in ("result", "status")
    statuses = tls_data(server, "status")
    assert any("Config loaded" in s["message"] for s in statuses)
    assert all(list(s)[:8] == ["hostIdentifier", "calendarTime", "unixTime", "severity", "filename", "line",
                               "message", "version"] for s in statuses)
    written = assert_same_results(server, agents, tmp_path)
    assert [(o["counter"], o["action"], o["columns"]["path"]) for o in written] == [
        (0, "added", str(watch_dir / "first")),
        (1, "added", str(watch_dir / "second")),
    ]

    (write,) = server.to(WRITE)
    assert write.body["statuses"] == {"q1": 0}
    assert write.body["messages"] == {"q1": ""}
    (row,) = write.body["queries"]["q1"]
    assert list(row.items()) == [("zed", "z"), ("alpha", "1"), ("mid", "2.5"), ("empty", "")]
    assert list(write.body)[-1] == "node_key"


def test_node_invalid_once_reenrolls_once(agents: Any, server: TLSTestServer, tmp_path: Path,
                                          watch_dir: Path) -> None:
    serve_schedule(server, watch_dir)
    agent = agents.start(*tls_args(server, tmp_path, "--config_refresh=1"))
    agents.wait_for(lambda: len(server.to(CONFIG)) >= 2, 15, what="config refreshes")
    assert server.enrollments() == 1
    with server.lock:
        server.invalid_once.add(CONFIG)
    agents.wait_for(lambda: server.enrollments() == 2, 10, what="the re-enrollment")
    (watch_dir / "later").write_text("")
    agents.wait_for(lambda: str(watch_dir / "later") in changed_paths(tls_data(server, "result")), 10,
                    what="a result after re-enrolling")
    configs_before = len(server.to(CONFIG))
    time.sleep(2.5)
    assert agent.alive()
    assert agent.stop() == 0
    assert server.enrollments() == 2
    assert len(server.to(CONFIG)) > configs_before  # it carries on refreshing
    requests = list(server.requests)
    second = max(i for i, r in enumerate(requests) if r.path == ENROLL)
    later = requests[second + 1 :]
    assert len(later) >= 3 and all(r.node_key == "node-key-2" for r in later[-3:])
    assert_same_results(server, agents, tmp_path)


def test_server_down_for_a_while_loses_and_doubles_nothing(agents: Any, server: TLSTestServer, tmp_path: Path,
                                                           watch_dir: Path) -> None:
    serve_schedule(server, watch_dir)
    agent = agents.start(*tls_args(server, tmp_path, "--logger_tls_backoff_max=2"))
    (watch_dir / "up1").write_text("")
    agents.wait_for(lambda: str(watch_dir / "up1") in changed_paths(tls_data(server, "result")), 15,
                    what="a result before the outage")
    server.down()
    for name in ("down1", "down2", "down3"):
        (watch_dir / name).write_text("")
        time.sleep(1.6)
    wanted = {str(watch_dir / n) for n in ("up1", "down1", "down2", "down3")}
    agents.wait_for(lambda: changed_paths(file_results(agents, tmp_path)) >= wanted, 5,
                    what="the filesystem logger during the outage")
    server.up()
    (watch_dir / "up2").write_text("")
    wanted.add(str(watch_dir / "up2"))
    agents.wait_for(lambda: changed_paths(tls_data(server, "result")) >= wanted, 15,
                    what="every result line after the outage")
    time.sleep(1.5)
    assert agent.alive()
    assert agent.stop() == 0
    written = assert_same_results(server, agents, tmp_path)
    assert changed_paths(written) == wanted


def test_server_closing_every_connection_with_watchdog(agents: Any, server: TLSTestServer, tmp_path: Path,
                                                       watch_dir: Path) -> None:
    server.close_after_response = True
    serve_schedule(server, watch_dir)
    server.state.reads.append({"queries": {"q": "SELECT 'v' AS value"}})
    agent = agents.start(*tls_args(server, tmp_path, watchdog=True))
    agent.wait_worker()
    for name in ("a", "b"):
        (watch_dir / name).write_text("")
        agents.wait_for(lambda n=name: str(watch_dir / n) in changed_paths(tls_data(server, "result")), 15,
                        what=f"result line for {name}")
    agents.wait_for(lambda: server.to(WRITE), 10, what="the distributed write")
    assert agent.stop() == 0
    assert server.enrollments() == 1
    assert server.to(WRITE)[0].body["queries"] == {"q": [{"value": "v"}]}
    assert server.connections_accepted >= len(server.requests) - 1
    assert_same_results(server, agents, tmp_path)


def warnings_text(tmp_path: Path) -> str:
    path = tmp_path / "logs" / "osqueryd.WARNING"
    return path.read_text() if path.exists() else ""


def test_server_unreachable_at_start_then_up(agents: Any, server: TLSTestServer, tmp_path: Path,
                                             watch_dir: Path) -> None:
    serve_schedule(server, watch_dir)
    (watch_dir / "early").write_text("")
    server.down()
    agent = agents.start(*tls_args(server, tmp_path))
    agents.wait_for(lambda: "enrollment request to /api/v1/osquery/enroll failed" in warnings_text(tmp_path), 15,
                    what="a failed enrollment attempt")
    server.up()
    agents.wait_for(lambda: str(watch_dir / "early") in changed_paths(tls_data(server, "result")), 15,
                    what="results once the server is back")
    assert agent.stop() == 0
    assert server.enrollments() == 1
    assert_same_results(server, agents, tmp_path)


def test_sigterm_during_enrollment_retries_stops_promptly(agents: Any, server: TLSTestServer,
                                                          tmp_path: Path) -> None:
    server.down()
    agent = agents.start(*tls_args(server, tmp_path))  # no watchdog to kill a stuck worker
    agents.wait_for(lambda: "retrying in 4 s" in warnings_text(tmp_path), 15, what="the second enrollment wait")
    started = time.monotonic()
    assert agent.stop(timeout=10) == 0
    assert time.monotonic() - started < 5
    assert "Config load failed" not in warnings_text(tmp_path)


def test_worker_killed_keeps_its_node_key_and_its_lines(agents: Any, server: TLSTestServer, tmp_path: Path,
                                                        watch_dir: Path) -> None:
    serve_schedule(server, watch_dir)
    agent = agents.start(*tls_args(server, tmp_path, watchdog=True))
    worker = agent.wait_worker()
    (watch_dir / "before").write_text("")
    agents.wait_for(lambda: str(watch_dir / "before") in changed_paths(tls_data(server, "result")), 15,
                    what="a result before the kill")
    time.sleep(max(0.0, 4.6 - (time.monotonic() - agent.started)))  # a worker younger than 4 s respawns late
    (watch_dir / "around").write_text("")
    os.kill(worker, signal.SIGKILL)
    agent.wait_worker(timeout=10, not_pid=worker)
    (watch_dir / "after").write_text("")
    wanted = {str(watch_dir / n) for n in ("before", "around", "after")}
    agents.wait_for(lambda: changed_paths(tls_data(server, "result")) >= wanted, 15, what="every result line")
    assert agent.stop() == 0
    assert server.enrollments() == 1  # the respawned worker reused the stored node key
    written = assert_same_results(server, agents, tmp_path)
    assert changed_paths(written) == wanted


def test_config_refresh_against_a_down_server_does_not_stall_the_schedule(
    agents: Any, server: TLSTestServer, tmp_path: Path, watch_dir: Path
) -> None:
    server.state.config = {"schedule": {"tick": {"query": "SELECT 1 AS one", "interval": 1, "snapshot": True}}}
    agent = agents.start(*tls_args(server, tmp_path, "--config_refresh=1", "--config_accelerated_refresh=1"))
    snapshots = agents.log_file(tmp_path / "logs" / "osqueryd.snapshots.log")
    agents.wait_for(lambda: len(snapshots.lines()) >= 2, 15, what="snapshot lines")
    server.down()
    down_at = time.time()
    time.sleep(5)
    up_at = time.time()
    server.up()
    # The config served now has a second query: the refresh picks it up.
    server.state.config = {"schedule": {
        "tick": {"query": "SELECT 1 AS one", "interval": 1, "snapshot": True},
        "tock": {"query": "SELECT 2 AS two", "interval": 1, "snapshot": True},
    }}
    agents.wait_for(lambda: any(o["name"] == "tock" for o in snapshots.objects()), 15, what="the refreshed config")
    assert agent.stop() == 0
    ticks = sorted(o["unixTime"] for o in snapshots.objects() if o["name"] == "tick")
    during = [t for t in ticks if down_at <= t <= up_at - 1]
    # Retried config fetches (1 + 4 s of waits) must not hold up the scheduled queries.
    assert len(during) >= 3, (down_at, up_at, ticks)
    assert len(ticks) == len(set(ticks))
