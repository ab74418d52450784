"""Load-test a real ``hostql server`` process with ``hostql sim``; measure on the server side.

    .venv/bin/python bench/bench_server.py            # SQLite and PostgreSQL, 10,000 hosts (<= ~10 min)
    HOSTQL_BENCH_HOSTS=1000 HOSTQL_BENCH_STEADY=30 HOSTQL_BENCH_DBS=sqlite .venv/bin/python bench/bench_server.py

For each database the bench starts ``hostql server --dev`` on a free loopback
port (SQLite in a temporary data dir; PostgreSQL: a throwaway cluster started
from the installed binaries, see tests/server/dbservers.py), runs the
simulator in this process, and reads the server process's CPU time from
``/proc/<pid>/stat`` before and after each measured window, so the
simulator's own CPU does not count.  Phases:

(a) distributed reads with nothing pending, hammered back to back by
    enrolled hosts: reads per server-CPU-second and p99 latency;
(d) result log ingestion: rows per server-CPU-second;
(b) HOSTS hosts at Fleet's default intervals (config 60 s, distributed and
    logs 10 s) for a bounded time, simulated by HOSTQL_BENCH_SIM_PROCS
    ``hostql sim`` processes (one per 2,500 hosts by default): errors must be zero;
(c) during (b), a live query to all of them through the REST API and the
    results WebSocket: time until every host answered, goal interval + 2 s.

Each figure is printed with its goal and against Fleet's published figure
(fleet-reference §6.2).  Environment knobs (defaults in brackets):
HOSTQL_BENCH_DBS [sqlite,postgresql], HOSTQL_BENCH_HOSTS [10000],
HOSTQL_BENCH_RAMP [60] s, HOSTQL_BENCH_SETTLE [300] s (at most, for every host's first
vitals and labels before the steady window opens), HOSTQL_BENCH_STEADY [90] s, HOSTQL_BENCH_READ_HOSTS [200],
HOSTQL_BENCH_LOG_HOSTS [100], HOSTQL_BENCH_LOG_ROWS [100], HOSTQL_BENCH_WINDOW [15] s,
HOSTQL_BENCH_SOFTWARE_ROWS [25], HOSTQL_BENCH_CONNECTIONS [64], HOSTQL_BENCH_SIM_PROCS [hosts/2500],
HOSTQL_BENCH_JSON (write the figures there), HOSTQL_BENCH_SERVER_CMD (a command
prefix replacing ``python -m hostql server``, e.g. to try a patched build).
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server_proc import (
    DB_ENGINES,
    ServerProc,
    cpu_seconds,
    db_cpu_seconds,
    start_postgres_cluster,
    stop_db,
)
from hostql.sim.agent import SimOptions
from hostql.sim.main import Simulation
from hostql.sim.stats import percentile

FLEET_READS_PER_VCPU = (600.0, 750.0)
FLEET_HOSTS_PER_VCPU = 2500 / 0.5  # Load-testing.md: 2,500 hosts on one 512-CPU-unit Fargate task
GOAL_READS = 5000.0
GOAL_P99_MS = 20.0
GOAL_LOG_ROWS = 100_000.0
QUERY_INTERVAL = 10.0


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def sim_options(server: ServerProc, seed: int, **overrides: Any) -> SimOptions:
    options = SimOptions(server=server.url, enroll_secret=server.enroll_secret, ca=server.ca, seed=seed,
                         connections=env_int("HOSTQL_BENCH_CONNECTIONS", 64),
                         software_rows=env_int("HOSTQL_BENCH_SOFTWARE_ROWS", 25))
    for key, value in overrides.items():
        setattr(options, key, value)
    return options


class Window:
    """Server (and database) CPU, and the in-process simulator's counters if any, between ``open`` and ``close``."""

    def __init__(self, server: ServerProc, sim: Simulation | None) -> None:
        self.server, self.sim = server, sim
        self.cpu0 = cpu_seconds(server.pid)
        self.db0 = db_cpu_seconds(server.db_pid)
        self.wall0 = time.monotonic()
        self.counters0 = sim.stats.counters() if sim is not None else {}
        self.samples0 = {name: len(s.samples) for name, s in sim.stats.endpoints.items()} if sim is not None else {}

    def close(self) -> dict[str, Any]:
        cpu = cpu_seconds(self.server.pid) - self.cpu0
        db = db_cpu_seconds(self.server.db_pid) - self.db0
        wall = time.monotonic() - self.wall0
        result: dict[str, Any] = {"server_cpu_s": round(cpu, 2), "db_cpu_s": round(db, 2), "wall_s": round(wall, 2),
                                  "server_cpu_share": round(cpu / wall, 3) if wall else 0.0}
        if self.sim is not None:
            now = self.sim.stats.counters()
            result["delta"] = {key: now[key] - self.counters0.get(key, 0) for key in now}
            p99 = {}
            for name, stats in self.sim.stats.endpoints.items():
                window = sorted(stats.samples[self.samples0.get(name, 0):])
                p99[name] = round(percentile(window, 0.99) * 1000, 2)
            result["p99_ms"] = p99
        return result


async def phase_reads(server: ServerProc) -> dict[str, Any]:
    """(a) Enrolled hosts read back to back; only empty reads count."""
    hosts = env_int("HOSTQL_BENCH_READ_HOSTS", 200)
    options = sim_options(server, seed=101, hosts=hosts, start_period=5.0, query_interval=0.0,
                          config_interval=0.0, log_interval=0.0, duration=0.0)
    async with Simulation(options) as sim:
        await sim.start()
        await sim.wait_enrolled(60.0)
        quiet = await sim.wait_quiet(90.0)  # detail queries answered; from now on reads come back empty
        window = Window(server, sim)
        await asyncio.sleep(env_float("HOSTQL_BENCH_WINDOW", 15.0))
        result = window.close()
        await sim.stop()
        report = sim.report()
    reads = result["delta"]["empty_reads"]
    cpu = result["server_cpu_s"]
    result.update(hosts=hosts, quiet_before_window=quiet, errors=report["errors"], empty_reads=reads,
                  reads_per_cpu_s=round(reads / cpu, 1) if cpu else 0.0,
                  reads_per_wall_s=round(reads / result["wall_s"], 1), p99_read_ms=result["p99_ms"]["distributed_read"])
    return result


async def phase_logs(server: ServerProc) -> dict[str, Any]:
    """(d) Hosts send result logs every second; rows per server-CPU-second."""
    hosts = env_int("HOSTQL_BENCH_LOG_HOSTS", 100)
    rows = env_int("HOSTQL_BENCH_LOG_ROWS", 100)
    options = sim_options(server, seed=102, hosts=hosts, start_period=5.0, query_interval=QUERY_INTERVAL,
                          config_interval=60.0, log_interval=1.0, log_rows=rows, duration=0.0)
    async with Simulation(options) as sim:
        await sim.start()
        await sim.wait_enrolled(60.0)
        await asyncio.sleep(3.0)
        window = Window(server, sim)
        await asyncio.sleep(env_float("HOSTQL_BENCH_WINDOW", 15.0))
        result = window.close()
        await sim.stop()
        report = sim.report()
    sent = result["delta"]["log_rows_sent"]
    cpu = result["server_cpu_s"]
    result.update(hosts=hosts, rows_per_log=rows, errors=report["errors"], rows=sent,
                  rows_per_cpu_s=round(sent / cpu, 1) if cpu else 0.0,
                  rows_per_wall_s=round(sent / result["wall_s"], 1), p99_log_ms=result["p99_ms"]["log"])
    return result


async def live_query(server: ServerProc, prefixes: tuple[str, ...], timeout: float,
                     ids: list[int] | None = None) -> dict[str, Any]:
    """(c) A campaign to every host named ``<prefix>...`` (or to ``ids``, listed beforehand so the
    listing does not load the measured window); seconds until each one's result arrived on the WebSocket."""
    import httpx
    from websockets.asyncio.client import connect

    async with httpx.AsyncClient(base_url=server.url, verify=server.ssl_context(), timeout=60.0) as api:
        headers = await _login(api, server)
        token = headers["Authorization"].removeprefix("Bearer ")
        if ids is None:
            ids = await _host_ids(api, headers, prefixes)
        started = time.monotonic()
        created = await api.post("/api/v1/fleet/queries/run", headers=headers,
                                 json={"query": "SELECT uuid, hostname FROM system_info", "selected": {"hosts": ids}})
        created.raise_for_status()
        campaign_id = created.json()["campaign"]["id"]
    url = server.url.replace("https://", "wss://").replace("http://", "ws://") + "/api/v1/fleet/results/websocket"
    answered: set[int] = set()
    last = 0.0
    expected = len(ids)
    async with connect(url, ssl=server.ssl_context(), max_size=None, open_timeout=30) as ws:
        await ws.send(json.dumps({"type": "auth", "data": {"token": token}}))
        await ws.send(json.dumps({"type": "select_campaign", "data": {"campaign_id": campaign_id}}))
        deadline = started + timeout
        while len(answered) < len(ids) and time.monotonic() < deadline:
            try:
                raw = await asyncio.wait_for(ws.recv(), timeout=max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                break
            message = json.loads(raw)
            if message.get("type") == "result":
                answered.add(int(message["data"]["host"]["id"]))
                last = time.monotonic() - started
            elif message.get("type") == "totals":
                expected = int(message["data"].get("online", expected))
            elif message.get("type") == "error":
                raise RuntimeError(f"live query failed: {message.get('data')}")
    return {"targeted": len(ids), "online_expected": expected, "answered": len(answered),
            "seconds_to_all": round(last, 2) if len(answered) == len(ids) and ids else None,
            "seconds_to_last_seen": round(last, 2), "goal_s": QUERY_INTERVAL + 2.0}


async def _login(api: Any, server: ServerProc) -> dict[str, str]:
    login = await api.post("/api/v1/fleet/login", json={"email": server.admin_email,
                                                        "password": server.admin_password})
    login.raise_for_status()
    return {"Authorization": f"Bearer {login.json()['token']}"}


async def _hosts(api: Any, headers: dict[str, str], prefixes: tuple[str, ...]) -> list[dict[str, Any]]:
    """Every host whose hostname starts with one of ``prefixes`` (all pages)."""
    found: list[dict[str, Any]] = []
    page, per_page = 0, 5000
    while True:
        listing = await api.get("/api/v1/fleet/hosts", headers=headers, params={"page": page, "per_page": per_page})
        listing.raise_for_status()
        hosts = listing.json()["hosts"]
        found += [h for h in hosts if str(h.get("hostname", "")).startswith(prefixes)]
        if len(hosts) < per_page:
            return found
        page += 1


async def _host_ids(api: Any, headers: dict[str, str], prefixes: tuple[str, ...]) -> list[int]:
    return [int(h["id"]) for h in await _hosts(api, headers, prefixes)]


async def _fleet_progress(api: Any, headers: dict[str, str], prefixes: tuple[str, ...]) -> tuple[list[int], int]:
    """(ids of the hosts enrolled, how many have their first vitals and labels in): the start-up
    burst is over when every host has; only then is the server in its steady state."""
    hosts = await _hosts(api, headers, prefixes)
    settled = sum(1 for h in hosts if not str(h.get("detail_updated_at", "1970")).startswith("1970")
                  and not str(h.get("label_updated_at", "1970")).startswith("1970"))
    return [int(h["id"]) for h in hosts], settled


def _sim_command(server: ServerProc, hosts: int, seed: int, ramp: float, duration: float, report: Path) -> list[str]:
    return [sys.executable, "-m", "hostql", "sim", "--server", server.url, "--ca", server.ca,
            "--enroll-secret", server.enroll_secret, "--hosts", str(hosts), "--seed", str(seed),
            "--start-period", f"{ramp:g}", "--config-interval", "60", "--query-interval", f"{QUERY_INTERVAL:g}",
            "--log-interval", "10", "--log-rows", "10", "--duration", f"{duration:g}",
            "--software-rows", str(env_int("HOSTQL_BENCH_SOFTWARE_ROWS", 25)),
            "--connections", str(env_int("HOSTQL_BENCH_CONNECTIONS", 64)), "--json-report", str(report)]


async def phase_fleet(server: ServerProc) -> dict[str, Any]:
    """(b) HOSTS hosts at default intervals, simulated by several ``hostql sim`` processes (one
    event loop saturates at about a thousand hosts); (c) a live query to all of them once steady."""
    import httpx

    hosts = env_int("HOSTQL_BENCH_HOSTS", 10_000)
    ramp = env_float("HOSTQL_BENCH_RAMP", 60.0)
    steady = env_float("HOSTQL_BENCH_STEADY", 90.0)
    processes = max(1, env_int("HOSTQL_BENCH_SIM_PROCS", -(-hosts // 2500)))
    seeds = [103 + index for index in range(processes)]
    prefixes = tuple(f"sim-{seed}-" for seed in seeds)
    shares = [hosts // processes + (1 if index < hosts % processes else 0) for index in range(processes)]
    # Long enough for the ramp, the wait for enrollment, one interval and the steady window.
    settle = env_float("HOSTQL_BENCH_SETTLE", 300.0)
    duration = ramp + settle + QUERY_INTERVAL + steady + 15.0
    reports = [server.data_dir / f"sim-{seed}.json" for seed in seeds]
    sims = [subprocess.Popen(_sim_command(server, share, seed, ramp, duration, report),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
            for share, seed, report in zip(shares, seeds, reports)]
    try:
        began = time.monotonic()
        ids: list[int] = []
        settled = 0
        async with httpx.AsyncClient(base_url=server.url, verify=server.ssl_context(), timeout=180.0) as api:
            headers = await _login(api, server)
            while time.monotonic() - began < ramp + settle:
                await asyncio.sleep(5.0)
                try:
                    ids, settled = await _fleet_progress(api, headers, prefixes)
                except httpx.TimeoutException:
                    continue  # the server is busy with the start-up burst: ask again
                if settled >= hosts:
                    break
        enrolled = len(ids)
        settle_s = round(time.monotonic() - began, 1)
        await asyncio.sleep(QUERY_INTERVAL)  # every host past its first read/write
        window = Window(server, None)
        await asyncio.sleep(min(20.0, steady / 3))
        try:
            live = await live_query(server, prefixes, timeout=max(30.0, 3 * QUERY_INTERVAL), ids=ids)
        except Exception as exc:  # reported, not fatal: the other figures still count
            live = {"error": f"{exc.__class__.__name__}: {exc}"}
        await asyncio.sleep(max(0.0, steady - (time.monotonic() - window.wall0)))
        result = window.close()
        for sim in sims:  # each writes its report when told to stop
            sim.send_signal(signal.SIGTERM)
        for sim in sims:
            await asyncio.to_thread(sim.wait, 120.0)
    finally:
        for sim in sims:
            if sim.poll() is None:
                sim.kill()
                sim.wait()
    merged = _merge_reports([json.loads(report.read_text()) for report in reports if report.exists()])
    cpu_share = result["server_cpu_share"]
    all_enrolled = enrolled >= hosts
    result.update(hosts=hosts, sim_processes=processes, all_enrolled=all_enrolled, enrolled=enrolled,
                  settled=settled, seconds_to_settle=settle_s,
                  errors=merged["errors"] if len(reports) == len(merged["reports"]) else None,
                  error_kinds=merged["error_kinds"], error_examples=merged["error_examples"][:5],
                  p99_ms=merged["p99_ms"], live_query=live,
                  sim_stderr=[sim.stderr.read().decode(errors="replace")[-500:] for sim in sims
                              if sim.returncode not in (0, 1) and sim.stderr is not None],
                  served_per_second=merged["served_per_second"],
                  # Only a fleet whose every host settled is held; a saturated server spreads fewer
                  # requests over the same hosts, and enrolled / CPU share would flatter it.
                  hosts_per_server_cpu=round(enrolled / cpu_share) if cpu_share and settled >= hosts else None)
    return result


def _merge_reports(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum the simulators' errors; the p99 per endpoint is the worst of theirs (whole run, ramp included)."""
    kinds: dict[str, int] = {}
    for report in reports:
        for kind, count in report.get("error_kinds", {}).items():
            kinds[kind] = kinds.get(kind, 0) + int(count)
    p99: dict[str, float] = {}
    for report in reports:
        for name, summary in report.get("endpoints", {}).items():
            p99[name] = max(p99.get(name, 0.0), float(summary.get("p99_ms", 0.0)))
    served = {name: round(sum(float((r.get("endpoints", {}).get(name) or {}).get("per_second", 0.0))
                              for r in reports), 1)
              for name in ("distributed_read", "log")}
    return {"reports": reports, "errors": sum(int(r.get("errors", 0)) for r in reports), "error_kinds": kinds,
            "error_examples": [e for r in reports for e in r.get("error_examples", [])], "p99_ms": p99,
            "served_per_second": served}


def ratio(value: float | None, baseline: float) -> str:
    return f"{value / baseline:.2f}x" if value else "-"


def print_figures(engine: str, figures: dict[str, Any]) -> None:
    a, d, b = figures.get("reads", {}), figures.get("logs", {}), figures.get("fleet", {})
    live = b.get("live_query", {})
    low, high = FLEET_READS_PER_VCPU
    rows = [
        ("(a) empty distributed reads / server-CPU-s", a.get("reads_per_cpu_s"), f">= {GOAL_READS:,.0f}",
         f"{ratio(a.get('reads_per_cpu_s'), high)}-{ratio(a.get('reads_per_cpu_s'), low)} of Fleet's 600-750/vCPU"),
        ("(a) distributed read p99 under that load, ms", a.get("p99_read_ms"), f"< {GOAL_P99_MS:g}", ""),
        (f"(b) {b.get('hosts', 0):,} hosts at default intervals: errors", b.get("errors"), "0",
         f"{b.get('enrolled', 0):,} enrolled, {b.get('settled', 0):,} with vitals and labels after "
         f"{b.get('seconds_to_settle', 0):g} s"),
        ("(b) server CPU share in steady state (1.0 = one core)", b.get("server_cpu_share"), "<= 1.0", ""),
        ("(b) distributed read p99, ms (whole run, worst simulator)", (b.get("p99_ms") or {}).get("distributed_read"),
         f"< {GOAL_P99_MS:g}", f"{b.get('sim_processes', 0)} simulator processes"),
        ("(b) distributed reads served per second (whole run)", (b.get("served_per_second") or {}).get(
            "distributed_read"), "", f"default intervals ask for {b.get('hosts', 0) / QUERY_INTERVAL:,.0f}"),
        ("(b) hosts per server-CPU (only when every host settled)", b.get("hosts_per_server_cpu"), "",
         f"{ratio(b.get('hosts_per_server_cpu'), FLEET_HOSTS_PER_VCPU)} of Fleet's 5,000/vCPU (2,500 on 0.5 vCPU)"),
        ("(c) live query: seconds until all hosts answered", live.get("seconds_to_all"),
         f"<= {QUERY_INTERVAL + 2:g}", f"{live.get('answered', 0)}/{live.get('targeted', 0)} answered"
         + (f"; {live['error']}" if "error" in live else "")),
        ("(d) result log rows / server-CPU-s", d.get("rows_per_cpu_s"), f">= {GOAL_LOG_ROWS:,.0f}",
         "Fleet publishes no figure"),
    ]
    print(f"\n== {engine} ==")
    for label, value, goal, note in rows:
        shown = "-" if value is None else (f"{value:,.1f}" if isinstance(value, float) else f"{value:,}")
        print(f"  {label:<56} {shown:>12}  goal {goal:<10} {note}")
    db_cpu = [f"{name} {figures[name].get('db_cpu_s', 0)} s" for name in ("reads", "logs", "fleet") if name in figures]
    if engine == "postgresql":
        print(f"  (PostgreSQL's own CPU in those windows, not counted above: {', '.join(db_cpu)})")


async def bench_engine(engine: str, base_cmd: list[str]) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    pg = start_postgres_cluster() if engine == "postgresql" else None
    try:
        db_url = pg.new_database() if pg is not None else None
        server = ServerProc.start(base_cmd, db_url=db_url, db_pid=pg.pid if pg is not None else None)
        try:
            for name, phase in (("reads", phase_reads), ("logs", phase_logs), ("fleet", phase_fleet)):
                started = time.monotonic()
                print(f"[{engine}] phase {name} ...", flush=True)
                figures[name] = await phase(server)
                print(f"[{engine}] phase {name} done in {time.monotonic() - started:.0f} s", flush=True)
                if not server.alive():
                    figures["server_died"] = server.log_tail()
                    break
            figures["server_log_errors"] = server.log_errors()
        finally:
            server.stop()
    finally:
        if pg is not None:
            stop_db(pg)
    return figures


def _runner() -> Any:
    """uvloop when installed: it takes some load off the simulator's event loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run


def main() -> int:
    base_cmd = shlex.split(os.environ.get("HOSTQL_BENCH_SERVER_CMD", "")) or [sys.executable, "-m", "hostql",
                                                                             "server"]
    engines = [e.strip() for e in os.environ.get("HOSTQL_BENCH_DBS", ",".join(DB_ENGINES)).split(",") if e.strip()]
    results: dict[str, Any] = {}
    began = time.monotonic()
    for engine in engines:
        results[engine] = _runner()(bench_engine(engine, base_cmd))
    for engine in engines:
        print_figures(engine, results[engine])
    print(f"\ntotal {time.monotonic() - began:.0f} s")
    out = os.environ.get("HOSTQL_BENCH_JSON")
    if out:
        Path(out).write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
