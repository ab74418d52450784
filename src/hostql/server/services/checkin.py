"""The agent check-in hot path: node-key lookups from memory, seen times in batches.

Every authenticated osquery request needs the host behind its node key and
must move the host's "seen time".  Doing both in the database would cost a
SELECT and an UPDATE per agent per ``distributed_interval``; instead

* :class:`HostCache` keeps detached :class:`Host` rows by node key for
  ``host_cache_ttl`` seconds (default 300: every change made through this
  process, or announced over Redis by another, drops an entry at once, so the
  TTL only bounds changes made behind the server's back; at 30 s every host
  missed it every third read, a tenth of the server's time at 3,000 hosts).  Entries are dropped when the host
  is deleted, changed through an ORM flush, or re-enrolls (its old key stops
  working at once), from any code in this process: Session event listeners
  watch for Host deletes/updates, and drop the entries again once the change
  is committed (a lookup running between flush and commit still reads the old
  row and may have cached it).  Committed changes are also announced on the
  pub/sub (``PubSub.announce_host_changes``), so other server instances
  sharing Redis drop them at once too; without Redis there is one instance.
* :class:`SeenTimes` collects ``host id -> time`` in memory; a background
  thread flushes them every ``seen_time_flush_interval`` seconds (default 5)
  in one bulk UPDATE, and :func:`shutdown` flushes the rest.

So a ``distributed/read`` with nothing to send runs no SQL write at all.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, bindparam, event, select, update
from sqlalchemy.orm import ORMExecuteState, Session

from hostql.server.state import ServerState
from hostql.server.storage.models import Host, utcnow

if TYPE_CHECKING:
    from hostql.server.services.distributed import Intervals

SKIP_INVALIDATION = "hostql_seen_time_flush"
CHANGED_HOSTS = "hostql_changed_hosts"  # session.info key: host ids flushed, not yet committed
ALL_HOSTS = -1  # in that set: a bulk statement changed hosts we cannot name
_CACHES: weakref.WeakSet[HostCache] = weakref.WeakSet()
log = logging.getLogger(__name__)


class CachedHost:
    """A cache entry: the detached host, when it was read, and until when its reads are quiet."""

    __slots__ = ("cached_at", "host", "quiet_until", "sets_generation")

    def __init__(self, cached_at: float, host: Host) -> None:
        self.cached_at = cached_at
        self.host = host
        # Set by the read path (distributed.quiet_until) for this label/policy sets generation; a
        # changed host is a new entry, so it never outlives the row it was computed from.
        self.quiet_until: datetime | None = None
        self.sets_generation = -1


INVALIDATIONS_KEPT = 200_000  # per-host/per-key invalidation marks kept before they are all forgotten


class HostCache:
    """node key -> detached Host, with a TTL and invalidation by host id."""

    def __init__(self, ttl: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._by_key: dict[str, CachedHost] = {}
        self._keys_by_host: dict[int, set[str]] = {}  # so invalidating one host does not scan every entry
        # Bumped by every invalidation: a lookup that began before an invalidation of its
        # host or key (or a clear) must not put what it read (possibly a host deleted
        # meanwhile) back in the cache.  Remembered per host and key: with one global
        # check, thousands of hosts writing meant almost no lookup was ever cached.
        self.generation = 0
        self._host_invalidated: dict[int, int] = {}
        self._key_invalidated: dict[str, int] = {}
        self._cleared_at = 0
        self.hits = 0
        self.misses = 0
        # Called with committed changes (host ids, or None for all) to tell other instances.
        self.announce: Callable[[set[int] | None], None] | None = None
        # Only sessions on this engine invalidate the cache (None: every session), so two
        # server states in one process behave like two processes.
        self.engine: Any = None
        _CACHES.add(self)

    def get(self, node_key: str) -> Host | None:
        entry = self.entry(node_key)
        return None if entry is None else entry.host

    def entry(self, node_key: str) -> CachedHost | None:
        with self._lock:
            entry = self._by_key.get(node_key)
            if entry is None or self._clock() - entry.cached_at > self.ttl:
                if entry is not None:
                    self._drop(node_key)
                self.misses += 1
                return None
            self.hits += 1
            return entry

    def put(self, node_key: str, host: Host, generation: int | None = None) -> None:
        """Cache ``host``; ``generation`` is :attr:`generation` read before the lookup."""
        if self.ttl <= 0:
            return
        with self._lock:
            if generation is not None and self._invalidated_since(generation, node_key, host.id):
                return
            self._drop(node_key)
            self._by_key[node_key] = CachedHost(self._clock(), host)
            self._keys_by_host.setdefault(host.id, set()).add(node_key)

    def invalidate_host(self, host_id: int) -> None:
        with self._lock:
            self._bump()
            self._host_invalidated[host_id] = self.generation
            for key in self._keys_by_host.pop(host_id, ()):
                self._by_key.pop(key, None)

    def invalidate_key(self, node_key: str) -> None:
        with self._lock:
            self._bump()
            self._key_invalidated[node_key] = self.generation
            self._drop(node_key)

    def clear(self) -> None:
        with self._lock:
            self._bump()
            self._cleared_at = self.generation
            self._by_key.clear()
            self._keys_by_host.clear()

    def _bump(self) -> None:
        self.generation += 1
        if len(self._host_invalidated) + len(self._key_invalidated) > INVALIDATIONS_KEPT:
            # Forgetting which hosts were invalidated is safe if every lookup in flight is
            # treated as stale: as a clear would.
            self._host_invalidated.clear()
            self._key_invalidated.clear()
            self._cleared_at = self.generation

    def _invalidated_since(self, generation: int, node_key: str, host_id: int) -> bool:
        return (self._cleared_at > generation or self._host_invalidated.get(host_id, -1) > generation
                or self._key_invalidated.get(node_key, -1) > generation)

    def __len__(self) -> int:
        return len(self._by_key)

    def _drop(self, node_key: str) -> None:
        entry = self._by_key.pop(node_key, None)
        if entry is not None:
            keys = self._keys_by_host.get(entry.host.id)
            if keys is not None:
                keys.discard(node_key)
                if not keys:
                    del self._keys_by_host[entry.host.id]

    def forget(self, host_ids: set[int] | None) -> None:
        """Drop ``host_ids`` (None: everything)."""
        if host_ids is None:
            self.clear()
        else:
            for host_id in host_ids:
                self.invalidate_host(host_id)


def _invalidate_everywhere(session: Session, host_ids: set[int] | None, *, committed: bool = False) -> None:
    for cache in list(_CACHES):
        if cache.engine is not None and cache.engine is not session.bind:
            continue
        cache.forget(host_ids)
        if committed and cache.announce is not None:
            try:
                cache.announce(host_ids)
            except Exception as exc:  # the change is committed; other instances catch up within the TTL
                log.warning("could not tell other server instances that hosts changed: %s", exc)


def _remember_changes(session: Session, host_ids: set[int]) -> None:
    session.info.setdefault(CHANGED_HOSTS, set()).update(host_ids)


@event.listens_for(Session, "after_flush")
def _after_flush(session: Session, context: Any) -> None:
    changed = {obj.id for obj in list(session.deleted) + list(session.dirty)
               if isinstance(obj, Host) and obj.id is not None}
    if changed:
        _invalidate_everywhere(session, changed)
        _remember_changes(session, changed)


@event.listens_for(Session, "do_orm_execute")
def _bulk_statements(orm_state: ORMExecuteState) -> None:
    if not (orm_state.is_update or orm_state.is_delete):
        return
    if orm_state.execution_options.get(SKIP_INVALIDATION):
        return
    mapper = orm_state.bind_mapper
    if mapper is not None and mapper.class_ is Host:
        _invalidate_everywhere(orm_state.session, None)
        _remember_changes(orm_state.session, {ALL_HOSTS})


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    # Until the commit, other connections still read the old row: drop what they cached meanwhile.
    changed: set[int] | None = session.info.pop(CHANGED_HOSTS, None)
    if changed:
        _invalidate_everywhere(session, None if ALL_HOSTS in changed else changed, committed=True)


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(CHANGED_HOSTS, None)  # nothing changed after all


class SeenTimes:
    """Pending seen times, flushed in bulk."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[int, datetime] = {}

    def mark(self, host_id: int, when: datetime) -> None:
        with self._lock:
            current = self._pending.get(host_id)
            if current is None or when > current:
                self._pending[host_id] = when

    def pending(self, host_id: int) -> datetime | None:
        with self._lock:
            return self._pending.get(host_id)

    def take(self) -> dict[int, datetime]:
        with self._lock:
            pending, self._pending = self._pending, {}
        return pending

    def restore(self, items: dict[int, datetime]) -> None:
        for host_id, when in items.items():
            self.mark(host_id, when)


class Checkin:
    """The per-process check-in helpers, kept in ``state.extras["checkin"]``."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        settings = state.settings
        self.cache = HostCache(float(getattr(settings, "host_cache_ttl", 300.0)))
        self.cache.announce = state.pubsub.announce_host_changes
        self.cache.engine = state.database.engine
        self._stop_watching: Callable[[], None] | None = None
        self._intervals: Intervals | None = None
        self.seen = SeenTimes()
        self.flush_interval = float(getattr(settings, "seen_time_flush_interval", 5.0))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._flush_lock = threading.Lock()

    def read_intervals(self) -> Intervals:
        """The detail, label and policy intervals of the settings (read once: settings do not change)."""
        if self._intervals is None:
            from hostql.server.services.distributed import Intervals

            self._intervals = Intervals.from_settings(self.state.settings)
        return self._intervals

    # lookups

    def host_for_key(self, node_key: str) -> Host | None:
        """The host enrolled with ``node_key`` (detached; do not modify), or None."""
        if not node_key:
            return None
        host = self.cache.get(node_key)
        if host is not None:
            return host
        generation = self.cache.generation
        with self.state.database.session() as session:
            host = session.scalars(select(Host).where(Host.node_key == node_key)).first()
            if host is None:
                return None
            session.expunge(host)
        self.cache.put(node_key, host, generation)
        return host

    def mark_seen(self, host: Host, when: datetime | None = None) -> None:
        self.seen.mark(host.id, when or utcnow())

    # seen-time flushing

    def flush(self) -> int:
        """Write every pending seen time now; returns how many hosts were updated."""
        with self._flush_lock:
            pending = self.seen.take()
            if not pending:
                return 0
            try:
                # Core executemany: no ORM row-count check, so a host deleted
                # meanwhile is simply skipped.
                table = cast(Table, Host.__table__)
                statement = (update(table).where(table.c.id == bindparam("host_id"))
                             .values(seen_time=bindparam("seen")))
                with self.state.database.session() as session:
                    session.connection().execute(
                        # In host id order: concurrent writers then lock hosts rows in one order.
                        statement, [{"host_id": host_id, "seen": when} for host_id, when in sorted(pending.items())])
            except Exception:
                self.seen.restore(pending)
                raise
            return len(pending)

    def start(self) -> None:
        if self._stop_watching is None:
            self._stop_watching = self.state.pubsub.watch_host_changes(self.cache.forget)
        if self._thread is not None or self.flush_interval <= 0:
            return
        self._thread = threading.Thread(target=self._run, name="hostql-seen-times", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.flush_interval):
            try:
                self.flush()
            except Exception as exc:  # keep the flusher alive; the times are retried next round
                from hostql.server.storage.db import is_transient

                if is_transient(exc):  # a deadlock victim (MySQL): nothing is lost, no traceback needed
                    log.info("flushing host seen times: %s; retried next round",
                                                     getattr(exc, "orig", exc))
                else:
                    log.exception("flushing host seen times failed")

    def stop(self) -> None:
        self._stop.set()
        if self._stop_watching is not None:
            self._stop_watching()
            self._stop_watching = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.flush()


_EXTRAS_LOCK = threading.Lock()


def checkin_for(state: ServerState) -> Checkin:
    existing = state.extras.get("checkin")
    if isinstance(existing, Checkin):
        return existing
    with _EXTRAS_LOCK:
        existing = state.extras.get("checkin")
        if not isinstance(existing, Checkin):
            existing = Checkin(state)
            state.extras["checkin"] = existing
    return existing


def invalidate_host(state: ServerState, host_id: int) -> None:
    """Forget a host's cached row (call after deleting it or changing it outside the ORM)."""
    checkin_for(state).cache.invalidate_host(host_id)


def flush(state: ServerState) -> int:
    return checkin_for(state).flush()


def shutdown(state: ServerState) -> None:
    """Stop the flusher thread and write the last seen times."""
    existing = state.extras.get("checkin")
    if isinstance(existing, Checkin):
        existing.stop()
