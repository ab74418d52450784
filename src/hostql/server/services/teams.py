"""Teams and enroll secrets.

A team's settings live in ``Team.config``: ``agent_options``,
``webhook_settings``, ``features``, ``host_expiry_settings``.  Enroll secrets
belong to a team (``team_id``) or are global (``team_id`` NULL); an agent that
enrolls with a team secret joins that team.  Setting the secrets of a scope
replaces them all; a secret kept keeps its ``created_at``.
"""

from __future__ import annotations

import secrets as secrets_module
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session as OrmSession

from hostql.server.errors import Conflict, NotFound, ValidationFailed
from hostql.server.services.activities import record_activity
from hostql.server.services.listing import ListOptions, apply_list_options, iso
from hostql.server.storage.models import EnrollSecret, Host, Team, User, UserTeam

MAX_SECRETS = 50
AGENT_OPTION_KEYS = frozenset({"config", "overrides", "command_line_flags", "extensions", "update_channels",
                               "script_execution_timeout"})
TEAM_SETTING_KEYS = ("webhook_settings", "features", "host_expiry_settings", "integrations")
ORDER_COLUMNS = {"id": Team.id, "name": Team.name, "created_at": Team.created_at, "updated_at": Team.updated_at}


def new_secret() -> str:
    return secrets_module.token_urlsafe(24)


def secret_to_json(secret: EnrollSecret) -> dict[str, Any]:
    return {"secret": secret.secret, "created_at": iso(secret.created_at), "team_id": secret.team_id}


def secrets_of(session: OrmSession, team_id: int | None) -> list[EnrollSecret]:
    scope = EnrollSecret.team_id.is_(None) if team_id is None else EnrollSecret.team_id == team_id
    return list(session.scalars(select(EnrollSecret).where(scope).order_by(EnrollSecret.id)))


def team_to_json(session: OrmSession, team: Team) -> dict[str, Any]:
    config = team.config if isinstance(team.config, dict) else {}
    hosts = session.scalar(select(func.count()).select_from(Host).where(Host.team_id == team.id)) or 0
    users = session.scalar(select(func.count()).select_from(UserTeam).where(UserTeam.team_id == team.id)) or 0
    body: dict[str, Any] = {
        "id": team.id,
        "created_at": iso(team.created_at),
        "name": team.name,
        "description": team.description,
        "agent_options": config.get("agent_options"),
        "user_count": int(users),
        "host_count": int(hosts),
        "secrets": [secret_to_json(s) for s in secrets_of(session, team.id)],
        "webhook_settings": config.get("webhook_settings") or {},
        "features": config.get("features") or {},
        "host_expiry_settings": config.get("host_expiry_settings") or {},
    }
    return body


def get_team(session: OrmSession, team_id: int) -> Team:
    team = session.get(Team, team_id)
    if team is None:
        raise NotFound(f"team {team_id} not found", name="id")
    return team


def team_by_name(session: OrmSession, name: str) -> Team | None:
    return session.scalars(select(Team).where(Team.name == name)).first()


def list_teams(session: OrmSession, options: ListOptions, query: str = "") -> list[Team]:
    stmt = select(Team)
    if query:
        stmt = stmt.where(func.lower(Team.name).contains(query.lower(), autoescape=True))
    return list(session.scalars(apply_list_options(stmt, options, ORDER_COLUMNS, Team.id)))


def _check_name(session: OrmSession, name: str, except_id: int | None = None) -> str:
    name = name.strip()
    if not name:
        raise ValidationFailed("team name must not be empty", name="name")
    other = team_by_name(session, name)
    if other is not None and other.id != except_id:
        raise Conflict(f"a team named {name!r} already exists", name="name")
    return name


def validate_agent_options(options: Any) -> dict[str, Any]:
    if not isinstance(options, dict):
        raise ValidationFailed("agent options must be a JSON object", name="agent_options")
    unknown = sorted(set(options) - AGENT_OPTION_KEYS)
    if unknown:
        raise ValidationFailed(f"unknown agent options keys: {', '.join(unknown)}", name="agent_options")
    for key in ("config", "overrides"):
        if key in options and options[key] is not None and not isinstance(options[key], dict):
            raise ValidationFailed(f"agent_options.{key} must be an object", name="agent_options")
    return dict(options)


def create_team(session: OrmSession, user: User | None, *, name: str, description: str = "",
                secrets: Sequence[str] | None = None, record: bool = True) -> Team:
    team = Team(name=_check_name(session, name), description=description, config={})
    session.add(team)
    session.flush()
    replace_secrets(session, None, team.id, list(secrets) if secrets is not None else [new_secret()], record=False)
    if record:
        record_activity(session, user, "created_team", {"team_id": team.id, "team_name": team.name})
    return team


def modify_team(session: OrmSession, user: User | None, team: Team, changes: dict[str, Any]) -> Team:
    if changes.get("name") is not None:
        team.name = _check_name(session, str(changes["name"]), team.id)
    if changes.get("description") is not None:
        team.description = str(changes["description"])
    config = dict(team.config or {})
    for key in TEAM_SETTING_KEYS:
        if changes.get(key) is not None:
            if not isinstance(changes[key], dict):
                raise ValidationFailed(f"{key} must be an object", name=key)
            config[key] = changes[key]
    team.config = config
    session.flush()
    record_activity(session, user, "edited_team", {"team_id": team.id, "team_name": team.name})
    return team


def set_agent_options(session: OrmSession, user: User | None, team: Team, options: Any,
                      *, record: bool = True) -> Team:
    config = dict(team.config or {})
    config["agent_options"] = validate_agent_options(options)
    team.config = config
    session.flush()
    if record:
        record_activity(session, user, "edited_agent_options",
                        {"team_id": team.id, "team_name": team.name, "global": False})
    return team


def delete_team(session: OrmSession, user: User | None, team: Team) -> None:
    details = {"team_id": team.id, "team_name": team.name}
    # Hosts move to "no team" (also done by the foreign key where it is enforced).
    for host in session.scalars(select(Host).where(Host.team_id == team.id)):
        host.team_id = None
    session.delete(team)
    session.flush()
    record_activity(session, user, "deleted_team", details)


def replace_secrets(session: OrmSession, user: User | None, team_id: int | None, secrets: Sequence[str],
                    *, record: bool = True) -> list[EnrollSecret]:
    """Make ``secrets`` the complete list of enroll secrets of a team (or the global ones)."""
    wanted: list[str] = []
    for secret in secrets:
        if not isinstance(secret, str) or not secret.strip():
            raise ValidationFailed("enroll secrets must not be empty", name="secrets")
        if secret not in wanted:
            wanted.append(secret)
    if len(wanted) > MAX_SECRETS:
        raise ValidationFailed(f"at most {MAX_SECRETS} enroll secrets are allowed", name="secrets")
    if wanted:
        clash = session.scalars(select(EnrollSecret).where(EnrollSecret.secret.in_(wanted))).all()
        for other in clash:
            if other.team_id != team_id:
                raise Conflict("an enroll secret is already in use elsewhere", name="secrets")
    current = secrets_of(session, team_id)
    for row in current:
        if row.secret not in wanted:
            session.delete(row)
    kept = {row.secret for row in current}
    for secret in wanted:
        if secret not in kept:
            session.add(EnrollSecret(secret=secret, team_id=team_id))
    session.flush()
    if record:
        team = session.get(Team, team_id) if team_id is not None else None
        record_activity(session, user, "edited_enroll_secrets",
                        {"team_id": team_id, "team_name": team.name if team else None})
    return secrets_of(session, team_id)
