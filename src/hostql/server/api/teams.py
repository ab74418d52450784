"""REST API: teams, team enroll secrets, global enroll secrets (``/spec/enroll_secret``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict

from hostql.server.api.deps import CurrentUser, DbSession
from hostql.server.services import teams as team_service
from hostql.server.services import users as user_service
from hostql.server.services.authz import ADMIN, READ, WRITE, require, require_any, visible_team_ids
from hostql.server.services.listing import ListOptions, iso, list_options

router = APIRouter(prefix="/api/v1/fleet", tags=["teams"])

Paging = Annotated[ListOptions, Depends(list_options)]


class SecretItem(BaseModel):
    model_config = ConfigDict(extra="ignore")  # GET output (with created_at) may be posted back
    secret: str


class CreateTeamBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    description: str = ""
    secrets: list[SecretItem] | None = None


class ModifyTeamBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    description: str | None = None
    webhook_settings: dict[str, Any] | None = None
    features: dict[str, Any] | None = None
    host_expiry_settings: dict[str, Any] | None = None
    integrations: dict[str, Any] | None = None


class SecretsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    secrets: list[SecretItem]


class AgentOptionsBody(BaseModel):
    """Fleet's agent options document (osquery config, per-platform overrides, flags)."""

    model_config = ConfigDict(extra="forbid")
    config: dict[str, Any] | None = None
    overrides: dict[str, Any] | None = None
    command_line_flags: dict[str, Any] | None = None
    extensions: dict[str, Any] | None = None
    update_channels: dict[str, Any] | None = None
    script_execution_timeout: int | None = None


class TeamMember(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: int
    role: str


class TeamMembersBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    users: list[TeamMember]


class TeamMemberIds(BaseModel):
    model_config = ConfigDict(extra="ignore")  # Fleet's UI sends the whole user object
    id: int


class RemoveMembersBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    users: list[TeamMemberIds]


class EnrollSecretSpecBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    spec: SecretsBody


@router.get("/teams")
def list_teams(session: DbSession, user: CurrentUser, paging: Paging, query: str = "") -> dict[str, Any]:
    require_any(user, READ)
    mine = visible_team_ids(user)
    teams = [t for t in team_service.list_teams(session, paging, query) if mine is None or t.id in mine]
    return {"teams": [team_service.team_to_json(session, t) for t in teams]}


@router.post("/teams")
def create_team(session: DbSession, user: CurrentUser, body: CreateTeamBody) -> dict[str, Any]:
    require(user, ADMIN)
    secrets = [s.secret for s in body.secrets] if body.secrets is not None else None
    team = team_service.create_team(session, user, name=body.name, description=body.description, secrets=secrets)
    return {"team": team_service.team_to_json(session, team)}


@router.get("/teams/{team_id}")
def get_team(session: DbSession, user: CurrentUser, team_id: int) -> dict[str, Any]:
    team = team_service.get_team(session, team_id)
    require(user, READ, team_id)
    return {"team": team_service.team_to_json(session, team)}


@router.patch("/teams/{team_id}")
def modify_team(session: DbSession, user: CurrentUser, team_id: int, body: ModifyTeamBody) -> dict[str, Any]:
    require(user, ADMIN)
    team = team_service.get_team(session, team_id)
    team_service.modify_team(session, user, team, body.model_dump(exclude_unset=True))
    return {"team": team_service.team_to_json(session, team)}


@router.delete("/teams/{team_id}")
def delete_team(session: DbSession, user: CurrentUser, team_id: int) -> dict[str, Any]:
    require(user, ADMIN)
    team_service.delete_team(session, user, team_service.get_team(session, team_id))
    return {}


@router.post("/teams/{team_id}/agent_options")
def set_agent_options(session: DbSession, user: CurrentUser, team_id: int,
                      body: AgentOptionsBody) -> dict[str, Any]:
    team = team_service.get_team(session, team_id)
    require(user, ADMIN, team_id)
    team_service.set_agent_options(session, user, team, body.model_dump(exclude_unset=True))
    return {"team": team_service.team_to_json(session, team)}


@router.get("/teams/{team_id}/users")
def get_team_users(session: DbSession, user: CurrentUser, team_id: int) -> dict[str, Any]:
    team_service.get_team(session, team_id)
    require(user, ADMIN, team_id)  # global admins and the team's own admins manage its users
    return {"users": user_service.team_members(session, team_id)}


@router.patch("/teams/{team_id}/users")
def add_team_users(session: DbSession, user: CurrentUser, team_id: int, body: TeamMembersBody) -> dict[str, Any]:
    team = team_service.get_team(session, team_id)
    require(user, ADMIN, team_id)
    user_service.set_team_members(session, user, team_id,
                                  [user_service.TeamRole(member.id, member.role) for member in body.users])
    session.flush()
    return {"team": team_service.team_to_json(session, team)}


@router.delete("/teams/{team_id}/users")
def remove_team_users(session: DbSession, user: CurrentUser, team_id: int, body: RemoveMembersBody
                      ) -> dict[str, Any]:
    team = team_service.get_team(session, team_id)
    require(user, ADMIN, team_id)
    user_service.remove_team_members(session, user, team_id, [member.id for member in body.users])
    session.flush()
    return {"team": team_service.team_to_json(session, team)}


@router.get("/teams/{team_id}/secrets")
def get_team_secrets(session: DbSession, user: CurrentUser, team_id: int) -> dict[str, Any]:
    team_service.get_team(session, team_id)
    require(user, WRITE, team_id)
    return {"secrets": [team_service.secret_to_json(s) for s in team_service.secrets_of(session, team_id)]}


@router.patch("/teams/{team_id}/secrets")
def set_team_secrets(session: DbSession, user: CurrentUser, team_id: int, body: SecretsBody) -> dict[str, Any]:
    team_service.get_team(session, team_id)
    require(user, WRITE, team_id)
    rows = team_service.replace_secrets(session, user, team_id, [s.secret for s in body.secrets])
    return {"secrets": [team_service.secret_to_json(s) for s in rows]}


@router.get("/spec/enroll_secret")
def get_global_secrets(session: DbSession, user: CurrentUser) -> dict[str, Any]:
    require(user, WRITE)
    rows = team_service.secrets_of(session, None)
    return {"spec": {"secrets": [{"secret": s.secret, "created_at": iso(s.created_at)} for s in rows]}}


@router.post("/spec/enroll_secret")
def set_global_secrets(session: DbSession, user: CurrentUser, body: EnrollSecretSpecBody) -> dict[str, Any]:
    require(user, WRITE)
    team_service.replace_secrets(session, user, None, [s.secret for s in body.spec.secrets])
    return {}
