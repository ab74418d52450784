"""Saved queries (with their schedule fields, Fleet 4.35+) and query reports.

A query with ``interval > 0`` is scheduled on the hosts of its team (or every
host for a global query); its latest rows per host are the query report
(``QueryReport``).  Changing a query's SQL, or setting ``discard_data``,
empties its report, as in Fleet.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session as OrmSession

from hostql.server import fastjson
from hostql.server.errors import Conflict, NotFound, ValidationFailed
from hostql.server.services import authz
from hostql.server.services.activities import record_activity
from hostql.server.services.listing import DEFAULT_PER_PAGE, ListOptions, iso
from hostql.server.storage.models import Host, Query, QueryReport, ScheduledQueryStats, Team, User

LOGGING_TYPES = ("snapshot", "differential", "differential_ignore_removals")
PLATFORMS = ("darwin", "windows", "linux", "chrome")
DEFAULT_REPORT_CAP = 1000
EDITABLE = ("name", "description", "query", "interval", "platform", "min_osquery_version",
            "automations_enabled", "logging", "discard_data", "observer_can_run")
ORDER_COLUMNS: dict[str, Any] = {"id": Query.id, "name": Query.name, "created_at": Query.created_at,
                 "updated_at": Query.updated_at, "interval": Query.interval, "platform": Query.platform}


# --------------------------------------------------------------------------- JSON


def _percentile(values: Sequence[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def stats_for(session: OrmSession, query_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """Fleet's aggregated stats per query: time percentiles across hosts and total executions."""
    per_query: dict[int, tuple[list[float], list[float], int]] = {}
    ids = list(query_ids)
    if ids:
        for row in session.scalars(select(ScheduledQueryStats).where(ScheduledQueryStats.query_id.in_(ids))):
            system, user, total = per_query.setdefault(row.query_id, ([], [], 0))
            if row.executions > 0:
                system.append(row.system_time / row.executions)
                user.append(row.user_time / row.executions)
            per_query[row.query_id] = (system, user, total + row.executions)
    result: dict[int, dict[str, Any]] = {}
    for query_id in ids:
        system, user, total = per_query.get(query_id, ([], [], 0))
        result[query_id] = {
            "system_time_p50": _percentile(system, 0.5), "system_time_p95": _percentile(system, 0.95),
            "user_time_p50": _percentile(user, 0.5), "user_time_p95": _percentile(user, 0.95),
            "total_executions": total if query_id in per_query else None,
        }
    return result


def queries_json(session: OrmSession, queries: Sequence[Query]) -> list[dict[str, Any]]:
    author_ids = {q.author_id for q in queries if q.author_id is not None}
    authors = {u.id: u for u in session.scalars(select(User).where(User.id.in_(author_ids)))} if author_ids else {}
    stats = stats_for(session, [q.id for q in queries])
    out = []
    for query in queries:
        author = authors.get(query.author_id) if query.author_id is not None else None
        out.append({
            "id": query.id, "name": query.name, "query": query.query, "description": query.description,
            "team_id": query.team_id, "interval": query.interval, "platform": query.platform,
            "min_osquery_version": query.min_osquery_version, "automations_enabled": query.automations_enabled,
            "logging": query.logging_type, "saved": query.saved, "observer_can_run": query.observer_can_run,
            "discard_data": query.discard_data, "author_id": query.author_id,
            "author_name": author.name if author else "", "author_email": author.email if author else "",
            "packs": [], "stats": stats[query.id],
            "created_at": iso(query.created_at), "updated_at": iso(query.updated_at),
        })
    return out


def query_json(session: OrmSession, query: Query) -> dict[str, Any]:
    return queries_json(session, [query])[0]


# --------------------------------------------------------------------------- reading


def _query_visible(user: User, query: Query) -> bool:
    """Global queries are readable by every user; team queries by that team's users."""
    return query.team_id is None or authz.can_see_team(user, query.team_id)


def get_query(session: OrmSession, user: User, query_id: int) -> Query:
    query = session.get(Query, query_id)
    if query is None or not query.saved or not _query_visible(user, query):
        raise NotFound(f"query {query_id} was not found", name="id")
    return query


def list_queries(session: OrmSession, user: User, options: ListOptions, *, team_id: int | None = None,
                 merge_inherited: bool = False, search: str = "") -> list[Query]:
    """Global queries, or ``team_id``'s (plus the global ones with ``merge_inherited``)."""
    stmt = select(Query).where(Query.saved.is_(True))
    if team_id is None:
        stmt = stmt.where(Query.team_id.is_(None))
    else:
        if not authz.can_see_team(user, team_id):
            raise NotFound(f"team {team_id} was not found", name="team_id")
        scope = Query.team_id == team_id
        stmt = stmt.where(or_(scope, Query.team_id.is_(None)) if merge_inherited else scope)
    if search:
        stmt = stmt.where(Query.name.ilike(f"%{search}%"))
    key = options.order_key or "id"
    column = ORDER_COLUMNS.get(key)
    if column is None:
        raise ValidationFailed(f"invalid order key: {key}", name="order_key")
    descending = options.order_direction == "desc"
    stmt = stmt.order_by(column.desc() if descending else column.asc(), Query.id.asc())
    per_page = options.per_page if options.per_page is not None else (DEFAULT_PER_PAGE if options.page else None)
    if per_page is not None:
        stmt = stmt.limit(per_page).offset((options.page or 0) * per_page)
    return list(session.scalars(stmt))


# --------------------------------------------------------------------------- writing


def _validate(fields: dict[str, Any]) -> None:
    if "name" in fields and not str(fields["name"]).strip():
        raise ValidationFailed("query name must not be empty", name="name")
    if "query" in fields and not str(fields["query"]).strip():
        raise ValidationFailed("query must not be empty", name="query")
    if "logging" in fields and fields["logging"] not in LOGGING_TYPES:
        raise ValidationFailed(f"logging must be one of {', '.join(LOGGING_TYPES)}", name="logging")
    if "interval" in fields and fields["interval"] < 0:
        raise ValidationFailed("interval must not be negative", name="interval")
    if "platform" in fields:
        for item in str(fields["platform"]).split(","):
            if item.strip() and item.strip() not in PLATFORMS:
                raise ValidationFailed(f"platform {item.strip()!r} is not one of {', '.join(PLATFORMS)}",
                                       name="platform")


def _check_name_free(session: OrmSession, name: str, team_id: int | None, except_id: int | None = None) -> None:
    team = Query.team_id.is_(None) if team_id is None else Query.team_id == team_id
    stmt = select(Query.id).where(Query.name == name, team, Query.saved.is_(True))
    if except_id is not None:
        stmt = stmt.where(Query.id != except_id)
    if session.scalars(stmt).first() is not None:
        raise Conflict(f"a query named {name!r} already exists", name="name")


def _team_details(session: OrmSession, team_id: int | None) -> dict[str, Any]:
    team = session.get(Team, team_id) if team_id is not None else None
    return {"team_id": team_id, "team_name": team.name if team is not None else None}


def _apply(query: Query, fields: dict[str, Any]) -> None:
    for key, value in fields.items():
        if key == "logging":
            query.logging_type = value
        elif key == "platform":
            query.platform = ",".join(p.strip() for p in str(value).split(",") if p.strip())
        elif key in ("name", "query"):
            setattr(query, key, str(value).strip() if key == "name" else value)
        else:
            setattr(query, key, value)


def create_query(session: OrmSession, user: User, fields: dict[str, Any]) -> Query:
    team_id: int | None = fields.pop("team_id", None)
    authz.require(user, authz.WRITE, team_id)
    if team_id is not None and session.get(Team, team_id) is None:
        raise NotFound(f"team {team_id} was not found", name="team_id")
    for required in ("name", "query"):
        if not fields.get(required):
            raise ValidationFailed(f"{required} is required", name=required)
    _validate(fields)
    _check_name_free(session, str(fields["name"]).strip(), team_id)
    query = Query(team_id=team_id, author_id=user.id, saved=True, name="", query="")
    _apply(query, fields)
    session.add(query)
    session.flush()
    record_activity(session, user, "created_saved_query",
                    {"query_id": query.id, "query_name": query.name, **_team_details(session, team_id)})
    return query


def modify_query(session: OrmSession, user: User, query: Query, fields: dict[str, Any]) -> Query:
    authz.require(user, authz.WRITE, query.team_id)
    fields = {key: value for key, value in fields.items() if key in EDITABLE and value is not None}
    _validate(fields)
    if "name" in fields:
        _check_name_free(session, str(fields["name"]).strip(), query.team_id, except_id=query.id)
    clear_report = ("query" in fields and fields["query"] != query.query) or (
        fields.get("discard_data") is True and not query.discard_data)
    _apply(query, fields)
    if clear_report:
        session.execute(delete(QueryReport).where(QueryReport.query_id == query.id))
    session.flush()
    record_activity(session, user, "edited_saved_query",
                    {"query_id": query.id, "query_name": query.name, **_team_details(session, query.team_id)})
    return query


def query_by_name(session: OrmSession, user: User, name: str, team_id: int | None) -> Query:
    team = Query.team_id.is_(None) if team_id is None else Query.team_id == team_id
    query = session.scalars(select(Query).where(Query.name == name, team, Query.saved.is_(True))).first()
    if query is None or not _query_visible(user, query):
        raise NotFound(f"query {name!r} was not found", name="name")
    return query


def delete_query(session: OrmSession, user: User, query: Query) -> None:
    authz.require(user, authz.WRITE, query.team_id)
    details = {"query_name": query.name, **_team_details(session, query.team_id)}
    session.delete(query)
    session.flush()
    record_activity(session, user, "deleted_saved_query", details)


def delete_queries(session: OrmSession, user: User, ids: Sequence[int]) -> int:
    """Delete every query in ``ids`` or none (404 when one is unknown, 403 when one is not yours)."""
    unique = list(dict.fromkeys(ids))
    queries = [get_query(session, user, query_id) for query_id in unique]
    for query in queries:
        authz.require(user, authz.WRITE, query.team_id)
    for query in queries:
        session.delete(query)
    session.flush()
    if queries:
        teams = {q.team_id for q in queries}
        team_id = teams.pop() if len(teams) == 1 else None
        record_activity(session, user, "deleted_multiple_saved_query",
                        {"query_ids": unique, **_team_details(session, team_id)})
    return len(queries)


# --------------------------------------------------------------------------- reports


def _host_name(host: Host) -> str:
    return host.display_name or host.computer_name or host.hostname


def _visible_hosts(user: User) -> Any:
    teams = authz.visible_team_ids(user)
    return None if teams is None else Host.team_id.in_(sorted(teams))


def _report_rows(encoded: str) -> list[dict[str, Any]]:
    try:
        rows = fastjson.loads(encoded)
    except (ValueError, UnicodeDecodeError):
        return []
    return [row for row in rows if isinstance(row, dict) and row] if isinstance(rows, list) else []


def _stored_rows(session: OrmSession, query: Query) -> int:
    total = session.scalar(select(func.sum(QueryReport.row_count)).where(QueryReport.query_id == query.id))
    return int(total or 0)


def report(session: OrmSession, user: User, query: Query, cap: int = DEFAULT_REPORT_CAP) -> dict[str, Any]:
    """``GET /queries/{id}/report``: the latest rows of every visible host, host by host, at most ``cap``."""
    stmt = (select(QueryReport.rows, QueryReport.last_fetched, Host).join(Host, Host.id == QueryReport.host_id)
            .where(QueryReport.query_id == query.id, QueryReport.row_count > 0))
    visible = _visible_hosts(user)
    if visible is not None:
        stmt = stmt.where(visible)
    results: list[dict[str, Any]] = []
    for encoded, fetched, host in session.execute(stmt.order_by(QueryReport.host_id)):
        for columns in _report_rows(encoded)[:cap - len(results)]:
            results.append({"host_id": host.id, "host_name": _host_name(host),
                            "last_fetched": iso(fetched), "columns": columns})
        if len(results) >= cap:
            break
    return {"query_id": query.id, "report_clipped": _stored_rows(session, query) >= cap, "results": results}


def host_report(session: OrmSession, user: User, host_id: int, query: Query,
                cap: int = DEFAULT_REPORT_CAP) -> dict[str, Any]:
    """``GET /hosts/{id}/queries/{query_id}``: one host's latest rows of ``query``."""
    host = session.get(Host, host_id)
    if host is None or not authz.can_see_team(user, host.team_id):
        raise NotFound(f"host {host_id} was not found", name="id")
    stored = session.get(QueryReport, (query.id, host_id))
    rows = _report_rows(stored.rows) if stored is not None else []
    return {"query_id": query.id, "host_id": host.id, "host_name": _host_name(host),
            "last_fetched": iso(stored.last_fetched if stored is not None else None),
            "report_clipped": _stored_rows(session, query) >= cap,
            "results": [{"columns": row} for row in rows]}
