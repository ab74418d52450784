"""Result and status logs from ``/api/osquery/log``.

Status lines go to the status destinations.  Result lines whose name is
``pack<d>Global<d><query>`` or ``pack<d>team-<id><d><query>`` (any pack
delimiter) belong to a saved scheduled query; for those:

* **Query reports** (``QueryResult`` rows, one per result row per host) are
  kept unless the query has ``discard_data`` or reports are disabled
  (``server_settings.query_reports_disabled`` in the app config):

  - ``snapshot`` logging: a snapshot line replaces the host's previous rows
    for that query (an empty snapshot leaves the host with none);
  - ``differential`` / ``differential_ignore_removals``: the report is the
    host's current result set rebuilt from the diffs: ``added`` rows are
    appended, ``removed`` rows delete one equal stored row.

  ``last_fetched`` is the server's receive time.  There is no row cap;
  ``query_report_retention_days`` (default 30, 0 = keep forever) prunes rows
  not refreshed for that long, at most once an hour.
* Lines go to the result destinations when the query has
  ``automations_enabled``.  Lines of other packs or unknown queries, and every
  line while reports are disabled, go to the result destinations as well.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, event, select
from sqlalchemy.orm import Session

from hostql.server import fastjson
from hostql.server.logdest import RESULT, STATUS, LogRouter
from hostql.server.services.agent_config import parse_schedule_name
from hostql.server.storage.models import AppConfig, Host, Query, QueryResult, utcnow

PRUNE_EVERY = 3600.0
LOOKUP_TTL = 1.0  # seconds a name -> query lookup (and the reports-disabled flag) is reused
_prune_lock = threading.Lock()
_last_prune: dict[int, float] = {}


def reports_disabled(session: Session) -> bool:
    row = session.scalars(select(AppConfig).order_by(AppConfig.id)).first()
    server_settings = (row.json_value or {}).get("server_settings") if row is not None else None
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
    """``(team id, query name) -> QueryInfo | None`` and the reports-disabled flag, each kept
    :data:`LOOKUP_TTL` seconds.  Any change to a query or the app config made through the
    ORM in this process empties it at once (:func:`_changed`); other processes' changes are
    seen within the TTL."""

    def __init__(self, ttl: float = LOOKUP_TTL) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._queries: dict[tuple[int | None, str], tuple[float, int, QueryInfo | None]] = {}
        self._disabled: tuple[float, int, bool] | None = None

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

    def reports_disabled(self, session: Session) -> bool:
        now = time.monotonic()
        generation = _generation[0]
        hit = self._disabled
        if hit is not None and hit[1] == generation and now - hit[0] < self.ttl:
            return hit[2]
        value = reports_disabled(session)
        self._disabled = (now, generation, value)
        return value


_generation = [0]


def _changed(*_: Any) -> None:
    _generation[0] += 1


for _model in (Query, AppConfig):
    for _name in ("after_insert", "after_update", "after_delete"):
        event.listen(_model, _name, _changed)


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


@dataclass
class _Report:
    """One query's report for this host, as the request changes it (written once at the end).

    ``replaced``: a snapshot line came, so every stored row goes.  ``stored``: the stored
    rows ``(id, data)`` in id order, loaded on the first removal (None until then);
    ``deleted``: ids of stored rows a removal matched.  ``added``: new rows in order."""

    replaced: bool = False
    stored: list[tuple[int, dict[str, Any]]] | None = None
    deleted: list[int] = field(default_factory=list)
    added: list[dict[str, Any]] = field(default_factory=list)


class ResultProcessor:
    """Applies one request's result lines to the reports; collects lines to forward.

    The reports are changed in memory line by line with the same meaning as applying each
    line to the database in turn (a removal matches the oldest equal row: stored rows
    first, then rows added earlier in the request), then written per query with one
    DELETE and one multi-row INSERT (:meth:`flush`)."""

    def __init__(self, session: Session, host: HostLike, now: datetime, lookups: LookupCache | None = None) -> None:
        self.session = session
        self.host = host
        self.now = now
        self.lookups = lookups if lookups is not None else LookupCache(ttl=0.0)
        self.disabled = self.lookups.reports_disabled(session)
        self.forward: list[dict[str, Any]] = []
        self._names: dict[str, QueryInfo | None] = {}
        self._reports: dict[int, _Report] = {}

    def query_for(self, name: str) -> QueryInfo | None:
        if name in self._names:
            return self._names[name]
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
        snapshot = line.get("snapshot")
        if isinstance(snapshot, list) or line.get("action") == "snapshot":
            report.replaced = True
            report.stored, report.deleted = [], []
            report.added = [row for row in snapshot or [] if isinstance(row, dict)]
            return
        added, removed = _diff_rows(line)
        for row in removed:
            self._remove(query.id, report, row)
        report.added.extend(added)

    def _remove(self, query_id: int, report: _Report, row: dict[str, Any]) -> None:
        if report.stored is None:
            report.stored = [(int(row_id), data) for row_id, data in self.session.execute(
                select(QueryResult.id, QueryResult.data).where(
                    QueryResult.query_id == query_id, QueryResult.host_id == self.host.id).order_by(QueryResult.id))]
        for index, (row_id, data) in enumerate(report.stored):
            if data == row:
                report.deleted.append(row_id)
                del report.stored[index]
                return
        for index, data in enumerate(report.added):
            if data == row:
                del report.added[index]
                return

    def flush(self) -> None:
        """Write every report this request changed: one DELETE and one bulk INSERT per query."""
        host_id, when = self.host.id, self.now
        for query_id, report in self._reports.items():
            if report.replaced:
                self.session.execute(delete(QueryResult).where(QueryResult.query_id == query_id,
                                                               QueryResult.host_id == host_id))
            elif report.deleted:
                self.session.execute(delete(QueryResult).where(QueryResult.id.in_(report.deleted)))
            if report.added:
                insert_rows(self.session, query_id, host_id, report.added, when)
        self._reports.clear()


def insert_rows(session: Session, query_id: int, host_id: int, rows: list[dict[str, Any]], when: datetime) -> None:
    """Add report rows with one multi-row statement (executemany) through the driver.

    The ORM would build an object per row, and even a Core ``insert()`` processes every
    parameter of every row; here the JSON is encoded once per row with the fast encoder
    and the timestamp (the same for all rows) is converted for the database once."""
    connection = session.connection()
    dialect = connection.dialect
    table = QueryResult.__table__
    column = table.c.last_fetched
    process = column.type.dialect_impl(dialect).bind_processor(dialect)
    stamp = process(when) if process is not None else when
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    preparer = dialect.identifier_preparer
    names = ", ".join(preparer.quote(name) for name in ("query_id", "host_id", "data", "last_fetched"))
    sql = f"INSERT INTO {preparer.format_table(table)} ({names}) VALUES ({mark}, {mark}, {mark}, {mark})"
    encode = fastjson.dumps_str
    connection.exec_driver_sql(sql, [(query_id, host_id, encode(row), stamp) for row in rows])


def process_results(session: Session, host: HostLike, lines: Iterable[dict[str, Any]],
                    now: datetime | None = None, lookups: LookupCache | None = None) -> ResultProcessor:
    """Store reports for ``lines``; the processor's ``forward`` are the lines for the result destinations."""
    processor = ResultProcessor(session, host, now or utcnow(), lookups)
    for line in lines:
        if isinstance(line, dict):
            processor.line(line)
    processor.flush()
    return processor


def prune_reports(session: Session, retention_days: float, now: datetime | None = None) -> int:
    """Delete report rows not refreshed within ``retention_days``; returns how many."""
    if retention_days <= 0:
        return 0
    cutoff = (now or utcnow()) - timedelta(days=retention_days)
    result = session.execute(delete(QueryResult).where(QueryResult.last_fetched < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)


def maybe_prune(session: Session, state_key: int, retention_days: float, now: datetime | None = None) -> None:
    """Prune at most once per :data:`PRUNE_EVERY` seconds per server state."""
    with _prune_lock:
        last = _last_prune.get(state_key, 0.0)
        if time.monotonic() - last < PRUNE_EVERY:
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
