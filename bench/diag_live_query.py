"""Diagnose a live query to many simulated hosts (not a benchmark: ``make bench`` skips it).

    HOSTQL_DIAG_HOSTS=3000 HOSTQL_DIAG_WAIT=190 .venv/bin/python bench/diag_live_query.py

Starts a ``hostql server --dev`` and HOSTQL_DIAG_SIMS (default 1) ``hostql sim`` processes
sharing HOSTQL_DIAG_HOSTS hosts (30 s ramp, default intervals), waits HOSTQL_DIAG_WAIT seconds for the fleet to settle,
then runs bench_server's live query to every host while py-spy (when installed in the
venv) records the server into HOSTQL_DIAG_PROFILE (raw format).  Prints how long the
login and the campaign creation took, when each kind of WebSocket message first came,
the live-query figure, the CPU shares of the server and of each simulator meanwhile (a
simulator near 1.0 is the bottleneck: its requests queue for its connection slots) and
each simulator's report.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import bench_server
from _server_proc import ServerProc, cpu_seconds


def _watch_websocket(started: float) -> None:
    """Print when each kind of results-WebSocket message first arrives."""
    from websockets.asyncio import client as ws_client

    connect = ws_client.connect

    class Watched:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self._inner = connect(*args, **kwargs)

        async def __aenter__(self) -> Any:
            socket = await self._inner.__aenter__()
            receive, seen = socket.recv, set()

            async def recv(*args: Any, **kwargs: Any) -> Any:
                message = await receive(*args, **kwargs)
                kind = json.loads(message).get("type")
                if kind not in seen:
                    seen.add(kind)
                    print(f"first {kind} message after {time.monotonic() - started:.2f} s", flush=True)
                return message

            socket.recv = recv
            return socket

        async def __aexit__(self, *exc: Any) -> Any:
            return await self._inner.__aexit__(*exc)

    ws_client.connect = Watched  # type: ignore[assignment,misc]


async def main() -> None:
    import httpx

    hosts = int(os.environ.get("HOSTQL_DIAG_HOSTS", "3000"))
    sims = max(1, int(os.environ.get("HOSTQL_DIAG_SIMS", "1")))
    wait = float(os.environ.get("HOSTQL_DIAG_WAIT", "190"))
    profile = os.environ.get("HOSTQL_DIAG_PROFILE", "/tmp/hostql-live-query.raw")
    server = ServerProc.start([sys.executable, "-m", "hostql", "server"])
    seeds = [103 + number for number in range(sims)]
    reports = [server.data_dir / f"sim-report-{seed}.json" for seed in seeds]
    prefixes = tuple(f"sim-{seed}-" for seed in seeds)
    processes = [subprocess.Popen(bench_server._sim_command(server, hosts // sims, seed, 30.0, wait + 90.0, report),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
                 for seed, report in zip(seeds, reports, strict=True)]
    spy: subprocess.Popen[bytes] | None = None
    try:
        await asyncio.sleep(wait)
        async with httpx.AsyncClient(base_url=server.url, verify=server.ssl_context(), timeout=120.0) as api:
            moment = time.monotonic()
            headers = await bench_server._login(api, server)
            print(f"login took {time.monotonic() - moment:.2f} s", flush=True)
            ids = await bench_server._host_ids(api, headers, prefixes)
        print(f"{len(ids)} hosts enrolled", flush=True)
        py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent))
        if py_spy:
            spy = subprocess.Popen([py_spy, "record", "--pid", str(server.pid), "-d", "25", "-r", "100",
                                    "-f", "raw", "-o", profile], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cpu0, started = cpu_seconds(server.pid), time.monotonic()
        sim_cpu0 = [cpu_seconds(process.pid) for process in processes]
        _watch_websocket(started)
        live = await bench_server.live_query(server, prefixes, timeout=30.0, ids=ids)
        elapsed = time.monotonic() - started
        share = (cpu_seconds(server.pid) - cpu0) / elapsed
        sim_shares = [round((cpu_seconds(process.pid) - before) / elapsed, 2)
                      for process, before in zip(processes, sim_cpu0, strict=True)]
        print(f"live query: {live}; CPU share meanwhile: server {share:.2f}, simulators {sim_shares}", flush=True)
        if spy is not None:
            spy.wait(60)
            print(f"server profile (py-spy raw): {profile}")
        for process in processes:
            process.terminate()
        for process, report in zip(processes, reports, strict=True):
            process.wait(60)
            if report.exists():
                figures = json.loads(report.read_text())
                print({key: value for key, value in figures.items()
                       if "live" in key or "lag" in key or key in ("enrolled", "errors")})
                for name, row in (figures.get("endpoints") or {}).items():
                    print(f"    {name}: {row}")
    finally:
        for process in [spy, *processes]:
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
        server.stop()


if __name__ == "__main__":
    asyncio.run(main())
