"""One simulated osquery agent: enroll, then the config, distributed and logger loops.

The agent speaks osquery's TLS remote protocol (osquery-reference §1) through
the simulation's shared HTTP client (:class:`SimContext`):

* enroll with ``host_details`` (this machine's rows, varied per host), retried
  like osquery (waits 1, 4, 9, ... s, bounded);
* ``config`` at start and every ``config_interval``;
* ``distributed/read`` every ``query_interval`` (5 s while ``accelerate`` is
  in force, as osquery does), answering every query with a
  ``distributed/write``: detail/label/policy queries from the templates,
  live queries (``fleet_distributed_query_*``) with a small row set;
* ``log`` (``log_type: result``) every ``log_interval`` with ``log_rows``
  event-format lines, named after a query of the host's schedule when the
  config has one; unsent lines stay buffered (bounded) as osquery keeps them;
* a ``node_invalid`` answer makes it enroll again.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from hostql import OSQUERY_VERSION
from hostql.sim.http import HttpError, HttpPool, Response
from hostql.sim.stats import SimStats
from hostql.sim.template import Identity, Templates, live_rows, vary_row

LIVE_PREFIX = "fleet_distributed_query_"
SOFTWARE_PREFIX = "fleet_detail_query_software"
ACCELERATED_INTERVAL = 5.0
ENROLL_ATTEMPTS = 5
MAX_LINES_PER_REQUEST = 1024  # osquery's --logger_tls_max_lines
MAX_BUFFERED_ROWS = 100_000
DEFAULT_LOG_QUERY = "pack/hostql_sim/processes"
PATHS = {
    "enroll": "/api/osquery/enroll",
    "config": "/api/osquery/config",
    "log": "/api/osquery/log",
    "distributed_read": "/api/osquery/distributed/read",
    "distributed_write": "/api/osquery/distributed/write",
}


@dataclass
class SimOptions:
    server: str
    enroll_secret: str
    ca: str | None = None
    hosts: int = 10
    start_period: float = 10.0
    config_interval: float = 60.0
    query_interval: float = 10.0
    log_interval: float = 10.0
    log_rows: int = 10
    live_rows: int = 3
    duration: float = 60.0
    connections: int = 64
    seed: int = 1
    timeout: float = 16.0
    software_rows: int = -1  # cap on software inventory rows per host; -1 = all of this machine's


@dataclass
class Reply:
    body: dict[str, Any] | None = None
    node_invalid: bool = False


@dataclass
class SimContext:
    """What every agent of one simulation shares."""

    options: SimOptions
    client: HttpPool
    stats: SimStats
    templates: Templates
    slots: asyncio.Semaphore = field(init=False)
    headers: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        # The one bound on requests in flight, hence on the pool's connections (--connections); here, not in
        # the pool, so that a request's latency is timed from the moment it holds a slot.
        self.slots = asyncio.Semaphore(max(1, self.options.connections))
        self.headers = {"Content-Type": "application/json", "Accept": "application/json",
                        "User-Agent": f"osquery/{OSQUERY_VERSION}"}

    async def post(self, endpoint: str, body: dict[str, Any], node_key: str = "") -> Reply:
        """POST ``body`` to ``endpoint``; counts the request, its latency and any error."""
        content = json.dumps(body, separators=(",", ":")).encode()
        headers = dict(self.headers, Authorization=f"NodeKey {node_key}") if node_key else self.headers
        async with self.slots:
            start = time.perf_counter()
            try:
                response = await self.client.post(PATHS[endpoint], content, headers)
            except HttpError as exc:
                self.stats.record(endpoint, time.perf_counter() - start, False)
                self.stats.error(endpoint, exc.__class__.__name__, str(exc) or repr(exc))
                return Reply()
            elapsed = time.perf_counter() - start
        return self._judge(endpoint, elapsed, response)

    def _judge(self, endpoint: str, elapsed: float, response: Response) -> Reply:
        try:
            parsed = json.loads(response.content or b"{}")
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            self.stats.record(endpoint, elapsed, False)
            self.stats.error(endpoint, f"HTTP {response.status_code} non-JSON", response.text[:200])
            return Reply()
        if parsed.get("node_invalid"):
            self.stats.record(endpoint, elapsed, False)
            self.stats.node_invalid += 1
            self.stats.error(endpoint, "node_invalid", str(parsed.get("error", "")))
            return Reply(node_invalid=True)
        if response.status_code != 200 or "error" in parsed:
            self.stats.record(endpoint, elapsed, False)
            self.stats.error(endpoint, f"HTTP {response.status_code}", str(parsed.get("error", parsed))[:200])
            return Reply()
        self.stats.record(endpoint, elapsed, True)
        return Reply(body=parsed)


def calendar_time(unix_time: int) -> str:
    """osquery's ``calendarTime``: ``asctime`` of the UTC time plus `` UTC``."""
    return time.asctime(time.gmtime(unix_time)) + " UTC"


def schedule_names(config: dict[str, Any]) -> list[tuple[str, bool]]:
    """``(log name, snapshot)`` of every scheduled query in an osquery config document."""
    options = config.get("options") if isinstance(config.get("options"), dict) else {}
    delimiter = str((options or {}).get("pack_delimiter") or "/")
    names: list[tuple[str, bool]] = []
    schedule = config.get("schedule")
    if isinstance(schedule, dict):
        names.extend((str(name), bool(isinstance(q, dict) and q.get("snapshot"))) for name, q in schedule.items())
    packs = config.get("packs")
    if isinstance(packs, dict):
        for pack_name, pack in packs.items():
            queries = pack.get("queries") if isinstance(pack, dict) else None
            if isinstance(queries, dict):
                names.extend((f"pack{delimiter}{pack_name}{delimiter}{name}",
                              bool(isinstance(q, dict) and q.get("snapshot"))) for name, q in queries.items())
    return names


class SimAgent:
    """The state machine of one simulated host."""

    def __init__(self, ctx: SimContext, ident: Identity) -> None:
        self.ctx = ctx
        self.ident = ident
        self.node_key = ""
        self.schedule: list[tuple[str, bool]] = []
        self.accelerate_until = 0.0
        self.buffered_rows = 0
        self.counter = 0
        self.enrolled = asyncio.Event()
        self.quiet = False  # the last distributed read had nothing to run

    # ------------------------------------------------------------------ enroll

    async def enroll(self) -> bool:
        """Enroll (again); waits 1, 4, 9, 16 s between failed attempts like osquery."""
        stats = self.ctx.stats
        body = {"enroll_secret": self.ctx.options.enroll_secret, "host_identifier": self.ident.uuid,
                "platform_type": "9", "host_details": self.ctx.templates.details_for(self.ident)}
        for attempt in range(1, ENROLL_ATTEMPTS + 1):
            reply = await self.ctx.post("enroll", body)
            key = (reply.body or {}).get("node_key") or (reply.body or {}).get("id")
            if isinstance(key, str) and key:
                if self.node_key:
                    stats.reenrolls += 1
                else:
                    stats.enrolled += 1
                self.node_key = key
                self.enrolled.set()
                return True
            if reply.body is not None:
                stats.error("enroll", "no node_key", json.dumps(reply.body)[:200])
            await asyncio.sleep(attempt * attempt)
        return False

    async def _authed(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """A node-key request; on ``node_invalid`` the agent enrolls again (the request is not retried)."""
        body["node_key"] = self.node_key
        reply = await self.ctx.post(endpoint, body, self.node_key)
        if reply.node_invalid:
            self.enrolled.clear()
            await self.enroll()
        return reply.body

    # ------------------------------------------------------------------ config

    async def fetch_config(self) -> None:
        config = await self._authed("config", {})
        if config is not None:
            self.schedule = schedule_names(config)

    # ------------------------------------------------------------------ distributed

    async def _answer(self, name: str, sql: str, discovery: str | None) -> tuple[list[dict[str, str]], str] | None:
        """``(rows, error)`` for one query, or None when its discovery query says skip it."""
        templates = self.ctx.templates
        if name.startswith(LIVE_PREFIX):
            self.ctx.stats.live_queries_answered += 1
            return live_rows(self.ident, self.ctx.options.live_rows), ""
        if discovery and discovery.strip().rstrip(";").strip().upper() != "SELECT 1":
            found, error = await templates.rows(discovery)
            if error or not found:
                return None
        rows, error = await templates.rows(sql)
        if error:
            return [], error
        cap = self.ctx.options.software_rows
        if cap >= 0 and name.startswith(SOFTWARE_PREFIX):
            rows = rows[:cap]
        return [vary_row(row, self.ident) for row in rows] if templates.needs_vary(sql) else rows, ""

    async def distributed_once(self) -> None:
        reply = await self._authed("distributed_read", {})
        if reply is None:
            return
        accelerate = reply.get("accelerate")
        if isinstance(accelerate, int) and not isinstance(accelerate, bool) and accelerate > 0:
            self.accelerate_until = time.monotonic() + accelerate
        queries = reply.get("queries")
        if not isinstance(queries, dict) or not queries:
            self.quiet = True
            self.ctx.stats.empty_reads += 1
            return
        self.quiet = False
        discovery = reply.get("discovery") if isinstance(reply.get("discovery"), dict) else {}
        results: dict[str, Any] = {}
        statuses: dict[str, int] = {}
        messages: dict[str, str] = {}
        stats: dict[str, Any] = {}
        for name, sql in queries.items():
            answer = await self._answer(str(name), str(sql), (discovery or {}).get(name))
            if answer is None:
                continue
            rows, error = answer
            results[name], statuses[name], messages[name] = rows, (1 if error else 0), error
            stats[name] = {"wall_time_ms": 1, "user_time": 0, "system_time": 0, "memory": 0}
        self.ctx.stats.queries_answered += len(results)
        await self._authed("distributed_write", {"queries": results, "statuses": statuses,
                                                 "messages": messages, "stats": stats})

    def _distributed_sleep(self) -> float:
        interval = self.ctx.options.query_interval
        if time.monotonic() < self.accelerate_until:
            return min(interval, ACCELERATED_INTERVAL)
        return interval

    # ------------------------------------------------------------------ logs

    def _result_lines(self, count: int) -> list[dict[str, Any]]:
        now = int(time.time())
        ident = self.ident
        name, snapshot = (self.schedule[self.counter % len(self.schedule)] if self.schedule
                          else (DEFAULT_LOG_QUERY, False))
        self.counter += 1
        rows = [{"cmdline": f"/usr/sbin/simd --worker {i}", "name": f"simd-{i % 7}", "path": "/usr/sbin/simd",
                 "pid": str(1000 + (self.counter * 31 + i) % 30000), "resident_size": str(4096 * (i + 1)),
                 "uid": str(i % 3)} for i in range(count)]
        common = {"name": name, "hostIdentifier": ident.uuid, "calendarTime": calendar_time(now), "unixTime": now,
                  "epoch": 0, "counter": 0 if snapshot else self.counter, "numerics": False,
                  "decorations": {"host_uuid": ident.uuid, "hostname": ident.hostname}}
        if snapshot:
            return [dict(common, snapshot=rows, action="snapshot")]
        return [dict(common, columns=row, action="added") for row in rows]

    async def send_logs(self) -> None:
        self.buffered_rows = min(self.buffered_rows + self.ctx.options.log_rows, MAX_BUFFERED_ROWS)
        count = min(self.buffered_rows, MAX_LINES_PER_REQUEST)
        if count <= 0:
            return
        lines = self._result_lines(count)
        reply = await self._authed("log", {"log_type": "result", "data": lines})
        if reply is not None:
            self.buffered_rows -= count
            self.ctx.stats.log_lines_sent += len(lines)
            self.ctx.stats.log_rows_sent += count

    async def send_status(self, message: str) -> None:
        now = int(time.time())
        line = {"hostIdentifier": self.ident.uuid, "calendarTime": calendar_time(now), "unixTime": now,
                "severity": 0, "filename": "sim.cpp", "line": 1, "message": message, "version": OSQUERY_VERSION,
                "decorations": {"host_uuid": self.ident.uuid, "hostname": self.ident.hostname}}
        await self._authed("log", {"log_type": "status", "data": [line]})

    # ------------------------------------------------------------------ loops

    async def _config_loop(self) -> None:
        while True:
            await asyncio.sleep(self.ctx.options.config_interval)
            await self.fetch_config()

    async def _distributed_loop(self) -> None:
        while True:
            await asyncio.sleep(self._distributed_sleep())
            await self.distributed_once()

    async def _log_loop(self) -> None:
        while True:
            await asyncio.sleep(self.ctx.options.log_interval)
            await self.send_logs()

    async def run(self, delay: float) -> None:
        """Start after ``delay`` seconds; runs until cancelled."""
        await asyncio.sleep(delay)
        if not await self.enroll():
            return
        await self.fetch_config()
        await self.send_status("hostql sim agent started")
        await self.distributed_once()
        loops = [self._distributed_loop()]
        if self.ctx.options.config_interval > 0:
            loops.append(self._config_loop())
        if self.ctx.options.log_interval > 0 and self.ctx.options.log_rows > 0:
            loops.append(self._log_loop())
        await asyncio.gather(*loops)
