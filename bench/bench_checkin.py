"""Empty ``distributed/read`` and result-log throughput of a real ``hostql server --dev`` over TLS,
per server-CPU-second.

    .venv/bin/python bench/bench_checkin.py     # ~60 s; HOSTQL_BENCH_HOSTS, _CLIENTS, _SECONDS to tune
    HOSTQL_BENCH_PHASES=logs .venv/bin/python bench/bench_checkin.py   # only the log phase

Starts the server on a free loopback port, enrolls HOSTS hosts through the
osquery API, answers their first read once (so nothing is due any more), then
CLIENTS concurrent httpx clients read back to back for SECONDS.  Server CPU is
``utime + stime`` from ``/proc/<pid>/stat`` around the window; the clients'
CPU does not count.  Prints reads per server-CPU-second, p50/p99 and the ratio
to Fleet's 600-750 reads per vCPU.

The log phase (HOSTQL_BENCH_LOG_ROWS rows per request, default 200) posts
result logs from the enrolled hosts back to back, CLIENTS at a time, for
SECONDS each in three shapes: ``event`` (one differential line per row, the
osquery default for scheduled queries: half ``removed``, half ``added``, a
differential query's steady state) and ``snapshot`` (one line holding every
row) of a saved global query with automations on (so each line updates the
query report and goes to the result log file), and ``unknown`` (a name that
is no saved query: forwarded only).  Prints rows per
server-CPU-second and the ratio to the 100,000 goal.  Every load is bounded in count and time and
the server is stopped by its pid.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server_proc import TICK, ServerProc, _stat_fields, cpu_seconds

FLEET_READS_PER_VCPU = (600.0, 750.0)
HOSTS = int(os.environ.get("HOSTQL_BENCH_HOSTS", "50"))
CLIENTS = int(os.environ.get("HOSTQL_BENCH_CLIENTS", "4"))
SECONDS = float(os.environ.get("HOSTQL_BENCH_SECONDS", "10"))
MAX_READS = 1_000_000
LOG_ROWS = int(os.environ.get("HOSTQL_BENCH_LOG_ROWS", "200"))
PHASES = [p.strip() for p in os.environ.get("HOSTQL_BENCH_PHASES", "reads,logs").split(",") if p.strip()]
LOG_SHAPES = [p.strip() for p in os.environ.get("HOSTQL_BENCH_LOG_SHAPES", "event,snapshot,unknown").split(",")
              if p.strip()]
GOAL_LOG_ROWS = 100_000.0
GOAL_READS = 5000.0
MAX_LOG_REQUESTS = 200_000
BENCH_QUERY = "bench_log"


def user_system(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of ``pid`` so far."""
    fields = _stat_fields(pid)
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def enroll(client: httpx.AsyncClient, secret: str, index: int) -> str:
    body = {"enroll_secret": secret, "host_identifier": f"bench-checkin-{index}", "platform_type": "9",
            "host_details": {"system_info": {"hostname": f"bench-{index}", "uuid": f"bench-{index}"},
                             "os_version": {"platform": "ubuntu", "name": "Ubuntu", "version": "22.04"}}}
    reply = await client.post("/api/osquery/enroll", json=body)
    reply.raise_for_status()
    key: str = reply.json()["node_key"]
    return key


async def answer_once(client: httpx.AsyncClient, key: str) -> None:
    """Read what is due and answer every query with no rows, so the following reads come back empty."""
    for _ in range(3):
        reply = await client.post("/api/osquery/distributed/read", json={"node_key": key})
        reply.raise_for_status()
        queries: dict[str, Any] = reply.json().get("queries", {})
        if not queries:
            return
        body = {"node_key": key, "queries": {name: [] for name in queries}, "statuses": dict.fromkeys(queries, 0),
                "messages": dict.fromkeys(queries, "")}
        (await client.post("/api/osquery/distributed/write", json=body)).raise_for_status()


async def hammer(client: httpx.AsyncClient, keys: list[str], deadline: float, latencies: list[float],
                 counts: dict[str, int], offset: int) -> None:
    index = offset
    while time.monotonic() < deadline and counts["reads"] < MAX_READS:
        key = keys[index % len(keys)]
        index += 1
        began = time.perf_counter()
        reply = await client.post("/api/osquery/distributed/read", json={"node_key": key})
        latencies.append(time.perf_counter() - began)
        counts["reads"] += 1
        if reply.status_code != 200 or reply.json().get("queries"):
            counts["not_empty"] += 1


def _rows(count: int, serial: int, phase: int) -> list[dict[str, str]]:
    base = serial * 31 + phase * count
    return [{"cmdline": f"/usr/sbin/benchd --worker {i}", "name": f"benchd-{i % 7}", "path": "/usr/sbin/benchd",
             "pid": str(1000 + (base + i) % 30000), "resident_size": str(4096 * (i + 1)), "uid": str(i % 3)}
            for i in range(count)]


def log_body(key: str, shape: str, serial: int, phase: int = 0) -> bytes:
    """A ``/log`` request body of LOG_ROWS rows in ``shape`` (event, snapshot or unknown).

    ``event`` is a differential query's steady state: LOG_ROWS / 2 ``removed`` lines (the
    rows the host's other phase added) and LOG_ROWS / 2 ``added`` lines, so a host's report
    stays near LOG_ROWS / 2 rows however many requests come."""
    now = int(time.time())
    name = f"pack/Global/{BENCH_QUERY}" if shape != "unknown" else "pack/bench/not_saved"
    common = {"name": name, "hostIdentifier": key[:8], "calendarTime": time.asctime(time.gmtime(now)) + " UTC",
              "unixTime": now, "epoch": 0, "counter": serial, "numerics": False,
              "decorations": {"host_uuid": key[:8], "hostname": "bench"}}
    if shape == "snapshot":
        lines = [dict(common, snapshot=_rows(LOG_ROWS, serial, phase), action="snapshot")]
    elif shape == "event":
        half = LOG_ROWS // 2
        lines = [dict(common, columns=row, action="removed") for row in _rows(half, serial, 1 - phase)]
        lines += [dict(common, columns=row, action="added") for row in _rows(LOG_ROWS - half, serial, phase)]
    else:
        lines = [dict(common, columns=row, action="added") for row in _rows(LOG_ROWS, serial, phase)]
    return json.dumps({"node_key": key, "log_type": "result", "data": lines}).encode()


async def create_bench_query(server: ServerProc, ctx: Any) -> None:
    async with httpx.AsyncClient(base_url=server.url, verify=ctx, timeout=30.0) as api:
        login = await api.post("/api/v1/fleet/login", json={"email": server.admin_email,
                                                            "password": server.admin_password})
        login.raise_for_status()
        headers = {"Authorization": f"Bearer {login.json()['token']}"}
        reply = await api.post("/api/v1/fleet/queries", headers=headers,
                               json={"name": BENCH_QUERY, "query": "SELECT * FROM processes", "interval": 60,
                                     "automations_enabled": True, "logging": "differential"})
        reply.raise_for_status()


async def post_logs(client: httpx.AsyncClient, bodies: list[bytes], deadline: float, latencies: list[float],
                    counts: dict[str, int], offset: int) -> None:
    index = offset
    headers = {"content-type": "application/json"}
    while time.monotonic() < deadline and counts["requests"] < MAX_LOG_REQUESTS:
        body = bodies[index % len(bodies)]
        index += 1
        began = time.perf_counter()
        reply = await client.post("/api/osquery/log", content=body, headers=headers)
        latencies.append(time.perf_counter() - began)
        counts["requests"] += 1
        if reply.status_code != 200 or reply.json():
            counts["errors"] += 1
        else:
            counts["rows"] += LOG_ROWS


async def run_logs(server: ServerProc, clients: list[httpx.AsyncClient], keys: list[str],
                   shape: str) -> dict[str, Any]:
    bodies = [log_body(key, shape, i, phase) for phase in (0, 1) for i, key in enumerate(keys)]
    latencies: list[float] = []
    counts = {"requests": 0, "rows": 0, "errors": 0}
    cpu0, wall0, us0 = cpu_seconds(server.pid), time.monotonic(), user_system(server.pid)
    deadline = wall0 + SECONDS
    await asyncio.gather(*(post_logs(c, bodies, deadline, latencies, counts, i * 7) for i, c in enumerate(clients)))
    cpu, wall, us1 = cpu_seconds(server.pid) - cpu0, time.monotonic() - wall0, user_system(server.pid)
    rows = counts["rows"]
    rate = rows / cpu if cpu else 0.0
    return {"shape": shape, "rows_per_request": LOG_ROWS, "requests": counts["requests"],
            "errors": counts["errors"], "rows": rows, "wall_s": round(wall, 2), "server_cpu_s": round(cpu, 2),
            "user_sys_s": (round(us1[0] - us0[0], 2), round(us1[1] - us0[1], 2)),
            "rows_per_cpu_s": round(rate, 1), "vs_goal": f"{rate / GOAL_LOG_ROWS:.2f}x of {GOAL_LOG_ROWS:,.0f}",
            "p50_ms": round(percentile(latencies, 0.5) * 1000, 2),
            "p99_ms": round(percentile(latencies, 0.99) * 1000, 2)}


async def run(server: ServerProc) -> list[dict[str, Any]]:
    ctx = server.ssl_context()
    async with httpx.AsyncClient(base_url=server.url, verify=ctx, timeout=30.0) as setup:
        keys = [await enroll(setup, server.enroll_secret, i) for i in range(HOSTS)]
        for key in keys:
            await answer_once(setup, key)
    results: list[dict[str, Any]] = []
    if "reads" in PHASES:
        results.append(await run_reads(server, ctx, keys))
    if "logs" in PHASES:
        await create_bench_query(server, ctx)
        clients = [httpx.AsyncClient(base_url=server.url, verify=ctx, timeout=30.0) for _ in range(CLIENTS)]
        try:
            for client in clients:
                (await client.post("/api/osquery/distributed/read", json={"node_key": keys[0]})).raise_for_status()
            for shape in LOG_SHAPES:
                results.append(await run_logs(server, clients, keys, shape))
        finally:
            for client in clients:
                await client.aclose()
    return results


async def run_reads(server: ServerProc, ctx: Any, keys: list[str]) -> dict[str, Any]:
    clients = [httpx.AsyncClient(base_url=server.url, verify=ctx, timeout=30.0) for _ in range(CLIENTS)]
    try:
        for client in clients:  # open the TLS connections before measuring
            (await client.post("/api/osquery/distributed/read", json={"node_key": keys[0]})).raise_for_status()
        latencies: list[float] = []
        counts = {"reads": 0, "not_empty": 0}
        cpu0, wall0, us0 = cpu_seconds(server.pid), time.monotonic(), user_system(server.pid)
        deadline = wall0 + SECONDS
        await asyncio.gather(*(hammer(c, keys, deadline, latencies, counts, i * 7) for i, c in enumerate(clients)))
        cpu, wall, us1 = cpu_seconds(server.pid) - cpu0, time.monotonic() - wall0, user_system(server.pid)
    finally:
        for client in clients:
            await client.aclose()
    reads = counts["reads"]
    return {"phase": "reads", "hosts": HOSTS, "clients": CLIENTS, "reads": reads, "not_empty": counts["not_empty"],
            "wall_s": round(wall, 2), "server_cpu_s": round(cpu, 2),
            "user_sys_s": (round(us1[0] - us0[0], 2), round(us1[1] - us0[1], 2)),
            "reads_per_cpu_s": round(reads / cpu, 1) if cpu else 0.0, "reads_per_wall_s": round(reads / wall, 1),
            "p50_ms": round(percentile(latencies, 0.5) * 1000, 2),
            "p99_ms": round(percentile(latencies, 0.99) * 1000, 2)}


def main() -> int:
    server = ServerProc.start([sys.executable, "-m", "hostql", "server"])
    try:
        results = asyncio.run(run(server))
        errors = server.log_errors()
    finally:
        server.stop()
    for result in results:
        print()
        for key, value in result.items():
            print(f"{key:>16}: {value}")
        if result.get("phase") == "reads":
            low, high = FLEET_READS_PER_VCPU
            rate = result["reads_per_cpu_s"]
            print(f"{'vs Fleet':>16}: {rate / high:.2f}x-{rate / low:.2f}x of Fleet's {low:g}-{high:g} reads per "
                  f"vCPU; {rate / GOAL_READS:.2f}x of the goal (>= {GOAL_READS:g} per CPU-second, p99 < 20 ms)")
    if errors:
        print(f"\nserver log errors:\n{errors}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
