"""The agent's local state: one SQLite file in WAL mode.

Everything that must survive a crash lives here: node key, diff state, splayed
intervals, the denylist, pending distributed work, and an outbox of log lines
not yet delivered to each logger.  A scheduled run stores its new diff state
and its log lines in one transaction, so a ``kill -9`` at any moment leaves
either both or neither.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    domain TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (domain, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sink TEXT NOT NULL,
    kind TEXT NOT NULL,
    line TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_sink ON outbox (sink, kind, id);
"""

# osquery's RocksDB column families, kept as domain names.
CONFIGURATIONS = "configurations"
QUERIES = "queries"
DISTRIBUTED = "distributed"
DISTRIBUTED_RUNNING = "distributed_running"
QUERY_PERFORMANCE = "query_performance"


class StoreError(RuntimeError):
    """The state file cannot be opened or written."""


class Store:
    """Key-value domains plus a per-sink outbox of log lines."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL is durable against a process crash in WAL mode; only an OS
            # crash could lose the last transaction.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open the state store {self.path}: {exc}") from exc
        self._lock = threading.RLock()
        self._depth = 0

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[Store]:
        """Group writes so they land together or not at all."""
        with self._lock:
            outer = self._depth == 0
            if outer:
                self._db.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield self
            except BaseException:
                self._depth -= 1
                if outer:
                    self._db.execute("ROLLBACK")
                raise
            self._depth -= 1
            if outer:
                self._db.execute("COMMIT")

    # key-value domains

    def get(self, domain: str, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM kv WHERE domain = ? AND key = ?", (domain, key)).fetchone()
        return None if row is None else str(row[0])

    def put(self, domain: str, key: str, value: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO kv (domain, key, value) VALUES (?, ?, ?) "
                "ON CONFLICT (domain, key) DO UPDATE SET value = excluded.value",
                (domain, key, value),
            )

    def delete(self, domain: str, key: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM kv WHERE domain = ? AND key = ?", (domain, key))

    def items(self, domain: str, prefix: str = "") -> list[tuple[str, str]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT key, value FROM kv WHERE domain = ? AND substr(key, 1, ?) = ? ORDER BY key",
                (domain, len(prefix), prefix),
            ).fetchall()
        return [(str(k), str(v)) for k, v in rows]

    # outbox

    def enqueue(self, sinks: list[str], kind: str, lines: list[str]) -> None:
        """Queue ``lines`` for each sink; call inside the run's transaction."""
        if not lines:
            return
        with self.transaction():
            self._db.executemany(
                "INSERT INTO outbox (sink, kind, line) VALUES (?, ?, ?)",
                [(sink, kind, line) for sink in sinks for line in lines],
            )

    def pending(self, sink: str, kind: str | None = None, limit: int = 1024) -> list[tuple[int, str, str]]:
        """Oldest undelivered lines of ``sink``: (id, kind, line)."""
        with self._lock:
            if kind is None:
                rows = self._db.execute(
                    "SELECT id, kind, line FROM outbox WHERE sink = ? ORDER BY id LIMIT ?", (sink, limit)
                ).fetchall()
            else:
                rows = self._db.execute(
                    "SELECT id, kind, line FROM outbox WHERE sink = ? AND kind = ? ORDER BY id LIMIT ?",
                    (sink, kind, limit),
                ).fetchall()
        return [(int(i), str(k), str(line)) for i, k, line in rows]

    def delivered(self, ids: list[int]) -> None:
        if not ids:
            return
        # One transaction for the batch: in autocommit mode every DELETE would
        # be its own commit, about 70 us each.
        with self.transaction():
            self._db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in ids])

    def pending_count(self, sink: str) -> int:
        with self._lock:
            row = self._db.execute("SELECT count(*) FROM outbox WHERE sink = ?", (sink,)).fetchone()
        return int(row[0])

    def purge_oldest(self, sink: str, keep: int) -> int:
        """Drop the oldest lines of ``sink`` beyond ``keep``; returns how many."""
        if keep <= 0:
            return 0
        with self._lock:
            cursor = self._db.execute(
                "DELETE FROM outbox WHERE sink = ? AND id NOT IN "
                "(SELECT id FROM outbox WHERE sink = ? ORDER BY id DESC LIMIT ?)",
                (sink, sink, keep),
            )
        return cursor.rowcount
