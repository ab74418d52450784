"""Distributed (ad-hoc) queries over the TLS API: read, run, write.

:meth:`Distributed.step` is one round: POST ``{"node_key"}`` to the read
endpoint, check the answer by osquery's rules (any bad type, or a discovery
query that fails, rejects the whole answer), keep the accepted queries in the
store (domain ``distributed``), run them in id order through the SQL
connection, and POST every result to the write endpoint.  Results the server
did not take stay in memory and go out with the next round.

Crash protection: before a query runs, the SHA-256 of its SQL is written to
domain ``distributed_running`` and removed when it finishes.  If the process
died in between, the entry is still there on the next start and the same SQL
is refused for ``--distributed_denylist_duration`` seconds.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psutil

from hostql.agent.flags import FlagValues
from hostql.agent.logformat import log_value
from hostql.agent.remote.client import BodyBuilder, RemoteClient
from hostql.agent.remote.enroll import QueryRunner
from hostql.agent.remote.transport import RemoteError, flag_bool, flag_int, flag_str
from hostql.agent.store import CONFIGURATIONS, DISTRIBUTED, DISTRIBUTED_RUNNING, Store
from hostql.sql.connection import QueryError

log = logging.getLogger(__name__)

ACCELERATE_KEY = "distributed_accelerate_checkins_expire"
ACCELERATED_INTERVAL = 5
DENYLISTED = "distributed query is denylisted"


class RejectedWork(ValueError):
    """A read response that breaks the protocol's rules; none of it is run."""


@dataclass
class Outcome:
    """One query's answer as the write endpoint takes it."""

    rows: list[dict[str, str]] = field(default_factory=list)
    status: int = 0
    message: str = ""
    stats: dict[str, int] = field(default_factory=dict)


def sql_digest(sql: str) -> str:
    return hashlib.sha256(sql.encode("utf-8")).hexdigest()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _string_map(body: dict[str, Any], key: str) -> dict[str, str]:
    value = body.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RejectedWork(f"'{key}' is not an object")
    for name, sql in value.items():
        if not name or not isinstance(sql, str) or not sql:
            raise RejectedWork(f"'{key}' entry {name!r} is not a non-empty string")
    return dict(value)


class Distributed:
    """The distributed query loop's work, one :meth:`step` at a time."""

    def __init__(
        self,
        flags: FlagValues,
        client: RemoteClient,
        runner: QueryRunner,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.flags = flags
        self.client = client
        self.runner = runner
        self.store = store
        self._clock = clock
        self._process = psutil.Process()
        # Results not yet accepted by the write endpoint, by query id.
        self.unsent: dict[str, Outcome] = {}

    # the loop

    def step(self) -> None:
        """Read new work, run everything pending, write every result not yet sent."""
        if flag_bool(self.flags, "disable_distributed"):
            return
        try:
            self.read()
        except (RemoteError, RejectedWork) as exc:
            log.warning("distributed read failed: %s", exc)
        self.run_pending()
        if self.unsent:
            self.write()

    def next_interval(self) -> float:
        """Seconds to sleep: 5 while an ``accelerate`` period lasts, else --distributed_interval."""
        expires = self.store.get(CONFIGURATIONS, ACCELERATE_KEY)
        if expires and expires.isdigit() and self._clock() < int(expires):
            return float(ACCELERATED_INTERVAL)
        return float(max(flag_int(self.flags, "distributed_interval"), 1))

    # read

    def read(self) -> list[str]:
        """Fetch, check and store new queries; returns the accepted ids."""
        response = self.client.call(
            flag_str(self.flags, "distributed_tls_read_endpoint"),
            lambda key: {"node_key": key},
            flag_int(self.flags, "distributed_tls_max_attempts"),
        )
        return self.accept(response.body)

    def accept(self, body: dict[str, Any]) -> list[str]:
        """Apply osquery's rules to a read response and store what may run."""
        queries = _string_map(body, "queries")
        discovery = _string_map(body, "discovery")
        accelerate = body.get("accelerate")
        if accelerate is not None and not _is_int(accelerate):
            raise RejectedWork("'accelerate' is not an integer")
        accepted: dict[str, str] = {}
        for query_id, sql in queries.items():
            probe = discovery.get(query_id)
            if probe is not None:
                try:
                    found = self.runner.execute(probe).rows
                except QueryError as exc:
                    raise RejectedWork(f"discovery query of {query_id!r} failed: {exc}") from None
                if not found:
                    continue
            accepted[query_id] = sql
        with self.store.transaction():
            for query_id, sql in accepted.items():
                self.store.put(DISTRIBUTED, query_id, sql)
            if accelerate is not None and accelerate > 0:
                self.store.put(CONFIGURATIONS, ACCELERATE_KEY, str(int(self._clock()) + accelerate))
        return list(accepted)

    # run

    def run_pending(self) -> None:
        """Run every stored query (new ones and any left by a crash), in id order."""
        for query_id, sql in self.store.items(DISTRIBUTED):
            self.unsent[query_id] = self.run_one(query_id, sql)
            self.store.delete(DISTRIBUTED, query_id)

    def run_one(self, query_id: str, sql: str) -> Outcome:
        digest = sql_digest(sql)
        now = int(self._clock())
        started = self.store.get(DISTRIBUTED_RUNNING, digest)
        if started is not None:
            duration = flag_int(self.flags, "distributed_denylist_duration")
            if started.isdigit() and now - int(started) < duration:
                log.warning("distributed query %s is denylisted: it was running when the agent stopped", query_id)
                return Outcome(status=1, message=DENYLISTED)
            self.store.delete(DISTRIBUTED_RUNNING, digest)
        if flag_bool(self.flags, "distributed_loginfo"):
            log.info("executing distributed query %s: %s", query_id, sql)
        self.store.put(DISTRIBUTED_RUNNING, digest, str(now))
        try:
            return self._execute(sql)
        finally:
            self.store.delete(DISTRIBUTED_RUNNING, digest)

    def _execute(self, sql: str) -> Outcome:
        wall = time.perf_counter()
        cpu = os.times()
        memory = self._rss()
        try:
            result = self.runner.execute(sql)
        except QueryError as exc:
            return Outcome(status=1, message=str(exc))
        after = os.times()
        rows = [
            {column: str(log_value(value, False)) for column, value in zip(result.columns, row)}
            for row in result.rows
        ]
        stats = {
            "wall_time_ms": int((time.perf_counter() - wall) * 1000),
            "user_time": int((after.user - cpu.user) * 1000),
            "system_time": int((after.system - cpu.system) * 1000),
            "memory": max(self._rss() - memory, 0),
        }
        return Outcome(rows=rows, stats=stats)

    def _rss(self) -> int:
        try:
            return int(self._process.memory_info().rss)
        except psutil.Error:
            return 0

    # write

    def write(self) -> bool:
        """Send every unsent result in one request; on failure keep them for next time."""
        batch = dict(self.unsent)
        try:
            self.client.call(
                flag_str(self.flags, "distributed_tls_write_endpoint"),
                write_body(batch),
                flag_int(self.flags, "distributed_tls_max_attempts"),
            )
        except RemoteError as exc:
            log.warning("distributed write of %d results failed (kept for the next round): %s", len(batch), exc)
            return False
        for query_id, outcome in batch.items():
            if self.unsent.get(query_id) is outcome:
                del self.unsent[query_id]
        return True


def write_body(batch: dict[str, Outcome]) -> BodyBuilder:
    """The write request for ``batch``, with ``node_key`` last as osquery sends it."""

    def build(key: str) -> dict[str, Any]:
        return {
            "queries": {qid: out.rows for qid, out in batch.items()},
            "statuses": {qid: out.status for qid, out in batch.items()},
            "messages": {qid: out.message for qid, out in batch.items()},
            "stats": {qid: out.stats for qid, out in batch.items()},
            "node_key": key,
        }

    return build
