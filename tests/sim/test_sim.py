"""``hostql sim`` against a real ``hostql server --dev`` process (a few hosts, a few seconds).

The server runs on a free loopback port in a temporary data dir and is
stopped by its pid when the module's tests end.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from _server_proc import ServerProc  # noqa: E402
from bench_server import live_query  # noqa: E402
from hostql.sim.agent import SimOptions, schedule_names  # noqa: E402
from hostql.sim.main import Simulation  # noqa: E402
from hostql.sim.stats import percentile  # noqa: E402
from hostql.sim.template import Identity  # noqa: E402

HOSTS = 5
SEED = 42


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProc]:
    proc = ServerProc.start([sys.executable, "-m", "hostql", "server"])
    try:
        yield proc
    finally:
        proc.stop()


def api_hosts(server: ServerProc) -> list[dict[str, Any]]:
    with httpx.Client(base_url=server.url, verify=server.ssl_context(), timeout=30.0) as api:
        login = api.post("/api/v1/fleet/login", json={"email": server.admin_email, "password": server.admin_password})
        assert login.status_code == 200, login.text
        reply = api.get("/api/v1/fleet/hosts", headers={"Authorization": f"Bearer {login.json()['token']}"})
        assert reply.status_code == 200, reply.text
        hosts: list[dict[str, Any]] = reply.json()["hosts"]
        return hosts


def _enrolled(server: ServerProc, prefix: str) -> int:
    return sum(1 for host in api_hosts(server) if str(host.get("hostname", "")).startswith(prefix))


async def run_with_live_query(server: ServerProc) -> tuple[dict[str, Any], dict[str, Any]]:
    options = SimOptions(server=server.url, enroll_secret=server.enroll_secret, ca=server.ca, hosts=HOSTS,
                         start_period=1.0, config_interval=2.0, query_interval=1.0, log_interval=1.0, log_rows=3,
                         seed=SEED, connections=8, software_rows=10)
    async with Simulation(options) as sim:
        await sim.start()
        assert await sim.wait_enrolled(20.0), f"only {sim.enrolled_count()} of {HOSTS} hosts enrolled"
        await asyncio.sleep(3.0)  # detail queries answered, a few log intervals passed
        live = await live_query(server, (f"sim-{SEED}-",), timeout=20.0)
        await asyncio.sleep(1.0)
        await sim.stop()
        return sim.report(), live


def test_simulated_hosts_enroll_fill_vitals_log_and_answer_a_live_query(server: ServerProc) -> None:
    report, live = asyncio.run(run_with_live_query(server))

    assert report["errors"] == 0, report["error_examples"]
    assert report["enrolled"] == HOSTS
    endpoints = report["endpoints"]
    for name in ("enroll", "config", "log", "distributed_read", "distributed_write"):
        assert endpoints[name]["requests"] > 0, name
    assert endpoints["distributed_read"]["p99_ms"] > 0
    assert report["log_rows_sent"] >= HOSTS * 3

    # the live query reached every simulated host, within the distributed interval + 2 s (plus slack)
    assert live["targeted"] == HOSTS and live["answered"] == HOSTS, live
    assert live["seconds_to_all"] is not None and live["seconds_to_all"] <= 10.0, live
    assert report["live_queries_answered"] >= HOSTS

    # every host is in the API's host list, with vitals from its detail-query answers
    idents = {Identity.make(i, SEED).hostname: Identity.make(i, SEED) for i in range(HOSTS)}
    listed = {h["hostname"]: h for h in api_hosts(server) if h["hostname"] in idents}
    assert set(listed) == set(idents)
    for hostname, host in listed.items():
        ident = idents[hostname]
        assert host["uuid"] == ident.uuid
        assert host["hardware_serial"] == ident.serial
        assert host["os_version"], host
        assert host["platform"], host
        assert host["osquery_version"], host
        assert int(host["memory"]) > 0, host

    # result logs reached the server's result log destination
    result_log = server.data_dir / "osquery_result.log"
    lines = [json.loads(line) for line in result_log.read_text(encoding="utf-8").splitlines() if line.strip()]
    logged = {line.get("decorations", {}).get("hostname") for line in lines}
    assert set(idents) <= logged


def test_cli_runs_and_writes_a_json_report(server: ServerProc, tmp_path: Path) -> None:
    report_file = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "hostql", "sim", "--server", server.url, "--ca", server.ca,
         "--enroll-secret", server.enroll_secret, "--hosts", "3", "--start-period", "1", "--query-interval", "1",
         "--log-interval", "1", "--config-interval", "2", "--duration", "5", "--seed", "7",
         "--json-report", str(report_file)],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "distributed_read" in done.stdout and "0 errors" in done.stdout
    report = json.loads(report_file.read_text(encoding="utf-8"))
    assert report["hosts"] == 3 and report["enrolled"] == 3 and report["errors"] == 0
    assert report["endpoints"]["distributed_read"]["requests"] >= 3


def test_cli_counts_errors_against_a_wrong_secret(server: ServerProc) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "hostql", "sim", "--server", server.url, "--ca", server.ca,
         "--enroll-secret", "not-the-secret", "--hosts", "2", "--start-period", "0", "--duration", "2"],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "enroll" in done.stdout and "node_invalid" in done.stdout


def test_schedule_names_and_percentile() -> None:
    config = {"options": {"pack_delimiter": "_"}, "schedule": {"top": {"query": "select 1", "snapshot": True}},
              "packs": {"Global": {"queries": {"procs": {"query": "select 1", "interval": 60}}}}}
    assert schedule_names(config) == [("top", True), ("pack_Global_procs", False)]
    assert percentile([], 0.99) == 0.0
    values = [float(i) for i in range(1, 101)]
    assert percentile(values, 0.99) == 99.0 and percentile(values, 0.5) == 50.0
    assert Identity.make(3, 1) == Identity.make(3, 1) and Identity.make(3, 1).uuid != Identity.make(4, 1).uuid


def test_cli_ends_early_on_sigterm_and_still_reports(server: ServerProc, tmp_path: Path) -> None:
    report_file = tmp_path / "report.json"
    # Popen as a context manager closes its pipes even when an assertion fails inside.
    with subprocess.Popen(
            [sys.executable, "-m", "hostql", "sim", "--server", server.url, "--ca", server.ca,
             "--enroll-secret", server.enroll_secret, "--hosts", "2", "--start-period", "0", "--query-interval", "1",
             "--duration", "600", "--seed", "8", "--json-report", str(report_file)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and _enrolled(server, "sim-8-") < 2:
                time.sleep(0.2)
            process.send_signal(signal.SIGTERM)
            out, err = process.communicate(timeout=60)  # far less than the 600 s asked for
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert process.returncode == 0, out + err
    report = json.loads(report_file.read_text(encoding="utf-8"))
    assert report["enrolled"] == 2 and report["errors"] == 0 and report["elapsed_s"] < 600


def test_one_agent_giving_up_does_not_end_the_run_but_a_stop_does() -> None:
    async def run() -> tuple[bool, bool]:
        sim = Simulation.__new__(Simulation)  # only its task list matters to wait()
        gave_up = asyncio.create_task(asyncio.sleep(0))
        working = asyncio.create_task(asyncio.sleep(3600))
        lag_watch = asyncio.create_task(asyncio.sleep(3600))
        sim._tasks = [gave_up, working, lag_watch]
        try:
            ran_out = asyncio.create_task(sim.wait(0.3))
            await asyncio.sleep(0.1)
            still_running = not ran_out.done()  # one agent ended at once; the run goes on
            await ran_out
            stop = asyncio.Event()
            stopping = asyncio.create_task(sim.wait(3600, stop))
            stop.set()
            await asyncio.wait_for(stopping, 30)  # returns at once, not after an hour
            return still_running, not working.done()
        finally:
            working.cancel()
            lag_watch.cancel()

    still_running, agent_untouched = asyncio.run(run())
    assert still_running and agent_untouched
