"""REST API: saved queries and query reports (``/api/v1/fleet/queries...``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from hostql.server.api.deps import CurrentUser, DbSession, State
from hostql.server.services import queries as service
from hostql.server.services.listing import ListOptions

router = APIRouter(prefix="/api/v1/fleet", tags=["queries"])


class QueryCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    query: str
    description: str = ""
    team_id: int | None = None
    interval: int = 0
    platform: str = ""
    min_osquery_version: str = ""
    automations_enabled: bool = False
    logging: str = "snapshot"
    discard_data: bool = False
    observer_can_run: bool = False


class QueryModify(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    query: str | None = None
    description: str | None = None
    interval: int | None = None
    platform: str | None = None
    min_osquery_version: str | None = None
    automations_enabled: bool | None = None
    logging: str | None = None
    discard_data: bool | None = None
    observer_can_run: bool | None = None


class DeleteIds(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[int]


def _report_cap(state: State) -> int:
    return int(getattr(state.settings, "query_report_cap", service.DEFAULT_REPORT_CAP))


@router.get("/queries")
def list_queries(session: DbSession, user: CurrentUser, team_id: int | None = None, merge_inherited: bool = False,
                 page: int | None = None, per_page: int | None = None, order_key: str | None = None,
                 order_direction: str | None = None, query: str = "") -> dict[str, Any]:
    options = ListOptions(page=page, per_page=per_page, order_key=order_key, order_direction=order_direction)
    found = service.list_queries(session, user, options, team_id=team_id, merge_inherited=merge_inherited,
                                 search=query)
    has_next = options.per_page is not None and len(found) == options.per_page
    return {"queries": service.queries_json(session, found), "count": len(found),
            "meta": {"has_next_results": has_next, "has_previous_results": bool(page)}}


@router.post("/queries")
def create_query(body: QueryCreate, session: DbSession, user: CurrentUser) -> dict[str, Any]:
    query = service.create_query(session, user, body.model_dump())
    return {"query": service.query_json(session, query)}


@router.get("/queries/{id}")
def get_query(id: int, session: DbSession, user: CurrentUser) -> dict[str, Any]:
    return {"query": service.query_json(session, service.get_query(session, user, id))}


@router.patch("/queries/{id}")
def modify_query(id: int, body: QueryModify, session: DbSession, user: CurrentUser) -> dict[str, Any]:
    query = service.get_query(session, user, id)
    service.modify_query(session, user, query, body.model_dump(exclude_unset=True))
    return {"query": service.query_json(session, query)}


@router.delete("/queries/id/{id}")
def delete_query_by_id(id: int, session: DbSession, user: CurrentUser) -> dict[str, Any]:
    service.delete_query(session, user, service.get_query(session, user, id))
    return {}


@router.delete("/queries/{name}")
def delete_query_by_name(name: str, session: DbSession, user: CurrentUser,
                         team_id: int | None = None) -> dict[str, Any]:
    service.delete_query(session, user, service.query_by_name(session, user, name, team_id))
    return {}


@router.post("/queries/delete")
def delete_queries(body: DeleteIds, session: DbSession, user: CurrentUser) -> dict[str, Any]:
    return {"deleted": service.delete_queries(session, user, body.ids)}


@router.get("/queries/{id}/report")
def query_report(id: int, state: State, session: DbSession, user: CurrentUser) -> dict[str, Any]:
    query = service.get_query(session, user, id)
    return service.report(session, user, query, _report_cap(state))


@router.get("/hosts/{id}/queries/{query_id}")
def host_query_report(id: int, query_id: int, state: State, session: DbSession, user: CurrentUser) -> dict[str, Any]:
    query = service.get_query(session, user, query_id)
    return service.host_report(session, user, id, query, _report_cap(state))
