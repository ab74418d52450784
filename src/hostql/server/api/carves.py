"""REST API: file carves (``/api/v1/fleet/carves...``), what ``fleetctl get carves|carve`` reads."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from hostql.server.api.deps import CurrentUser, DbSession, State
from hostql.server.services import carves as carve_service
from hostql.server.services.authz import WRITE, require, require_any, visible_team_ids
from hostql.server.services.listing import ListOptions, list_options, now
from hostql.server.storage.models import Carve, User

router = APIRouter(prefix="/api/v1/fleet", tags=["carves"])

Paging = Annotated[ListOptions, Depends(list_options)]


def _carve_for(state: State, session: DbSession, user: User, carve_id: int) -> Carve:
    # A carve holds a file's contents: those who may change the host's team's objects may read it.
    carve = carve_service.get_carve(session, carve_id, now(state))
    require(user, WRITE, carve_service.carve_team(session, carve))
    return carve


@router.get("/carves")
def list_carves(state: State, session: DbSession, user: CurrentUser, paging: Paging,
                expired: bool = False) -> dict[str, Any]:
    """Carves of the hosts the caller may see, newest first; ``expired=true`` includes expired ones."""
    require_any(user, WRITE)
    found = carve_service.list_carves(session, paging, expired=expired, visible_teams=visible_team_ids(user),
                                      now=now(state))
    return {"carves": [carve_service.carve_json(carve) for carve in found]}


@router.get("/carves/{carve_id}")
def get_carve(state: State, session: DbSession, user: CurrentUser, carve_id: int) -> dict[str, Any]:
    return {"carve": carve_service.carve_json(_carve_for(state, session, user, carve_id))}


@router.get("/carves/{carve_id}/block/{block_id}")
def get_carve_block(state: State, session: DbSession, user: CurrentUser, carve_id: int,
                    block_id: int) -> dict[str, Any]:
    carve = _carve_for(state, session, user, carve_id)
    return {"data": carve_service.get_block(session, carve, block_id)}
