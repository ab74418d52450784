"""Running one scheduled query: execute, measure, diff, format, store.

The new diff state and the log lines it produced are written in one store
transaction (see docs/agent-internals.md), so a crash at any point neither
loses nor repeats a result line.
"""

from __future__ import annotations

import logging
import os
import resource
import time
from typing import Any

from hostql.agent.config import ScheduledQuery
from hostql.agent.decorators import Decorations
from hostql.agent.denylist import EXECUTING_QUERY
from hostql.agent.differ import QueryState, compute
from hostql.agent.flags import FlagValues
from hostql.agent.logformat import (
    LineContext,
    batch_line,
    event_lines,
    snapshot_event_lines,
    snapshot_line,
)
from hostql.agent.stats import ScheduledQueryStats
from hostql.agent.store import CONFIGURATIONS, QUERIES, Store
from hostql.sql.connection import Connection, QueryError

log = logging.getLogger(__name__)

RESULT = "result"
SNAPSHOT = "snapshot"


def resident_bytes() -> int:
    """This process's resident memory, from /proc (0 where unavailable)."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _cpu_ms() -> tuple[int, int]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return int(usage.ru_utime * 1000), int(usage.ru_stime * 1000)


def storable(value: Any) -> Any:
    """Row values as the diff store keeps them: JSON types only."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return value


class Runner:
    """Runs scheduled queries on one connection and queues their log lines."""

    def __init__(self, conn: Connection, store: Store, flags: FlagValues, decorations: Decorations,
                 host_identifier: str, sinks: list[str]) -> None:
        self.conn = conn
        self.store = store
        self.flags = flags
        self.decorations = decorations
        self.host_identifier = host_identifier
        self.sinks = sinks
        self.stats: dict[str, ScheduledQueryStats] = {}
        # Set when the watcher stops the worker for its limits: the running
        # query is abandoned and stays marked as executing, so the next worker
        # denylists it (see denylist.py).
        self.abandon = False

    def stats_for(self, query: ScheduledQuery) -> ScheduledQueryStats:
        stats = self.stats.get(query.name)
        if stats is None:
            stats = self.stats[query.name] = ScheduledQueryStats(query.name, query.query, query.interval)
        stats.query, stats.interval = query.query, query.interval
        return stats

    def run(self, query: ScheduledQuery, now: int | None = None) -> int:
        """Run ``query``; returns how many log lines it queued (-1 on a SQL error)."""
        now = int(time.time()) if now is None else now
        stats = self.stats_for(query)
        self.decorations.before_query()
        memory_before = resident_bytes()
        user_before, system_before = _cpu_ms()
        started = time.monotonic()
        self.store.put(CONFIGURATIONS, EXECUTING_QUERY, query.name)
        try:
            result = self.conn.execute(query.query)
        except QueryError as exc:
            if self.abandon:
                return -1
            log.warning("Error executing scheduled query %s: %s", query.name, exc)
            self.store.delete(CONFIGURATIONS, EXECUTING_QUERY)
            return -1
        finally:
            self._record(stats, now, started, user_before, system_before, memory_before)
        self.store.delete(CONFIGURATIONS, EXECUTING_QUERY)
        rows = [{c: storable(v) for c, v in zip(result.columns, row)} for row in result.rows]
        stats.output_size += sum(len(k) + len(str(v)) for row in rows for k, v in row.items())
        if query.snapshot:
            return self._snapshot(query, rows, now)
        return self._differential(query, rows, now)

    def _record(self, stats: ScheduledQueryStats, now: int, started: float, user_before: int,
                system_before: int, memory_before: int) -> None:
        wall_ms = int((time.monotonic() - started) * 1000)
        user, system = _cpu_ms()
        memory = max(resident_bytes() - memory_before, 0)
        stats.executions += 1
        stats.last_executed = now
        stats.wall_time += wall_ms // 1000
        stats.wall_time_ms += wall_ms
        stats.last_wall_time_ms = wall_ms
        stats.last_user_time = max(user - user_before, 0)
        stats.last_system_time = max(system - system_before, 0)
        stats.user_time += stats.last_user_time
        stats.system_time += stats.last_system_time
        stats.last_memory = memory
        stats.average_memory = (stats.average_memory * (stats.executions - 1) + memory) // stats.executions

    def _context(self, query: ScheduledQuery, now: int, epoch: int, counter: int) -> LineContext:
        return LineContext(
            name=query.name,
            host_identifier=self.host_identifier,
            unix_time=now,
            epoch=epoch,
            counter=counter,
            numerics=bool(self.flags.get("logger_numerics")),
            decorations=self.decorations.current(),
            decorations_top_level=bool(self.flags.get("decorations_top_level")),
        )

    def _snapshot(self, query: ScheduledQuery, rows: list[dict[str, Any]], now: int) -> int:
        epoch = int(self.flags.get("schedule_epoch"))
        ctx = self._context(query, now, epoch, 0)
        nullvalue = str(self.flags.get("nullvalue"))
        if self.flags.get("logger_snapshot_event_type"):
            lines = snapshot_event_lines(ctx, rows, nullvalue)
        else:
            lines = [snapshot_line(ctx, rows, nullvalue)]
        with self.store.transaction():
            self.store.enqueue(self.sinks, SNAPSHOT, lines)
        return len(lines)

    def _differential(self, query: ScheduledQuery, rows: list[dict[str, Any]], now: int) -> int:
        epoch = int(self.flags.get("schedule_epoch"))
        nullvalue = str(self.flags.get("nullvalue"))
        with self.store.transaction():
            stored = self.store.get(QUERIES, query.name)
            previous = QueryState.from_json(stored) if stored else None
            diff, state = compute(previous, rows, epoch)
            if not diff.changed:
                return 0
            removed = diff.removed if query.removed else []
            ctx = self._context(query, now, state.epoch, diff.counter)
            if self.flags.get("logger_event_type"):
                lines = event_lines(ctx, removed, diff.added, nullvalue)
            else:
                lines = [batch_line(ctx, removed, diff.added, nullvalue)] if (removed or diff.added) else []
            self.store.put(QUERIES, query.name, state.to_json())
            self.store.enqueue(self.sinks, RESULT, lines)
        return len(lines)
