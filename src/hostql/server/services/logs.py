"""Result and status logs from ``/api/osquery/log``.

Status lines go to the status destinations.  Result lines whose name is
``pack<d>Global<d><query>`` or ``pack<d>team-<id><d><query>`` (any pack
delimiter) belong to a saved scheduled query; for those:

* **Query reports** (``QueryReport``: a host's rows of a query as one JSON
  array) are kept unless the query has ``discard_data`` or reports are disabled
  (``server_settings.query_reports_disabled`` in the app config):

  - ``snapshot`` logging: a snapshot line replaces the host's previous rows
    for that query (an empty snapshot leaves the host with none);
  - ``differential`` / ``differential_ignore_removals``: the report is the
    host's current result set rebuilt from the diffs: ``added`` rows are
    appended, a ``removed`` row deletes the oldest equal row.

  ``last_fetched`` is the server's receive time.  There is no row cap;
  ``query_report_retention_days`` (default 30, 0 = keep forever) prunes
  reports not refreshed for that long, at most once an hour.
* Lines go to the result destinations when the query has
  ``automations_enabled``.  Lines of other packs or unknown queries, and every
  line while reports are disabled, go to the result destinations as well.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from hostql.server import fastjson
from hostql.server.logdest import RESULT, STATUS, LogRouter
from hostql.server.services.agent_config import parse_schedule_name
from hostql.server.services.appconfig import cached_document
from hostql.server.storage.changes import on_change
from hostql.server.storage.models import Host, Query, QueryReport, utcnow

PRUNE_EVERY = 3600.0
LOOKUP_TTL = 1.0  # seconds a name -> query lookup (and the reports-disabled flag) is reused
_prune_lock = threading.Lock()
_last_prune: dict[int, float] = {}


def reports_disabled(session: Session) -> bool:
    server_settings = cached_document(session).get("server_settings")
    return bool(isinstance(server_settings, dict) and server_settings.get("query_reports_disabled"))


@dataclass(frozen=True)
class HostRef:
    """The host a request's lines come from: all result logging needs of it."""

    id: int
    team_id: int | None


HostLike = Host | HostRef


@dataclass(frozen=True)
class QueryInfo:
    """What result logging needs of a saved query (cached, so no ORM object)."""

    id: int
    automations_enabled: bool
    discard_data: bool


class LookupCache:
    """``(team id, query name) -> QueryInfo | None``, kept :data:`LOOKUP_TTL` seconds.  Any
    change to a query made through the ORM in this process empties it at once
    (:func:`_changed`); other processes' changes are seen within the TTL.  The
    reports-disabled flag comes from the app-config cache (``appconfig.cached_document``)."""

    def __init__(self, ttl: float = LOOKUP_TTL) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._queries: dict[tuple[int | None, str], tuple[float, int, QueryInfo | None]] = {}

    def cached(self, team_id: int | None, name: str) -> tuple[bool, QueryInfo | None]:
        """(whether the lookup is cached and current, its result), without the database."""
        hit = self._queries.get((team_id, name))
        if hit is not None and hit[1] == _generation[0] and time.monotonic() - hit[0] < self.ttl:
            return True, hit[2]
        return False, None

    def query(self, session: Session, team_id: int | None, name: str) -> QueryInfo | None:
        key = (team_id, name)
        now = time.monotonic()
        generation = _generation[0]
        hit = self._queries.get(key)
        if hit is not None and hit[1] == generation and now - hit[0] < self.ttl:
            return hit[2]
        scope = Query.team_id.is_(None) if team_id is None else Query.team_id == team_id
        row = session.execute(select(Query.id, Query.automations_enabled, Query.discard_data)
                              .where(scope, Query.name == name).order_by(Query.id).limit(1)).first()
        info = None if row is None else QueryInfo(int(row[0]), bool(row[1]), bool(row[2]))
        with self._lock:
            if len(self._queries) > 10_000:
                self._queries.clear()
            self._queries[key] = (now, generation, info)
        return info


_generation = [0]


def _changed() -> None:
    _generation[0] += 1


on_change((Query,), _changed)


def lookups_for(state: Any) -> LookupCache:
    """The process's :class:`LookupCache` (kept in ``state.extras``)."""
    cache = state.extras.get("log_lookups")
    if not isinstance(cache, LookupCache):
        state.extras.setdefault("log_lookups", LookupCache())
        cache = state.extras["log_lookups"]
    assert isinstance(cache, LookupCache)
    return cache


def _diff_rows(line: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(added, removed) of an event-format or batch-format differential line."""
    action = line.get("action")
    columns = line.get("columns")
    if action in ("added", "removed") and isinstance(columns, dict):
        return ([columns], []) if action == "added" else ([], [columns])
    diff = line.get("diffResults")
    if isinstance(diff, dict):
        added = [row for row in diff.get("added") or [] if isinstance(row, dict)]
        removed = [row for row in diff.get("removed") or [] if isinstance(row, dict)]
        return added, removed
    return [], []


class ConcurrentReportChange(Exception):
    """Another transaction changed a report this one read: run the request's transaction again."""


def _row_key(row: dict[str, Any]) -> Hashable:
    """A hashable value equal for equal rows (osquery's values are scalars; others via sorted JSON)."""
    try:
        return frozenset(row.items())
    except TypeError:
        return json.dumps(row, sort_keys=True, default=str)


@dataclass
class _Report:
    """One query's report for this host as the request changes it (written once at the end).

    ``rows``: every row the report held or was given since it was loaded or replaced, in
    order; those at positions in ``gone`` were removed since.  None until a differential
    line needs the stored rows (``loaded``) or a snapshot line replaces them.
    ``generation``: the stored report's generation when it was loaded (None: not loaded,
    or no stored report).  ``where`` maps a row to the positions of its live equal rows,
    oldest first, for ``rows[:indexed]``; a removal first indexes the rows added since,
    then costs a lookup, not a scan."""

    rows: list[dict[str, Any]] | None = None
    loaded: bool = False
    generation: int | None = None
    gone: set[int] = field(default_factory=set)
    where: dict[Hashable, deque[int]] = field(default_factory=dict)
    indexed: int = 0

    def replace(self, rows: list[dict[str, Any]]) -> None:
        self.rows, self.gone, self.where, self.indexed = rows, set(), {}, 0

    def remove(self, row: dict[str, Any]) -> None:
        """Take away the oldest live row equal to ``row``; nothing when there is none (e.g. pruned)."""
        rows = self.rows
        assert rows is not None
        where = self.where
        for position in range(self.indexed, len(rows)):
            where.setdefault(_row_key(rows[position]), deque()).append(position)
        self.indexed = len(rows)
        positions = where.get(_row_key(row))
        if positions:
            self.gone.add(positions.popleft())

    def current(self) -> list[dict[str, Any]]:
        rows = self.rows or []
        return [row for position, row in enumerate(rows) if position not in self.gone] if self.gone else rows


class ResultProcessor:
    """Applies one request's result lines to the reports; collects lines to forward.

    A report is the host's current result set: a snapshot line replaces it; a
    differential line appends its ``added`` rows and deletes, for each ``removed`` row,
    the oldest equal row.  Each changed report is written once, in :meth:`flush`: a
    replaced one with an upsert, a changed one with an UPDATE that checks the generation
    it was read at (a concurrent change raises :class:`ConcurrentReportChange`)."""

    def __init__(self, session: Session, host: HostLike, now: datetime, lookups: LookupCache | None = None) -> None:
        self.session = session
        self.host = host
        self.now = now
        self.lookups = lookups if lookups is not None else LookupCache(ttl=0.0)
        self.disabled = reports_disabled(session)
        self.forward: list[dict[str, Any]] = []
        self._names: dict[str, QueryInfo | None] = {}
        self._reports: dict[int, _Report] = {}

    def query_for(self, name: str) -> QueryInfo | None:
        try:
            return self._names[name]
        except KeyError:
            pass  # first line of this name in the request
        parsed = parse_schedule_name(name)
        info = None
        if parsed is not None:
            team_id, query_name = parsed
            if team_id is None or team_id == self.host.team_id:
                info = self.lookups.query(self.session, team_id, query_name)
        self._names[name] = info
        return info

    def line(self, line: dict[str, Any]) -> None:
        name = line.get("name")
        query = self.query_for(name if isinstance(name, str) else str(name or ""))
        if query is None or self.disabled:
            self.forward.append(line)
            return
        if query.automations_enabled:
            self.forward.append(line)
        if query.discard_data:
            return
        report = self._reports.get(query.id)
        if report is None:
            report = self._reports[query.id] = _Report()
        action = line.get("action")
        if action == "added" or action == "removed":  # event format: one row per line, the common case
            columns = line.get("columns")
            if isinstance(columns, dict):
                rows = report.rows if report.rows is not None else self._load(query.id, report)
                if action == "added":
                    rows.append(columns)
                else:
                    report.remove(columns)
            return
        snapshot = line.get("snapshot")
        if isinstance(snapshot, list) or action == "snapshot":
            report.replace([row for row in snapshot or [] if isinstance(row, dict)])
            return
        added, removed = _diff_rows(line)
        if not added and not removed:
            return
        rows = report.rows if report.rows is not None else self._load(query.id, report)
        for row in removed:
            report.remove(row)
        rows.extend(added)

    def _load(self, query_id: int, report: _Report) -> list[dict[str, Any]]:
        stored = self.session.connection().exec_driver_sql(
            _sql(self.session, "SELECT {rows}, {generation} FROM {table} WHERE {query_id} = ? AND {host_id} = ?"),
            (query_id, self.host.id)).first()
        report.loaded = True
        if stored is None:
            report.rows = []
        else:
            decoded = fastjson.loads(stored[0])
            report.rows = [row for row in decoded if isinstance(row, dict)] if isinstance(decoded, list) else []
            report.generation = int(stored[1])
        return report.rows

    def flush(self) -> None:
        """Write every report this request changed, one statement each (two for a new report)."""
        connection = self.session.connection()
        stamp = _bind_time(connection, self.now)
        host_id = self.host.id
        for query_id, report in self._reports.items():
            if report.rows is None:
                continue
            rows = report.current()
            encoded = fastjson.dumps_str(rows)
            if report.loaded and report.generation is not None:
                changed = connection.exec_driver_sql(_sql(self.session, _UPDATE_SEEN), (
                    encoded, len(rows), stamp, query_id, host_id, report.generation)).rowcount
                if changed != 1:
                    raise ConcurrentReportChange(f"report of query {query_id} for host {host_id}")
                continue
            if not report.loaded:  # replaced by a snapshot: whatever is stored goes
                changed = connection.exec_driver_sql(_sql(self.session, _UPDATE_ANY), (
                    encoded, len(rows), stamp, query_id, host_id)).rowcount
                if changed == 1:
                    continue
            # No stored report (a concurrent first write of the same report fails the primary key).
            connection.exec_driver_sql(_sql(self.session, _INSERT), (
                query_id, host_id, encoded, len(rows), stamp))
        self._reports.clear()


_UPDATE_ANY = ("UPDATE {table} SET {rows} = ?, {row_count} = ?, {last_fetched} = ?, {generation} = {generation} + 1"
               " WHERE {query_id} = ? AND {host_id} = ?")
_UPDATE_SEEN = _UPDATE_ANY + " AND {generation} = ?"
_INSERT = ("INSERT INTO {table} ({query_id}, {host_id}, {rows}, {row_count}, {generation}, {last_fetched})"
           " VALUES (?, ?, ?, ?, 1, ?)")
_sql_cache: dict[tuple[str, str], str] = {}


def _sql(session: Session, template: str) -> str:
    """``template`` for this database: quoted names of ``query_reports`` and its driver's
    parameter marks.  Built once per dialect: these statements run on every result log,
    and going through the driver directly skips SQLAlchemy's per-statement work."""
    dialect = session.get_bind().dialect
    key = (dialect.name + dialect.paramstyle, template)
    sql = _sql_cache.get(key)
    if sql is None:
        table = QueryReport.__table__
        preparer = dialect.identifier_preparer
        names = {column.name: preparer.quote(column.name) for column in table.c}
        sql = template.format(table=preparer.format_table(table), **names)
        if dialect.paramstyle != "qmark":
            sql = sql.replace("?", "%s")
        _sql_cache[key] = sql
    return sql


def _bind_time(connection: Any, when: datetime) -> Any:
    """``when`` as the driver takes it for a DateTime column (SQLite stores text)."""
    dialect = connection.dialect
    process = QueryReport.__table__.c.last_fetched.type.dialect_impl(dialect).bind_processor(dialect)
    return process(when) if process is not None else when


def process_results(session: Session, host: HostLike, lines: Iterable[dict[str, Any]],
                    now: datetime | None = None, lookups: LookupCache | None = None) -> ResultProcessor:
    """Store reports for ``lines``; the processor's ``forward`` are the lines for the result destinations."""
    processor = ResultProcessor(session, host, now or utcnow(), lookups)
    for line in lines:
        if isinstance(line, dict):
            processor.line(line)
    processor.flush()
    return processor


def forwarded_only(lookups: LookupCache, team_id: int | None, lines: Iterable[dict[str, Any]]) -> bool:
    """True when the cache alone tells that no line of ``lines`` belongs to a saved query of a host of
    team ``team_id`` (so they only go to the result destinations, and no database is needed)."""
    seen: set[str] = set()
    for line in lines:
        name = line.get("name")
        if not isinstance(name, str):
            return False  # left to the full path, which copes with any line
        if name in seen:
            continue
        seen.add(name)
        parsed = parse_schedule_name(name)
        if parsed is None or (parsed[0] is not None and parsed[0] != team_id):
            continue  # not a saved query's name, or another team's: forwarded (as ResultProcessor does)
        known, info = lookups.cached(parsed[0], parsed[1])
        if not known or info is not None:
            return False
    return True


def prune_due(state_key: int) -> bool:
    """Whether :func:`maybe_prune` would prune now."""
    return time.monotonic() - _last_prune.get(state_key, 0.0) >= PRUNE_EVERY


def prune_reports(session: Session, retention_days: float, now: datetime | None = None) -> int:
    """Delete report rows not refreshed within ``retention_days``; returns how many."""
    if retention_days <= 0:
        return 0
    cutoff = (now or utcnow()) - timedelta(days=retention_days)
    result = session.execute(delete(QueryReport).where(QueryReport.last_fetched < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)


def maybe_prune(session: Session, state_key: int, retention_days: float, now: datetime | None = None) -> None:
    """Prune at most once per :data:`PRUNE_EVERY` seconds per server state."""
    with _prune_lock:
        if not prune_due(state_key):
            return
        _last_prune[state_key] = time.monotonic()
    prune_reports(session, retention_days, now)


def handle_log(session: Session, router: LogRouter, host: HostLike, log_type: str, data: list[Any], *,
               retention_days: float = 30.0, state_key: int = 0, now: datetime | None = None,
               lookups: LookupCache | None = None) -> None:
    """The whole ``/log`` request: status lines out; result lines to reports and out."""
    lines = [line for line in data if isinstance(line, dict)]
    if log_type == STATUS:
        router.write(STATUS, lines)
        return
    if log_type != RESULT:
        raise ValueError(f"unknown log_type {log_type!r}")
    processor = process_results(session, host, lines, now, lookups)
    maybe_prune(session, state_key, retention_days, now)
    session.flush()
    router.write(RESULT, processor.forward)
