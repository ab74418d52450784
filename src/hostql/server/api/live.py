"""REST API: live queries -- campaigns, the results WebSocket, synchronous runs."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, FastAPI, WebSocket
from pydantic import BaseModel, ConfigDict, Field

from hostql.server.api.deps import CurrentUser, DbSession, State
from hostql.server.errors import BadRequest, NotFound
from hostql.server.services import authz, campaigns, live_results
from hostql.server.services import hosts as host_service
from hostql.server.services import labels as label_service
from hostql.server.services import teams as team_service
from hostql.server.services.listing import ListOptions, now
from hostql.server.state import ServerState
from hostql.server.storage.models import Host, User


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    state: ServerState = app.state.hostql
    try:  # on the server's own event loop, where its Redis connections live
        await state.pubsub.close()
    except Exception:
        logging.getLogger(__name__).debug("closing the pub/sub backend failed", exc_info=True)


router = APIRouter(prefix="/api/v1/fleet", tags=["live queries"], lifespan=lifespan)


class Selected(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hosts: list[int] = Field(default_factory=list)
    labels: list[int] = Field(default_factory=list)
    teams: list[int] = Field(default_factory=list)


class RunCampaign(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str | None = None
    query_id: int | None = None
    selected: Selected = Field(default_factory=Selected)


class SelectedNames(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hosts: list[str] = Field(default_factory=list)
    labels: list[str] = Field(default_factory=list)


class TargetSearch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = ""
    query_id: int | None = None  # accepted as Fleet's UI sends it; the search does not depend on it
    selected: Selected = Field(default_factory=Selected)


class TargetCount(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query_id: int | None = None
    selected: Selected = Field(default_factory=Selected)


class RunCampaignByNames(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str | None = None
    query_id: int | None = None
    selected: SelectedNames = Field(default_factory=SelectedNames)


class RunSaved(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host_ids: list[int]


class RunOnHost(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str


def _start(state: ServerState, session: DbSession, user: CurrentUser, sql: str | None, query_id: int | None,
           selection: campaigns.Selection) -> dict[str, Any]:
    if query_id is not None:
        query = campaigns.load_query(session, user, query_id)
        campaigns.check_can_run(session, user, query, query.query)
    elif sql is not None and sql.strip():
        campaigns.check_can_run(session, user, None, sql)
        query = campaigns.adhoc_query(session, user, sql)
    else:
        raise BadRequest("one of query or query_id is required", name="query")
    campaign, host_ids, metrics = campaigns.create_campaign(state, session, user, query, selection)
    session.commit()  # the campaign exists before any agent can answer it
    campaigns.target_store(state).add(campaign.id, query.query, host_ids)
    return {"campaign": campaigns.campaign_json(campaign, metrics)}


@router.post("/queries/run")
def run_campaign(body: RunCampaign, state: State, session: DbSession, user: CurrentUser) -> dict[str, Any]:
    selection = campaigns.Selection(**body.selected.model_dump())
    return _start(state, session, user, body.query, body.query_id, selection)


@router.post("/queries/run_by_names")
def run_campaign_by_names(body: RunCampaignByNames, state: State, session: DbSession,
                          user: CurrentUser) -> dict[str, Any]:
    selection = campaigns.selection_by_names(session, body.selected.hosts, body.selected.labels)
    return _start(state, session, user, body.query, body.query_id, selection)


def _target_counts(state: ServerState, session: DbSession, user: User, selected: Selected) -> dict[str, int]:
    selection = campaigns.Selection(**selected.model_dump())
    found = campaigns.metrics(state, session, campaigns.resolve_host_ids(session, user, selection))
    return {"targets_count": found.total, "targets_online": found.online, "targets_offline": found.offline,
            "targets_missing_in_action": found.missing_in_action}


@router.post("/targets")
def search_targets(body: TargetSearch, state: State, session: DbSession, user: CurrentUser) -> dict[str, Any]:
    """The live-query target picker: hosts, labels and teams matching ``query`` that are not selected
    yet (at most ``SEARCH_LIMIT`` of each), and the counts of the current selection."""
    at = now(state)
    filters = host_service.HostFilters(query=body.query or None, visible_teams=authz.visible_team_ids(user))
    hosts = host_service.search_hosts(session, filters, body.selected.hosts, at)
    labels = [label for label in label_service.list_labels(session, ListOptions(), body.query)
              if label.id not in body.selected.labels][:host_service.SEARCH_LIMIT]
    teams = [team for team in team_service.list_teams(session, ListOptions(), body.query)
             if team.id not in body.selected.teams and authz.can_see_team(user, team.id)][:host_service.SEARCH_LIMIT]
    return {"targets": {"hosts": host_service.hosts_json(session, hosts, at),
                        "labels": label_service.labels_json(session, labels),
                        "teams": [team_service.team_to_json(session, team) for team in teams]},
            **_target_counts(state, session, user, body.selected)}


@router.post("/targets/count")
def count_targets(body: TargetCount, state: State, session: DbSession, user: CurrentUser) -> dict[str, Any]:
    return _target_counts(state, session, user, body.selected)


@router.websocket("/results/websocket")
async def results_websocket(websocket: WebSocket) -> None:
    state: ServerState = websocket.app.state.hostql
    await live_results.serve_websocket(state, websocket)


@router.post("/queries/{id}/run")
async def run_saved_query(id: int, body: RunSaved, state: State, session: DbSession,
                          user: CurrentUser) -> dict[str, Any]:
    query = campaigns.load_query(session, user, id)
    return await live_results.run_on_hosts(state, session, user, query, body.host_ids)


def _host(session: DbSession, user: CurrentUser, host: Host | None, label: str) -> Host:
    if host is None or not authz.can_see_team(user, host.team_id):
        raise NotFound(f"host {label} was not found", name="id")
    return host


@router.post("/hosts/{id}/query")
async def run_on_host(id: int, body: RunOnHost, state: State, session: DbSession, user: CurrentUser) -> dict[str, Any]:
    host = _host(session, user, session.get(Host, id), str(id))
    return await live_results.run_on_host(state, session, user, host, body.query)


@router.post("/hosts/identifier/{identifier}/query")
async def run_on_host_by_identifier(identifier: str, body: RunOnHost, state: State, session: DbSession,
                                    user: CurrentUser) -> dict[str, Any]:
    host = _host(session, user, campaigns.find_host(session, identifier), repr(identifier))
    return await live_results.run_on_host(state, session, user, host, body.query)


@router.get("/status/live_query")
def live_query_status(session: DbSession, user: CurrentUser) -> dict[str, Any]:
    if campaigns.live_queries_disabled(session):
        raise BadRequest("live queries are disabled in the app settings", name="base",
                         message="live query disabled", status=503)
    return {}


@router.get("/status/result_store")
async def result_store_status(state: State, user: CurrentUser) -> dict[str, Any]:
    try:
        campaigns.target_store(state).active()
    except Exception as exc:
        raise BadRequest(f"result store unavailable: {exc}", name="base", message="result store unavailable",
                         status=503) from None
    return {}
