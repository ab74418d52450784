"""REST API: login, logout, me, passwords, users, sessions, activities (``/api/v1/fleet/...``).

Thin handlers: rules live in ``services/users.py``, ``services/auth.py`` and
``services/activities.py``; the least role per route is in
``services/route_roles.py`` (enforced by ``CurrentUser``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import Field

from hostql.server.api.deps import (
    CurrentSession,
    CurrentUser,
    DbSession,
    RequestBody,
    State,
    client_ip,
)
from hostql.server.errors import AuthenticationRequired, Forbidden, NotFound, TooManyRequests
from hostql.server.services import auth, authz
from hostql.server.services import users as users_service
from hostql.server.services.activities import activity_dict, list_activities, record_activity
from hostql.server.storage.models import Session, Team, User

router = APIRouter(prefix="/api/v1/fleet")

Page = Annotated[int, Query(ge=0, le=1_000_000)]
PerPage = Annotated[int, Query(ge=1, le=10_000)]
Direction = Annotated[Literal["asc", "desc"], Query()]


class LoginBody(RequestBody):
    email: str = Field(max_length=255)
    password: str = Field(max_length=1024)


class TeamRoleBody(RequestBody):
    id: int
    role: str


class CreateUserBody(RequestBody):
    name: str = Field(max_length=255)
    email: str = Field(max_length=255)
    password: str = Field(max_length=1024)
    global_role: str | None = None
    teams: list[TeamRoleBody] | None = None
    api_only: bool = False
    sso_enabled: bool = False
    admin_forced_password_reset: bool | None = None
    position: str = ""


class ModifyUserBody(RequestBody):
    name: str | None = Field(default=None, max_length=255)
    email: str | None = Field(default=None, max_length=255)
    password: str | None = Field(default=None, max_length=1024)
    new_password: str | None = Field(default=None, max_length=1024)
    global_role: str | None = None
    teams: list[TeamRoleBody] | None = None
    enabled: bool | None = None
    position: str | None = None
    sso_enabled: bool | None = None


class ChangePasswordBody(RequestBody):
    old_password: str = Field(max_length=1024)
    new_password: str = Field(max_length=1024)


class NewPasswordBody(RequestBody):
    new_password: str = Field(max_length=1024)


class RequireResetBody(RequestBody):
    require: bool


def _available_teams(session: DbSession, user: User) -> list[dict[str, Any]]:
    from sqlalchemy import select

    visible = authz.visible_team_ids(user)
    stmt = select(Team).order_by(Team.id)
    if visible is not None:
        stmt = stmt.where(Team.id.in_(visible))
    return [{"id": t.id, "name": t.name, "description": t.description} for t in session.scalars(stmt)]


def _team_roles(teams: list[TeamRoleBody] | None) -> list[users_service.TeamRole] | None:
    return None if teams is None else [users_service.TeamRole(t.id, t.role) for t in teams]


# --- authentication ---------------------------------------------------------------------


@router.post("/login")
def login(body: LoginBody, request: Request, session: DbSession, state: State) -> dict[str, Any]:
    ip = client_ip(request)
    limiter = auth.login_limiter(state.extras, state.settings)
    key = auth.login_key(ip, body.email)
    wait = limiter.retry_after(key)
    if wait is not None:
        raise TooManyRequests("too many login attempts, try again later", name="base",
                              headers={"Retry-After": str(wait)})
    user = auth.authenticate(session, body.email, body.password)
    if user is None:
        limiter.hit(key)
        # The request's session is rolled back by the error; the audit entry must survive it.
        with state.database.session() as audit:
            record_activity(audit, None, "user_failed_login", {"email": body.email, "public_ip": ip})
        raise AuthenticationRequired("Authentication failed", message="Authentication failed")
    limiter.reset(key)
    token, _ = auth.create_session(session, user, state.settings)
    record_activity(session, user, "user_logged_in", {"public_ip": ip})
    return {"user": users_service.user_dict(session, user), "available_teams": _available_teams(session, user),
            "token": token}


@router.post("/logout")
def logout(session: DbSession, user: CurrentUser, login_session: CurrentSession) -> dict[str, Any]:
    session.delete(login_session)
    return {}


@router.get("/me")
def me(session: DbSession, user: CurrentUser) -> dict[str, Any]:
    return {"user": users_service.user_dict(session, user), "available_teams": _available_teams(session, user)}


@router.post("/change_password")
def change_password(body: ChangePasswordBody, session: DbSession, user: CurrentUser) -> dict[str, Any]:
    users_service.change_own_password(session, user, body.old_password, body.new_password)
    return {}


@router.post("/perform_required_password_reset")
def perform_required_password_reset(body: NewPasswordBody, session: DbSession, user: CurrentUser) -> dict[str, Any]:
    users_service.perform_required_reset(session, user, body.new_password)
    return {"user": users_service.user_dict(session, user)}


# --- users ------------------------------------------------------------------------------


@router.get("/users")
def list_users(
    session: DbSession, user: CurrentUser, page: Page = 0, per_page: PerPage = 100,
    order_key: Annotated[str, Query(max_length=64)] = "name", order_direction: Direction = "asc",
    query: Annotated[str, Query(max_length=255)] = "", team_id: Annotated[int | None, Query(ge=1)] = None,
) -> dict[str, Any]:
    authz.require(user, authz.ADMIN)
    rows = users_service.list_users(session, page=page, per_page=per_page, order_key=order_key,
                                    descending=order_direction == "desc", query=query, team_id=team_id)
    return {"users": [users_service.user_dict(session, row) for row in rows]}


@router.post("/users/admin")
def create_user(body: CreateUserBody, session: DbSession, user: CurrentUser, state: State) -> dict[str, Any]:
    authz.require(user, authz.ADMIN)
    created = users_service.create_user(
        session, user, name=body.name, email=body.email, password=body.password, global_role=body.global_role,
        teams=_team_roles(body.teams), api_only=body.api_only, force_password_reset=body.admin_forced_password_reset,
    )
    result: dict[str, Any] = {"user": users_service.user_dict(session, created)}
    if created.api_only:
        result["token"], _ = auth.create_session(session, created, state.settings)
    return result


def _self_or_admin(actor: User, user_id: int) -> None:
    if actor.id != user_id and not authz.allowed(actor, authz.ADMIN):
        raise Forbidden("forbidden", name="base")


@router.get("/users/{user_id}")
def get_user(user_id: int, session: DbSession, user: CurrentUser) -> dict[str, Any]:
    found = users_service.get_user(session, user_id)
    _self_or_admin(user, user_id)
    return {"user": users_service.user_dict(session, found), "available_teams": _available_teams(session, found)}


@router.patch("/users/{user_id}")
def modify_user(user_id: int, body: ModifyUserBody, session: DbSession, user: CurrentUser) -> dict[str, Any]:
    changes = users_service.UserChanges(
        name=body.name, email=body.email, password=body.password, new_password=body.new_password,
        global_role=body.global_role, teams=_team_roles(body.teams), enabled=body.enabled, position=body.position,
        global_role_set="global_role" in body.model_fields_set,
    )
    modified = users_service.modify_user(session, user, user_id, changes)
    return {"user": users_service.user_dict(session, modified)}


@router.delete("/users/{user_id}")
def delete_user(user_id: int, session: DbSession, user: CurrentUser) -> dict[str, Any]:
    authz.require(user, authz.ADMIN)
    users_service.delete_user(session, user, user_id)
    return {}


@router.post("/users/{user_id}/require_password_reset")
def require_password_reset(user_id: int, body: RequireResetBody, session: DbSession,
                           user: CurrentUser) -> dict[str, Any]:
    authz.require(user, authz.ADMIN)
    found = users_service.require_password_reset(session, user, user_id, body.require)
    return {"user": users_service.user_dict(session, found)}


# --- sessions ---------------------------------------------------------------------------


@router.get("/users/{user_id}/sessions")
def get_user_sessions(user_id: int, session: DbSession, user: CurrentUser) -> dict[str, Any]:
    authz.require(user, authz.ADMIN)
    users_service.get_user(session, user_id)
    return {"sessions": [auth.session_dict(row) for row in auth.user_sessions(session, user_id)]}


@router.delete("/users/{user_id}/sessions")
def delete_user_sessions(user_id: int, session: DbSession, user: CurrentUser) -> dict[str, Any]:
    authz.require(user, authz.ADMIN)
    users_service.get_user(session, user_id)
    auth.delete_user_sessions(session, user_id)
    return {}


def _get_session(session: DbSession, session_id: int) -> Session:
    row = session.get(Session, session_id)
    if row is None:
        raise NotFound(f"session {session_id} not found", name="id")
    return row


@router.get("/sessions/{session_id}")
def get_session_info(session_id: int, session: DbSession, user: CurrentUser) -> dict[str, Any]:
    authz.require(user, authz.ADMIN)
    row = _get_session(session, session_id)
    return {"session_id": row.id, **auth.session_dict(row)}


@router.delete("/sessions/{session_id}")
def delete_session(session_id: int, session: DbSession, user: CurrentUser) -> dict[str, Any]:
    authz.require(user, authz.ADMIN)
    session.delete(_get_session(session, session_id))
    return {}


# --- activities -------------------------------------------------------------------------


@router.get("/activities")
def activities(
    session: DbSession, user: CurrentUser, page: Page = 0, per_page: PerPage = 100,
    order_key: Annotated[str, Query(max_length=64)] = "created_at", order_direction: Direction = "desc",
    activity_type: Annotated[str | None, Query(max_length=255)] = None,
) -> dict[str, Any]:
    authz.require(user, authz.READ)
    result = list_activities(session, page=page, per_page=per_page, order_key=order_key,
                             descending=order_direction == "desc", type_=activity_type)
    return {"activities": [activity_dict(a) for a in result.activities],
            "meta": {"has_next_results": result.has_next, "has_previous_results": result.has_previous}}
