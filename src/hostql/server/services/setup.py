"""First-run setup: the first admin, the organisation, the server URL, the enroll secret."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session as OrmSession

from hostql.server.errors import Conflict, ValidationFailed
from hostql.server.services import auth
from hostql.server.services import users as users_service
from hostql.server.storage.models import AppConfig, EnrollSecret, User


@dataclass
class SetupResult:
    admin: User
    org_info: dict[str, Any]
    server_url: str
    enroll_secret: str
    token: str


def setup_required(session: OrmSession) -> bool:
    return not users_service.any_user_exists(session)


def run_setup(
    session: OrmSession, settings: Any, *, name: str, email: str, password: str, password_confirmation: str | None,
    org_name: str, org_logo_url: str, server_url: str, enroll_secret: str | None,
) -> SetupResult:
    """Create the first admin (signed in), the app config and the global enroll secret."""
    if not setup_required(session):
        raise Conflict("setup has already been completed", name="base", message="Setup already completed")
    if password_confirmation is not None and password_confirmation != password:
        raise ValidationFailed("passwords do not match", name="password_confirmation")
    if not org_name.strip():
        raise ValidationFailed("organization name is required", name="org_info.org_name")
    if server_url and not server_url.startswith(("http://", "https://")):
        raise ValidationFailed("server_url must start with http:// or https://", name="server_url")
    if enroll_secret is not None and not enroll_secret.strip():
        raise ValidationFailed("the enroll secret cannot be empty", name="osquery_enroll_secret")
    admin = users_service.create_user(session, None, name=name, email=email, password=password,
                                      global_role="admin", force_password_reset=False)
    org_info = {"org_name": org_name.strip(), "org_logo_url": org_logo_url}
    _save_app_config(session, org_info, server_url)
    secret = enroll_secret.strip() if enroll_secret else secrets.token_urlsafe(24)
    if session.scalars(select(EnrollSecret).where(EnrollSecret.secret == secret)).first() is None:
        session.add(EnrollSecret(secret=secret, team_id=None))
    token, _ = auth.create_session(session, admin, settings)
    return SetupResult(admin=admin, org_info=org_info, server_url=server_url, enroll_secret=secret, token=token)


def _save_app_config(session: OrmSession, org_info: dict[str, Any], server_url: str) -> None:
    row = session.scalars(select(AppConfig).order_by(AppConfig.id)).first()
    value: dict[str, Any] = dict(row.json_value) if row is not None else {}
    value["org_info"] = {**(value.get("org_info") or {}), **org_info}
    value["server_settings"] = {**(value.get("server_settings") or {}), "server_url": server_url}
    if row is None:
        session.add(AppConfig(id=1, json_value=value))
    else:
        row.json_value = value  # a new dict, so the JSON column is marked changed
