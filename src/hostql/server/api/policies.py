"""REST API: policies, global (``/global/policies``) and per team (``/teams/{id}/policies``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict

from hostql.server.api.deps import CurrentUser, DbSession
from hostql.server.services import policies as policy_service
from hostql.server.services import teams as team_service
from hostql.server.services.authz import READ, WRITE, require, require_any
from hostql.server.services.listing import ListOptions, list_options

router = APIRouter(prefix="/api/v1/fleet", tags=["policies"])

Paging = Annotated[ListOptions, Depends(list_options)]


class CreatePolicyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = ""
    query: str = ""
    description: str = ""
    resolution: str = ""
    platform: str = ""
    critical: bool = False
    query_id: int | None = None  # legacy: copy name and SQL from a saved query
    calendar_events_enabled: bool = False


class ModifyPolicyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    query: str | None = None
    description: str | None = None
    resolution: str | None = None
    platform: str | None = None
    critical: bool | None = None
    calendar_events_enabled: bool | None = None


class DeletePoliciesBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: list[int]


def _create(session: DbSession, user: CurrentUser, team_id: int | None, body: CreatePolicyBody) -> dict[str, Any]:
    require(user, WRITE, team_id)
    policy = policy_service.create_policy(
        session, user, team_id, name=body.name, query=body.query, description=body.description,
        resolution=body.resolution, platform=body.platform, critical=body.critical, query_id=body.query_id)
    return {"policy": policy_service.policy_json(session, policy)}


def _modify(session: DbSession, user: CurrentUser, team_id: int | None, policy_id: int,
            body: ModifyPolicyBody) -> dict[str, Any]:
    require(user, WRITE, team_id)
    policy = policy_service.get_policy(session, policy_id, team_id)
    policy_service.modify_policy(session, user, policy, body.model_dump(exclude_unset=True))
    return {"policy": policy_service.policy_json(session, policy)}


# --- global ----------------------------------------------------------------------------------

@router.get("/global/policies")
def list_global(session: DbSession, user: CurrentUser, paging: Paging, query: str = "") -> dict[str, Any]:
    require_any(user, READ)
    policies = policy_service.list_policies(session, None, paging, query)
    return {"policies": policy_service.policies_json(session, policies)}


@router.post("/global/policies")
def create_global(session: DbSession, user: CurrentUser, body: CreatePolicyBody) -> dict[str, Any]:
    return _create(session, user, None, body)


@router.post("/global/policies/delete")
def delete_global(session: DbSession, user: CurrentUser, body: DeletePoliciesBody) -> dict[str, Any]:
    require(user, WRITE)
    return {"deleted": policy_service.delete_policies(session, user, None, body.ids)}


@router.get("/global/policies/{policy_id}")
def get_global(session: DbSession, user: CurrentUser, policy_id: int) -> dict[str, Any]:
    require_any(user, READ)
    return {"policy": policy_service.policy_json(session, policy_service.get_policy(session, policy_id, None))}


@router.patch("/global/policies/{policy_id}")
def modify_global(session: DbSession, user: CurrentUser, policy_id: int, body: ModifyPolicyBody) -> dict[str, Any]:
    return _modify(session, user, None, policy_id, body)


@router.get("/policies/count")
def count_global(session: DbSession, user: CurrentUser, query: str = "") -> dict[str, Any]:
    require_any(user, READ)
    return {"count": policy_service.count_policies(session, None, query)}


# --- team ------------------------------------------------------------------------------------

@router.get("/teams/{team_id}/policies")
def list_team(session: DbSession, user: CurrentUser, team_id: int, paging: Paging, query: str = ""
              ) -> dict[str, Any]:
    team_service.get_team(session, team_id)
    require(user, READ, team_id)
    policies = policy_service.list_policies(session, team_id, paging, query)
    inherited = policy_service.list_policies(session, None, ListOptions())
    return {"policies": policy_service.policies_json(session, policies),
            "inherited_policies": policy_service.policies_json(session, inherited)}


@router.get("/teams/{team_id}/policies/count")
def count_team(session: DbSession, user: CurrentUser, team_id: int, query: str = "") -> dict[str, Any]:
    team_service.get_team(session, team_id)
    require(user, READ, team_id)
    return {"count": policy_service.count_policies(session, team_id, query)}


@router.post("/teams/{team_id}/policies")
def create_team_policy(session: DbSession, user: CurrentUser, team_id: int, body: CreatePolicyBody
                       ) -> dict[str, Any]:
    team_service.get_team(session, team_id)
    require(user, WRITE, team_id)
    return _create(session, user, team_id, body)


@router.post("/teams/{team_id}/policies/delete")
def delete_team_policies(session: DbSession, user: CurrentUser, team_id: int, body: DeletePoliciesBody
                         ) -> dict[str, Any]:
    team_service.get_team(session, team_id)
    require(user, WRITE, team_id)
    return {"deleted": policy_service.delete_policies(session, user, team_id, body.ids)}


@router.get("/teams/{team_id}/policies/{policy_id}")
def get_team_policy(session: DbSession, user: CurrentUser, team_id: int, policy_id: int) -> dict[str, Any]:
    team_service.get_team(session, team_id)
    require(user, READ, team_id)
    return {"policy": policy_service.policy_json(session, policy_service.get_policy(session, policy_id, team_id))}


@router.patch("/teams/{team_id}/policies/{policy_id}")
def modify_team_policy(session: DbSession, user: CurrentUser, team_id: int, policy_id: int,
                       body: ModifyPolicyBody) -> dict[str, Any]:
    require(user, WRITE, team_id)
    team_service.get_team(session, team_id)
    return _modify(session, user, team_id, policy_id, body)
