"""REST API: hosts (``/api/v1/fleet/hosts...``, ``/host_summary``)."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict

from hostql.server.api.deps import CurrentUser, DbSession, State
from hostql.server.errors import Forbidden, ValidationFailed
from hostql.server.services import hosts as host_service
from hostql.server.services import labels as label_service
from hostql.server.services.authz import READ, WRITE, can_see_team, require, require_any, visible_team_ids
from hostql.server.services.listing import ListOptions, list_options, now
from hostql.server.storage.models import Host, User

router = APIRouter(prefix="/api/v1/fleet", tags=["hosts"])

Paging = Annotated[ListOptions, Depends(list_options)]


def host_filters(status: str | None = None, query: str | None = None, team_id: int | None = None,
                 label_id: int | None = None, policy_id: int | None = None,
                 policy_response: str | None = None, low_disk_space: int | None = None,
                 platform: str | None = None, software_version_id: int | None = None,
                 software_id: int | None = None, software_title_id: int | None = None,
                 os_version_id: int | None = None, os_name: str | None = None,
                 os_version: str | None = None) -> host_service.HostFilters:
    if (os_name is None) != (os_version is None):
        missing = "os_name" if os_name is None else "os_version"
        raise ValidationFailed("os_name and os_version go together", name=missing)
    return host_service.HostFilters(status=status or None, query=query or None, team_id=team_id,
                                    label_id=label_id, policy_id=policy_id, policy_response=policy_response or None,
                                    low_disk_space=low_disk_space, platform=platform or None,
                                    # software_id: the older name of software_version_id
                                    software_version_id=software_version_id if software_version_id is not None
                                    else software_id, software_title_id=software_title_id,
                                    os_version_id=os_version_id, os_name=os_name, os_version=os_version)


Filters = Annotated[host_service.HostFilters, Depends(host_filters)]


def visible(filters: host_service.HostFilters, user: User) -> host_service.HostFilters:
    """``filters`` narrowed to the hosts ``user`` may see (team users: their teams' hosts)."""
    require_any(user, READ)
    return dataclasses.replace(filters, visible_teams=visible_team_ids(user))


def host_for(session: DbSession, user: User, host_id: int, action: str) -> Host:
    host = host_service.get_host(session, host_id)
    require(user, action, host.team_id)
    return host


class FilterBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: str | None = None
    query: str | None = None
    team_id: int | None = None
    label_id: int | None = None


class DeleteHostsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: list[int] | None = None
    filters: FilterBody | None = None


class TransferBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    team_id: int | None  # required; null moves the hosts to "no team"
    hosts: list[int]


class TransferFilterBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    team_id: int | None
    filters: FilterBody


class SearchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = ""
    query_id: int | None = None
    excluded_host_ids: list[int] = []


class HostLabelsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    labels: list[str]


@router.get("/hosts")
def list_hosts(state: State, session: DbSession, user: CurrentUser, paging: Paging, filters: Filters
               ) -> dict[str, Any]:
    at = now(state)
    hosts = host_service.list_hosts(session, visible(filters, user), paging, at)
    return {"hosts": host_service.hosts_json(session, hosts, at)}


@router.get("/hosts/count")
def count_hosts(state: State, session: DbSession, user: CurrentUser, filters: Filters) -> dict[str, Any]:
    return {"count": host_service.count_hosts(session, visible(filters, user), now(state))}


@router.get("/host_summary")
def host_summary(state: State, session: DbSession, user: CurrentUser, team_id: int | None = None,
                 low_disk_space: int | None = None) -> dict[str, Any]:
    require_any(user, READ)
    if team_id is not None and team_id != 0 and not can_see_team(user, team_id):
        raise Forbidden("forbidden", name="team_id")
    return host_service.summary(session, team_id, now(state), low_disk_space, visible_team_ids(user))


@router.post("/hosts/delete")
def delete_many(state: State, session: DbSession, user: CurrentUser, body: DeleteHostsBody) -> dict[str, Any]:
    require_any(user, WRITE)
    if (body.ids is None) == (body.filters is None):
        raise ValidationFailed("give either ids or filters", name="ids")
    if body.ids is not None:
        hosts = [host_for(session, user, host_id, WRITE) for host_id in sorted(set(body.ids))]
    else:
        assert body.filters is not None
        filters = _filters_of(body.filters)
        if filters == host_service.HostFilters():
            raise ValidationFailed("refusing to delete every host: give at least one filter", name="filters")
        hosts = host_service.list_hosts(session, visible(filters, user), ListOptions(), now(state))
        for host in hosts:
            require(user, WRITE, host.team_id)
    host_service.delete_hosts(state, session, user, hosts)
    return {}


def _filters_of(body: FilterBody) -> host_service.HostFilters:
    return host_service.HostFilters(status=body.status, query=body.query, team_id=body.team_id,
                                    label_id=body.label_id)


def _transfer(session: DbSession, user: User, hosts: list[Host], team_id: int | None) -> dict[str, Any]:
    # Moving a host takes the right to change it where it is and where it goes.
    require(user, WRITE, team_id)
    for host in hosts:
        require(user, WRITE, host.team_id)
    host_service.transfer_hosts(session, user, hosts, team_id)
    return {}


@router.post("/hosts/transfer")
def transfer_hosts(session: DbSession, user: CurrentUser, body: TransferBody) -> dict[str, Any]:
    hosts = [host_service.get_host(session, host_id) for host_id in sorted(set(body.hosts))]
    return _transfer(session, user, hosts, body.team_id)


@router.post("/hosts/transfer/filter")
def transfer_hosts_by_filter(state: State, session: DbSession, user: CurrentUser,
                             body: TransferFilterBody) -> dict[str, Any]:
    hosts = host_service.list_hosts(session, visible(_filters_of(body.filters), user), ListOptions(), now(state))
    return _transfer(session, user, hosts, body.team_id)


@router.get("/hosts/report")
def hosts_report(state: State, session: DbSession, user: CurrentUser, paging: Paging, filters: Filters,
                 format: str = "csv", columns: str | None = None) -> Response:
    """The hosts matching the list filters as CSV (Fleet's "Export hosts"), ``columns`` picking
    and ordering the columns (default: all)."""
    if format != "csv":
        raise ValidationFailed("format must be csv", name="format")
    at = now(state)
    hosts = host_service.list_hosts(session, visible(filters, user), dataclasses.replace(paging, page=None,
                                                                                        per_page=None), at)
    rows = host_service.report_rows(host_service.hosts_json(session, hosts, at))
    wanted = host_service.report_columns(columns)
    stamp = at.strftime("%Y-%m-%d")
    return Response(host_service.csv_text(rows, wanted), media_type="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="Hosts {stamp}.csv"'})


@router.post("/hosts/search")
def search_hosts(state: State, session: DbSession, user: CurrentUser, body: SearchBody) -> dict[str, Any]:
    """Hosts whose hostname, UUID, serial or IP contains ``query`` (the target picker's search)."""
    at = now(state)
    filters = visible(host_service.HostFilters(query=body.query or None), user)
    hosts = host_service.search_hosts(session, filters, body.excluded_host_ids, at)
    return {"hosts": host_service.hosts_json(session, hosts, at)}


@router.get("/hosts/identifier/{identifier}")
def get_host_by_identifier(state: State, session: DbSession, user: CurrentUser, identifier: str) -> dict[str, Any]:
    host = host_service.find_host(session, identifier)
    require(user, READ, host.team_id)
    return {"host": host_service.host_detail_json(session, host, now(state))}


@router.get("/hosts/{host_id}")
def get_host(state: State, session: DbSession, user: CurrentUser, host_id: int) -> dict[str, Any]:
    host = host_for(session, user, host_id, READ)
    return {"host": host_service.host_detail_json(session, host, now(state))}


@router.delete("/hosts/{host_id}")
def delete_host(state: State, session: DbSession, user: CurrentUser, host_id: int) -> dict[str, Any]:
    host_service.delete_hosts(state, session, user, [host_for(session, user, host_id, WRITE)])
    return {}


@router.post("/hosts/{host_id}/refetch")
def refetch_host(session: DbSession, user: CurrentUser, host_id: int) -> dict[str, Any]:
    # Like Fleet, anyone who may see the host may ask for fresh vitals.
    host_service.request_refetch(session, host_for(session, user, host_id, READ))
    return {}


@router.get("/hosts/{host_id}/software")
def host_software(session: DbSession, user: CurrentUser, host_id: int) -> dict[str, Any]:
    host_for(session, user, host_id, READ)
    software = host_service.host_software(session, host_id)
    return {"count": len(software), "software": software,
            "meta": {"has_next_results": False, "has_previous_results": False}}


def _change_labels(session: DbSession, user: CurrentUser, host_id: int, body: HostLabelsBody,
                   add: Literal[True, False]) -> dict[str, Any]:
    host = host_for(session, user, host_id, WRITE)
    label_service.change_host_labels(session, user, host, body.labels, add=add)
    return {}


@router.post("/hosts/{host_id}/labels")
def add_host_labels(session: DbSession, user: CurrentUser, host_id: int, body: HostLabelsBody) -> dict[str, Any]:
    return _change_labels(session, user, host_id, body, True)


@router.delete("/hosts/{host_id}/labels")
def remove_host_labels(session: DbSession, user: CurrentUser, host_id: int, body: HostLabelsBody
                       ) -> dict[str, Any]:
    return _change_labels(session, user, host_id, body, False)
