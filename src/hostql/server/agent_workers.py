"""The worker threads agent requests run their blocking work in, apart from the API's.

Agent traffic (enroll, config, logs, distributed reads and writes) is thousands of
small transactions that SQLite serialises on one write lock.  In the shared pool of
40 threads they all queued on that lock, each holder got a fortieth of the GIL (so
held the lock forty times longer), and every API request (a login, a live-query
campaign, its WebSocket's set-up) waited behind them for a free thread.  A few
threads of their own give the same agent throughput (the writes are serial
anyway) and leave the shared pool to the API; reads and writes each have their
own few, so reads never queue behind writes.  With SQLite, whose writers are serial
anyway, writes get one thread (:data:`SQLITE_WRITE_WORKERS`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import anyio.to_thread
from anyio import CapacityLimiter

T = TypeVar("T")

AGENT_WORKERS = 8  # threads for agent reads, and as many again for agent writes
# SQLite has one writer: more write threads only wait for its lock and contend for the GIL
# (result logs of saved queries: 62,000 rows per server-CPU-second with 8 threads and a p99 of
# 102 ms, 78,000 and 19 ms with one).
SQLITE_WRITE_WORKERS = 1
READS, WRITES = "read", "write"
_KEYS = {READS: "agent_read_workers", WRITES: "agent_write_workers"}


def workers_for(state: Any, kind: str) -> int:
    """How many threads ``kind`` of agent work gets in ``state``'s server."""
    backend = getattr(getattr(state, "database", None), "backend", "")
    return SQLITE_WRITE_WORKERS if kind == WRITES and backend == "sqlite" else AGENT_WORKERS


def limiter_for(extras: dict[str, Any], kind: str = READS, workers: int = AGENT_WORKERS) -> CapacityLimiter:
    """The limiter of ``kind`` (made with ``workers`` threads on first use)."""
    key = _KEYS[kind]
    limiter = extras.get(key)
    if not isinstance(limiter, CapacityLimiter):
        limiter = extras.setdefault(key, CapacityLimiter(workers))
    return limiter


async def run_for_agent(state: Any, func: Callable[..., T], *args: Any, kind: str = READS) -> T:
    """``func(*args)`` in one of the agent worker threads of ``state`` for ``kind`` of work.

    Reads (identifying a host, its distributed read, its config) and writes (enroll, logs,
    distributed writes) have threads of their own: with SQLite every writer waits for the
    one write lock, and a read queued behind them waited for nothing it needed (a live
    query then reached its agents only as fast as log writes were committed)."""
    limiter = limiter_for(state.extras, kind, workers_for(state, kind))
    return await anyio.to_thread.run_sync(functools.partial(func, *args), limiter=limiter)
