"""Users: Fleet's user shape, creation, role changes, enable/disable, deletion.

Routers stay thin; every rule lives here (who may change what, the last admin
cannot be removed, global and team roles are mutually exclusive, ...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session as OrmSession

from hostql.server.errors import Conflict, Forbidden, NotFound, ValidationFailed
from hostql.server.services import auth, authz
from hostql.server.services.activities import record_activity
from hostql.server.storage.models import Team, User, UserTeam

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
USER_ORDER_KEYS = {"id": User.id, "name": User.name, "email": User.email, "created_at": User.created_at,
                   "updated_at": User.updated_at, "global_role": User.global_role}


def iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class TeamRole:
    id: int
    role: str


def user_dict(session: OrmSession, user: User) -> dict[str, Any]:
    """Fleet's user object."""
    teams: list[dict[str, Any]] = []
    if user.team_roles:
        ids = [r.team_id for r in user.team_roles]
        names = {t.id: t for t in session.scalars(select(Team).where(Team.id.in_(ids)))}
        for row in sorted(user.team_roles, key=lambda r: r.team_id):
            team = names.get(row.team_id)
            teams.append({"id": row.team_id, "name": team.name if team else "",
                          "description": team.description if team else "", "role": row.role})
    return {
        "id": user.id, "name": user.name, "email": user.email, "global_role": user.global_role,
        "enabled": not user.disabled, "force_password_reset": user.force_password_reset,
        "sso_enabled": False, "mfa_enabled": False, "api_only": user.api_only, "teams": teams,
        "created_at": iso(user.created_at), "updated_at": iso(user.updated_at), "gravatar_url": "",
        "position": "",
    }


def get_user(session: OrmSession, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found", name="id")
    return user


def _check_email(session: OrmSession, email: str, exclude_id: int | None = None) -> str:
    email = email.strip()
    if not EMAIL.match(email) or len(email) > 255:
        raise ValidationFailed("invalid email address", name="email")
    stmt = select(User.id).where(func.lower(User.email) == email.lower())
    existing = session.scalars(stmt).first()
    if existing is not None and existing != exclude_id:
        raise Conflict(f"a user with email {email} already exists", name="email")
    return email


def _check_roles(session: OrmSession, global_role: str | None, teams: list[TeamRole] | None) -> None:
    if global_role is not None and teams:
        raise ValidationFailed("global_role and teams are mutually exclusive", name="global_role")
    if global_role is None and not teams:
        raise ValidationFailed("either global_role or teams must be set", name="global_role")
    if global_role is not None and global_role not in authz.RANK:
        raise ValidationFailed(f"invalid role {global_role!r}", name="global_role")
    seen: set[int] = set()
    for team in teams or []:
        if team.role not in authz.RANK:
            raise ValidationFailed(f"invalid role {team.role!r} for team {team.id}", name="teams")
        if team.id in seen:
            raise ValidationFailed(f"team {team.id} listed twice", name="teams")
        seen.add(team.id)
        if session.get(Team, team.id) is None:
            raise ValidationFailed(f"team {team.id} does not exist", name="teams")


def _enabled_admins(session: OrmSession) -> int:
    stmt = select(func.count()).select_from(User).where(User.global_role == "admin", User.disabled.is_(False))
    return int(session.scalar(stmt) or 0)


def _guard_last_admin(session: OrmSession, user: User) -> None:
    if user.global_role == "admin" and not user.disabled and _enabled_admins(session) <= 1:
        raise ValidationFailed("cannot remove the last global admin", name="global_role")


def _subject(user: User) -> dict[str, Any]:
    return {"user_id": user.id, "user_name": user.name, "user_email": user.email}


def create_user(
    session: OrmSession, actor: User | None, *, name: str, email: str, password: str,
    global_role: str | None, teams: list[TeamRole] | None = None, api_only: bool = False,
    force_password_reset: bool | None = None,
) -> User:
    """Create a user (admin-created, no invite).  Records ``created_user`` and role activities."""
    if not name.strip():
        raise ValidationFailed("name is required", name="name")
    email = _check_email(session, email)
    auth.check_password_policy(password)
    _check_roles(session, global_role, teams)
    reset = (not api_only) if force_password_reset is None else (force_password_reset and not api_only)
    user = User(name=name.strip(), email=email, password_hash=auth.hash_password(password),
                global_role=global_role, api_only=api_only, force_password_reset=reset)
    for team in teams or []:
        user.team_roles.append(UserTeam(team_id=team.id, role=team.role))
    session.add(user)
    session.flush()
    if actor is not None:
        record_activity(session, actor, "created_user", _subject(user))
        _record_role_activities(session, actor, user, None, {}, global_role, {t.id: t.role for t in teams or []})
    return user


def _record_role_activities(
    session: OrmSession, actor: User, user: User, old_global: str | None, old_teams: dict[int, str],
    new_global: str | None, new_teams: dict[int, str],
) -> None:
    if new_global != old_global:
        if new_global is not None:
            record_activity(session, actor, "changed_user_global_role", {**_subject(user), "role": new_global})
        else:
            record_activity(session, actor, "deleted_user_global_role", {**_subject(user), "role": old_global})
    for team_id in sorted(set(old_teams) | set(new_teams)):
        team = session.get(Team, team_id)
        details = {**_subject(user), "team_id": team_id, "team_name": team.name if team else ""}
        if team_id in new_teams and new_teams[team_id] != old_teams.get(team_id):
            record_activity(session, actor, "changed_user_team_role", {**details, "role": new_teams[team_id]})
        elif team_id not in new_teams:
            record_activity(session, actor, "deleted_user_team_role", {**details, "role": old_teams[team_id]})


@dataclass
class UserChanges:
    """A PATCH /users/{id} body; ``None`` fields are left alone."""

    name: str | None = None
    email: str | None = None
    password: str | None = None  # the caller's current password (needed to change one's own email)
    new_password: str | None = None
    global_role: str | None = None
    teams: list[TeamRole] | None = None
    enabled: bool | None = None
    position: str | None = None
    global_role_set: bool = False  # "global_role" was present in the body (may be null)


def modify_user(session: OrmSession, actor: User, user_id: int, changes: UserChanges) -> User:
    user = get_user(session, user_id)
    is_admin = authz.allowed(actor, authz.ADMIN)
    is_self = actor.id == user.id
    if not is_admin and not is_self:
        raise Forbidden("forbidden", name="base")
    admin_only = changes.global_role_set or changes.teams is not None or changes.enabled is not None
    if admin_only and not is_admin:
        raise Forbidden("only an admin may change roles or enable/disable users", name="base")
    if changes.new_password is not None and not is_admin:
        raise Forbidden("use /change_password to change your own password", name="new_password")
    if changes.name is not None:
        if not changes.name.strip():
            raise ValidationFailed("name cannot be empty", name="name")
        user.name = changes.name.strip()
    if changes.email is not None and changes.email.strip().lower() != user.email.lower():
        if is_self and not auth.verify_password(user.password_hash, changes.password or ""):
            raise ValidationFailed("current password is required to change your email", name="password")
        user.email = _check_email(session, changes.email, exclude_id=user.id)
    if changes.new_password is not None:
        auth.check_password_policy(changes.new_password, "new_password")
        user.password_hash = auth.hash_password(changes.new_password)
        if not is_self:
            auth.delete_user_sessions(session, user.id)
    if changes.global_role_set or changes.teams is not None:
        _change_roles(session, actor, user, changes)
    if changes.enabled is not None and changes.enabled == user.disabled:
        _set_enabled(session, actor, user, changes.enabled)
    session.flush()
    return user


def _change_roles(session: OrmSession, actor: User, user: User, changes: UserChanges) -> None:
    old_global, old_teams = user.global_role, authz.team_roles(user)
    new_global = changes.global_role if changes.global_role_set else (None if changes.teams else old_global)
    new_teams_list = changes.teams if changes.teams is not None else (
        [] if new_global is not None else [TeamRole(k, v) for k, v in old_teams.items()])
    _check_roles(session, new_global, new_teams_list)
    if old_global == "admin" and new_global != "admin":
        _guard_last_admin(session, user)
    new_teams = {t.id: t.role for t in new_teams_list}
    user.global_role = new_global
    user.team_roles.clear()
    session.flush()
    for team_id, role in new_teams.items():
        user.team_roles.append(UserTeam(team_id=team_id, role=role))
    _record_role_activities(session, actor, user, old_global, old_teams, new_global, new_teams)


def team_members(session: OrmSession, team_id: int) -> list[dict[str, Any]]:
    """``GET /teams/{id}/users``: the team's users (Fleet's user objects) with their ``role`` on it."""
    rows = session.execute(select(User, UserTeam.role).join(UserTeam, UserTeam.user_id == User.id)
                           .where(UserTeam.team_id == team_id).order_by(User.id))
    return [{**user_dict(session, user), "role": role} for user, role in rows]


def set_team_members(session: OrmSession, actor: User, team_id: int, members: list[TeamRole]) -> None:
    """``PATCH /teams/{id}/users``: add users to the team, or change their role on it (their other
    teams are kept).  A user with a global role cannot also have team roles (Fleet's rule)."""
    for member in members:
        user = get_user(session, member.id)
        if user.global_role is not None:
            raise ValidationFailed(f"user {user.id} has the global role {user.global_role}; "
                                   "change it to team roles first (PATCH /users/{id})", name="users")
        teams = authz.team_roles(user)
        teams[team_id] = member.role
        _change_roles(session, actor, user, UserChanges(teams=[TeamRole(other, role) for other, role in teams.items()]))


def remove_team_members(session: OrmSession, actor: User, team_id: int, user_ids: list[int]) -> None:
    """``DELETE /teams/{id}/users``: take users off the team.  A user for whom that was the last
    role is refused (a user always has a role here): delete the user, or give them another role."""
    for user_id in user_ids:
        user = get_user(session, user_id)
        teams = authz.team_roles(user)
        if team_id not in teams:
            raise ValidationFailed(f"user {user_id} is not a member of team {team_id}", name="users")
        left = [TeamRole(other, role) for other, role in teams.items() if other != team_id]
        if not left:
            raise ValidationFailed(f"team {team_id} is the only role of user {user_id}: delete the user "
                                   "or give them another team or a global role instead", name="users")
        _change_roles(session, actor, user, UserChanges(teams=left))


def _set_enabled(session: OrmSession, actor: User, user: User, enabled: bool) -> None:
    if not enabled:
        _guard_last_admin(session, user)
        auth.delete_user_sessions(session, user.id)
    user.disabled = not enabled
    record_activity(session, actor, "enabled_user" if enabled else "disabled_user", _subject(user))


def delete_user(session: OrmSession, actor: User, user_id: int) -> None:
    user = get_user(session, user_id)
    _guard_last_admin(session, user)
    details = {**_subject(user), "user_role": user.global_role}
    session.delete(user)
    session.flush()
    record_activity(session, actor, "deleted_user", details)


def require_password_reset(session: OrmSession, actor: User, user_id: int, require: bool) -> User:
    user = get_user(session, user_id)
    if user.api_only:
        raise ValidationFailed("API-only users cannot be required to reset their password", name="require")
    user.force_password_reset = require
    if require:
        auth.delete_user_sessions(session, user.id)
    session.flush()
    return user


def change_own_password(session: OrmSession, user: User, old_password: str, new_password: str) -> None:
    if not auth.verify_password(user.password_hash, old_password):
        raise ValidationFailed("old password does not match", name="old_password")
    if old_password == new_password:
        raise ValidationFailed("new password must differ from the old one", name="new_password")
    auth.check_password_policy(new_password, "new_password")
    user.password_hash = auth.hash_password(new_password)


def perform_required_reset(session: OrmSession, user: User, new_password: str) -> None:
    if not user.force_password_reset:
        raise ValidationFailed("no password reset is required", name="new_password")
    if auth.verify_password(user.password_hash, new_password):
        raise ValidationFailed("new password must differ from the old one", name="new_password")
    auth.check_password_policy(new_password, "new_password")
    user.password_hash = auth.hash_password(new_password)
    user.force_password_reset = False


def list_users(
    session: OrmSession, *, page: int, per_page: int, order_key: str, descending: bool,
    query: str = "", team_id: int | None = None,
) -> list[User]:
    column = USER_ORDER_KEYS.get(order_key)
    if column is None:
        raise ValidationFailed(f"cannot order by {order_key!r}", name="order_key")
    stmt = select(User)
    if query:
        pattern = f"%{query.lower()}%"
        stmt = stmt.where(or_(func.lower(User.name).like(pattern), func.lower(User.email).like(pattern)))
    if team_id is not None:
        stmt = stmt.where(User.id.in_(select(UserTeam.user_id).where(UserTeam.team_id == team_id)))
    stmt = stmt.order_by(column.desc() if descending else column.asc(), User.id)
    return list(session.scalars(stmt.offset(page * per_page).limit(per_page)))


def any_user_exists(session: OrmSession) -> bool:
    return session.scalars(select(User.id).limit(1)).first() is not None
