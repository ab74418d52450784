"""``hostql sim``: many simulated osquery agents against a server, on one event loop.

    hostql sim --server https://127.0.0.1:8080 --ca hostql-data/ca.pem \\
        --enroll-secret "$(cat hostql-data/enroll_secret)" --hosts 1000 --start-period 30 --duration 120

Every host has its own uuid, hostname and node key; all share one pool of
HTTP/1.1 keep-alive connections (at most ``--connections``; see
:mod:`hostql.sim.http`).  Hosts start spread over ``--start-period`` seconds.  At the
end a summary gives per-endpoint request counts, errors and latency
percentiles; ``--json-report FILE`` writes the same as JSON.  The exit code
is 0 when no request failed, 1 otherwise.  See docs/sim.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
import ssl
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hostql.sim.agent import SimAgent, SimContext, SimOptions
from hostql.sim.http import HttpPool
from hostql.sim.stats import SimStats, format_report
from hostql.sim.template import Identity, Templates

LAG_PROBE = 0.1


class Simulation:
    """One run: the shared client, the agents' tasks, the counters.

    ``async with Simulation(options) as sim: await sim.start(); await sim.wait(duration)``;
    the bench reads ``sim.stats`` while it runs.
    """

    def __init__(self, options: SimOptions) -> None:
        self.options = options
        self.stats = SimStats()
        self.templates = Templates()
        self.client: HttpPool | None = None
        self.agents: list[SimAgent] = []
        self._tasks: list[asyncio.Task[None]] = []

    def _verify(self) -> ssl.SSLContext | None:
        if not self.options.server.startswith("https:"):
            return None
        context = ssl.create_default_context(cafile=self.options.ca) if self.options.ca else \
            ssl.create_default_context()
        return context

    async def __aenter__(self) -> Simulation:
        self.client = HttpPool(self.options.server, verify=self._verify(), timeout=self.options.timeout)
        await self.templates.load_host_details()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Create every agent; host ``i`` starts ``start_period * i / hosts`` seconds from now."""
        assert self.client is not None, "use 'async with Simulation(...)'"
        ctx = SimContext(self.options, self.client, self.stats, self.templates)
        count = max(0, self.options.hosts)
        rng = random.Random(self.options.seed)
        self.stats.started = time.monotonic()
        for index in range(count):
            agent = SimAgent(ctx, Identity.make(index, self.options.seed))
            delay = self.options.start_period * index / count if count else 0.0
            delay += rng.uniform(0, self.options.start_period / count) if count and self.options.start_period else 0
            self.agents.append(agent)
            self._tasks.append(asyncio.create_task(agent.run(delay), name=f"sim-host-{index}"))
        self._tasks.append(asyncio.create_task(self._watch_lag(), name="sim-lag"))

    async def _watch_lag(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(LAG_PROBE)
            self.stats.loop_lag_max = max(self.stats.loop_lag_max, loop.time() - before - LAG_PROBE)

    def enrolled_count(self) -> int:
        return sum(1 for agent in self.agents if agent.enrolled.is_set())

    async def wait_enrolled(self, timeout: float) -> bool:
        """Wait until every agent holds a node key; False after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while self.enrolled_count() < len(self.agents):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.2)
        return True

    async def wait_quiet(self, timeout: float) -> bool:
        """Wait until every agent's last distributed read came back empty; False after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while not all(agent.quiet for agent in self.agents):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.2)
        return True

    async def wait(self, seconds: float, stop: asyncio.Event | None = None) -> None:
        """Let the agents run for ``seconds`` (returns early if every agent task ended or ``stop`` is set)."""
        agent_tasks = self._tasks[:-1]
        # One waitable for "every agent ended": a single agent giving up must not end the run.
        waiting: set[asyncio.Future[Any]] = {asyncio.ensure_future(asyncio.wait(agent_tasks))} if agent_tasks else set()
        if stop is not None:
            waiting.add(asyncio.ensure_future(stop.wait()))
        try:
            if waiting:
                await asyncio.wait(waiting, timeout=max(0.0, seconds), return_when=asyncio.FIRST_COMPLETED)
            else:
                await asyncio.sleep(seconds)
        finally:
            for future in waiting:
                future.cancel()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self.client is not None:
            await self.client.aclose()
            self.client = None
        self.templates.close()

    def report(self) -> dict[str, Any]:
        return self.stats.report(len(self.agents))


async def simulate(options: SimOptions) -> dict[str, Any]:
    """Run ``options.hosts`` agents for ``options.duration`` seconds; returns the report."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):  # end early, still reporting what was measured
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, stop.set)
    async with Simulation(options) as sim:
        await sim.start()
        await sim.wait(options.duration, stop)
        await sim.stop()
        return sim.report()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hostql sim",
        description="Simulate many osquery agents (enroll, config, distributed, logs) against a "
                    "Fleet-compatible server, on one event loop, and report errors and latencies. "
                    "SIGTERM or Ctrl-C ends the run early; the report still comes.")
    add = parser.add_argument
    add("--server", required=True, help="server URL, e.g. https://127.0.0.1:8080")
    add("--ca", metavar="PEM", help="CA certificate(s) the server's certificate must chain to")
    secret = parser.add_mutually_exclusive_group(required=True)
    secret.add_argument("--enroll-secret", help="the enroll secret")
    secret.add_argument("--enroll-secret-file", metavar="FILE", help="file holding the enroll secret")
    add("--hosts", type=int, default=10, help="simulated hosts (default 10)")
    add("--start-period", type=float, default=10.0, metavar="SECONDS",
        help="spread the hosts' starts over this many seconds (default 10)")
    add("--config-interval", type=float, default=60.0, metavar="SECONDS",
        help="config fetch interval; 0 = only at start (default 60)")
    add("--query-interval", type=float, default=10.0, metavar="SECONDS",
        help="distributed read interval; 0 = back to back (default 10)")
    add("--log-interval", type=float, default=10.0, metavar="SECONDS",
        help="result log interval; 0 = no result logs (default 10)")
    add("--log-rows", type=int, default=10, metavar="N", help="result rows per host per log interval (default 10)")
    add("--live-rows", type=int, default=3, metavar="N", help="rows each host answers a live query with (default 3)")
    add("--duration", type=float, default=60.0, metavar="SECONDS", help="run time from the first start (default 60)")
    add("--software-rows", type=int, default=-1, metavar="N",
        help="software inventory rows per host (default: all of this machine's; osquery-perf sends about 20)")
    add("--connections", type=int, default=64, metavar="N", help="HTTP connection pool size (default 64)")
    add("--timeout", type=float, default=16.0, metavar="SECONDS", help="per-request timeout (default 16, as osquery)")
    add("--seed", type=int, default=1, help="seed of host identities; the same seed gives the same hosts (default 1)")
    add("--json-report", metavar="FILE", help="also write the report as JSON to FILE")
    return parser


def options_from(args: argparse.Namespace) -> SimOptions:
    secret = args.enroll_secret
    if secret is None:
        secret = Path(args.enroll_secret_file).read_text(encoding="utf-8").strip()
    for name in ("hosts", "log_rows", "live_rows", "connections"):
        if getattr(args, name) < 0:
            raise ValueError(f"--{name.replace('_', '-')} must not be negative")
    return SimOptions(server=args.server, enroll_secret=secret, ca=args.ca, hosts=args.hosts,
                      start_period=args.start_period, config_interval=args.config_interval,
                      query_interval=args.query_interval, log_interval=args.log_interval, log_rows=args.log_rows,
                      live_rows=args.live_rows, duration=args.duration, connections=args.connections,
                      seed=args.seed, timeout=args.timeout, software_rows=args.software_rows)


def _event_loop_runner() -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run


def run(argv: Sequence[str]) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exc:
        return int(exc.code or 0) if isinstance(exc.code, int) else 2
    try:
        options = options_from(args)
    except (OSError, ValueError) as exc:
        print(f"hostql sim: {exc}", file=sys.stderr)
        return 2
    print(f"hostql sim: {options.hosts} hosts against {options.server} for {options.duration:g} s "
          f"(start period {options.start_period:g} s, intervals config {options.config_interval:g} / "
          f"distributed {options.query_interval:g} / log {options.log_interval:g} s)", flush=True)
    report = _event_loop_runner()(simulate(options))
    print(format_report(report), flush=True)
    if args.json_report:
        Path(args.json_report).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0 if report["errors"] == 0 else 1
