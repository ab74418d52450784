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
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from hostql.server.logdest import RESULT, STATUS, LogRouter
from hostql.server.services.agent_config import find_scheduled_query, parse_schedule_name
from hostql.server.storage.models import AppConfig, Host, Query, QueryResult, utcnow

PRUNE_EVERY = 3600.0
_prune_lock = threading.Lock()
_last_prune: dict[int, float] = {}


def reports_disabled(session: Session) -> bool:
    row = session.scalars(select(AppConfig).order_by(AppConfig.id)).first()
    server_settings = (row.json_value or {}).get("server_settings") if row is not None else None
    return bool(isinstance(server_settings, dict) and server_settings.get("query_reports_disabled"))


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


class ResultProcessor:
    """Applies one request's result lines to the reports; collects lines to forward."""

    def __init__(self, session: Session, host: Host, now: datetime) -> None:
        self.session = session
        self.host = host
        self.now = now
        self.disabled = reports_disabled(session)
        self.forward: list[dict[str, Any]] = []
        self._queries: dict[tuple[int | None, str], Query | None] = {}
        self._replaced: set[int] = set()

    def query_for(self, name: str) -> Query | None:
        parsed = parse_schedule_name(name)
        if parsed is None:
            return None
        team_id, query_name = parsed
        if team_id is not None and team_id != self.host.team_id:
            return None
        if parsed not in self._queries:
            self._queries[parsed] = find_scheduled_query(self.session, team_id, query_name)
        return self._queries[parsed]

    def line(self, line: dict[str, Any]) -> None:
        query = self.query_for(str(line.get("name") or ""))
        if query is None or self.disabled:
            self.forward.append(line)
            return
        if query.automations_enabled:
            self.forward.append(line)
        if query.discard_data:
            return
        when = self.now
        snapshot = line.get("snapshot")
        if isinstance(snapshot, list) or line.get("action") == "snapshot":
            self._snapshot(query, [row for row in snapshot or [] if isinstance(row, dict)], when)
            return
        added, removed = _diff_rows(line)
        self._differential(query, added, removed, when)

    def _snapshot(self, query: Query, rows: list[dict[str, Any]], when: datetime) -> None:
        self.session.execute(delete(QueryResult).where(QueryResult.query_id == query.id,
                                                       QueryResult.host_id == self.host.id))
        self._replaced.add(query.id)
        self.session.add_all(QueryResult(query_id=query.id, host_id=self.host.id, data=row, last_fetched=when)
                             for row in rows)

    def _differential(self, query: Query, added: list[dict[str, Any]], removed: list[dict[str, Any]],
                      when: datetime) -> None:
        if removed:
            self.session.flush()
            stored = list(self.session.scalars(select(QueryResult).where(
                QueryResult.query_id == query.id, QueryResult.host_id == self.host.id)))
            for row in removed:
                for candidate in stored:
                    if candidate.data == row:
                        self.session.delete(candidate)
                        stored.remove(candidate)
                        break
        self.session.add_all(QueryResult(query_id=query.id, host_id=self.host.id, data=row, last_fetched=when)
                             for row in added)


def process_results(session: Session, host: Host, lines: Iterable[dict[str, Any]],
                    now: datetime | None = None) -> list[dict[str, Any]]:
    """Store reports for ``lines``; returns the lines to send to the result destinations."""
    processor = ResultProcessor(session, host, now or utcnow())
    for line in lines:
        if isinstance(line, dict):
            processor.line(line)
    return processor.forward


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


def handle_log(session: Session, router: LogRouter, host: Host, log_type: str, data: list[Any], *,
               retention_days: float = 30.0, state_key: int = 0, now: datetime | None = None) -> None:
    """The whole ``/log`` request: status lines out; result lines to reports and out."""
    lines = [line for line in data if isinstance(line, dict)]
    if log_type == STATUS:
        router.write(STATUS, lines)
        return
    if log_type != RESULT:
        raise ValueError(f"unknown log_type {log_type!r}")
    forward = process_results(session, host, lines, now)
    maybe_prune(session, state_key, retention_days, now)
    session.flush()
    router.write(RESULT, forward)
