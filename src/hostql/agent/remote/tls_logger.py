"""The ``tls`` logger: uploads buffered result and status lines to the server.

Lines wait in the store's outbox (sink ``tls``).  Every ``--logger_tls_period``
seconds :meth:`TLSLogger.step` takes up to ``--logger_tls_max_lines`` of them
and sends results (kinds ``result`` and ``snapshot``, as ``log_type:
"result"``) and statuses in separate requests::

    {"node_key": "...", "log_type": "result", "data": [{...}, {...}]}

A line is removed from the outbox only once the server accepted the request
that carried it, so lines survive an unreachable server and a restart.  After
``n`` failed uploads in a row the next one waits ``period * n^2`` seconds
(capped at ``--logger_tls_backoff_max``).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from typing import Any

from hostql.agent.flags import FlagValues
from hostql.agent.remote.client import BodyBuilder, RemoteClient
from hostql.agent.remote.transport import RemoteError, flag_bool, flag_int, flag_str
from hostql.agent.store import Store

log = logging.getLogger(__name__)

SINK = "tls"
RESULT_KINDS = frozenset({"result", "snapshot"})

Batch = Sequence[tuple[int, str, str]]


def log_body(log_type: str, data: list[Any]) -> BodyBuilder:
    return lambda key: {"node_key": key, "log_type": log_type, "data": data}


class TLSLogger:
    """A Logger (agent-internals.md) that forwards outbox lines to the TLS server."""

    name = SINK

    def __init__(self, flags: FlagValues, client: RemoteClient, store: Store | None = None) -> None:
        self.flags = flags
        self.client = client
        self.store = store
        self.failures = 0  # failed uploads in a row
        # Ids the server has acknowledged (or that were dropped) but that the
        # caller has not marked delivered yet: never sent twice.
        self._done: set[int] = set()
        self._lock = threading.Lock()

    # the Logger interface

    def deliver(self, batch: Batch) -> bool:
        """Send ``batch``; True when every line was accepted (or dropped as unsendable)."""
        with self._lock:
            ok = True
            for log_type, kinds in (("result", RESULT_KINDS), ("status", frozenset({"status"}))):
                rows = [row for row in batch if row[1] in kinds and row[0] not in self._done]
                if log_type == "status" and flag_bool(self.flags, "tls_disable_status_log"):
                    self._done.update(row[0] for row in rows)
                    continue
                ok = self._send(log_type, rows) and ok
            self.failures = 0 if ok else self.failures + 1
            if ok:
                self._done.difference_update(row[0] for row in batch)
            return ok

    def recover(self, pending: Batch) -> list[int]:
        # Nothing to compare against: the server's acknowledgements are not
        # kept, so an unacknowledged batch is sent again (as osquery does).
        return []

    def close(self) -> None:
        self.client.close()

    # driving it from the outbox

    def step(self) -> bool:
        """One upload round from the store's outbox; True if nothing failed."""
        if self.store is None:
            raise RuntimeError("TLSLogger.step needs a store")
        keep = flag_int(self.flags, "buffered_log_max")
        purged = self.store.purge_oldest(SINK, keep)
        if purged:
            log.warning("TLS logger buffer over --buffered_log_max=%d: dropped the %d oldest lines", keep, purged)
        batch = self.store.pending(SINK, limit=max(flag_int(self.flags, "logger_tls_max_lines"), 1))
        if not batch:
            return True
        ok = self.deliver(batch)
        ids = [row[0] for row in batch]
        with self._lock:
            finished = ids if ok else [i for i in ids if i in self._done]
            self._done.difference_update(finished)
        self.store.delivered(finished)
        return ok

    def next_interval(self) -> float:
        """Seconds until the next :meth:`step`, with the failure backoff applied."""
        period = max(flag_int(self.flags, "logger_tls_period"), 1)
        cap = flag_int(self.flags, "logger_tls_backoff_max")
        if self.failures == 0 or cap <= 0:
            return float(period)
        return float(min(period * self.failures * self.failures, max(cap, period)))

    def run(self, stop: threading.Event) -> None:
        """Upload until ``stop`` is set (the daemon's logger thread)."""
        while not stop.wait(self.next_interval()):
            try:
                self.step()
            except Exception:  # a bug here must not end log forwarding for good
                log.exception("TLS logger step failed")

    # one request

    def _send(self, log_type: str, rows: Sequence[tuple[int, str, str]]) -> bool:
        max_lines = max(flag_int(self.flags, "logger_tls_max_lines"), 1)
        for start in range(0, len(rows), max_lines):
            chunk = rows[start : start + max_lines]
            data: list[Any] = []
            for row_id, _, line in chunk:
                obj = self._parse(line)
                if obj is None:
                    self._done.add(row_id)
                else:
                    data.append(obj)
            if not data:
                continue
            try:
                self.client.call(
                    flag_str(self.flags, "logger_tls_endpoint"),
                    log_body(log_type, data),
                    1,
                    compress=flag_bool(self.flags, "logger_tls_compress"),
                )
            except RemoteError as exc:
                log.warning("TLS logger could not send %d %s lines: %s", len(data), log_type, exc)
                return False
            self._done.update(row_id for row_id, _, _ in chunk)
        return True

    def _parse(self, line: str) -> Any:
        limit = flag_int(self.flags, "logger_tls_max_linesize")
        size = len(line.encode("utf-8"))
        if limit > 0 and size > limit:
            log.warning("TLS logger dropped a %d-byte line over --logger_tls_max_linesize=%d", size, limit)
            return None
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            log.warning("TLS logger dropped a line that is not JSON: %.80s", line)
            return None
