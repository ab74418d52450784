"""Empty ``distributed/read`` throughput of a real ``hostql server --dev`` over TLS, per server-CPU-second.

    .venv/bin/python bench/bench_checkin.py     # ~30 s; HOSTQL_BENCH_HOSTS, _CLIENTS, _SECONDS to tune

Starts the server on a free loopback port, enrolls HOSTS hosts through the
osquery API, answers their first read once (so nothing is due any more), then
CLIENTS concurrent httpx clients read back to back for SECONDS.  Server CPU is
``utime + stime`` from ``/proc/<pid>/stat`` around the window; the clients'
CPU does not count.  Prints reads per server-CPU-second, p50/p99 and the ratio
to Fleet's 600-750 reads per vCPU.  Every load is bounded in count and time and
the server is stopped by its pid.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server_proc import ServerProc, cpu_seconds

FLEET_READS_PER_VCPU = (600.0, 750.0)
HOSTS = int(os.environ.get("HOSTQL_BENCH_HOSTS", "50"))
CLIENTS = int(os.environ.get("HOSTQL_BENCH_CLIENTS", "4"))
SECONDS = float(os.environ.get("HOSTQL_BENCH_SECONDS", "10"))
MAX_READS = 1_000_000


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


async def run(server: ServerProc) -> dict[str, Any]:
    ctx = server.ssl_context()
    async with httpx.AsyncClient(base_url=server.url, verify=ctx, timeout=30.0) as setup:
        keys = [await enroll(setup, server.enroll_secret, i) for i in range(HOSTS)]
        for key in keys:
            await answer_once(setup, key)
    clients = [httpx.AsyncClient(base_url=server.url, verify=ctx, timeout=30.0) for _ in range(CLIENTS)]
    try:
        for client in clients:  # open the TLS connections before measuring
            (await client.post("/api/osquery/distributed/read", json={"node_key": keys[0]})).raise_for_status()
        latencies: list[float] = []
        counts = {"reads": 0, "not_empty": 0}
        cpu0, wall0 = cpu_seconds(server.pid), time.monotonic()
        deadline = wall0 + SECONDS
        await asyncio.gather(*(hammer(c, keys, deadline, latencies, counts, i * 7) for i, c in enumerate(clients)))
        cpu, wall = cpu_seconds(server.pid) - cpu0, time.monotonic() - wall0
    finally:
        for client in clients:
            await client.aclose()
    reads = counts["reads"]
    return {"hosts": HOSTS, "clients": CLIENTS, "reads": reads, "not_empty": counts["not_empty"],
            "wall_s": round(wall, 2), "server_cpu_s": round(cpu, 2),
            "reads_per_cpu_s": round(reads / cpu, 1) if cpu else 0.0, "reads_per_wall_s": round(reads / wall, 1),
            "p50_ms": round(percentile(latencies, 0.5) * 1000, 2),
            "p99_ms": round(percentile(latencies, 0.99) * 1000, 2)}


def main() -> int:
    server = ServerProc.start([sys.executable, "-m", "hostql", "server"])
    try:
        result = asyncio.run(run(server))
    finally:
        server.stop()
    for key, value in result.items():
        print(f"{key:>16}: {value}")
    low, high = FLEET_READS_PER_VCPU
    rate = result["reads_per_cpu_s"]
    print(f"{'vs Fleet':>16}: {rate / high:.2f}x-{rate / low:.2f}x of Fleet's {low:g}-{high:g} reads per vCPU "
          f"(goal >= 5000 per CPU-second, p99 < 20 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
