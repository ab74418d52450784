"""REST API: first-run setup (``/api/v1/setup``), public until the first user exists."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import Field

from hostql.server.api.deps import DbSession, RequestBody, State
from hostql.server.services import setup as setup_service
from hostql.server.services import users as users_service

router = APIRouter(prefix="/api/v1")


class SetupAdmin(RequestBody):
    name: str = Field(max_length=255)
    email: str = Field(max_length=255)
    password: str = Field(max_length=1024)
    password_confirmation: str | None = Field(default=None, max_length=1024)
    admin: bool = True


class SetupOrgInfo(RequestBody):
    org_name: str = Field(max_length=255)
    org_logo_url: str = Field(default="", max_length=2048)


class SetupBody(RequestBody):
    admin: SetupAdmin
    org_info: SetupOrgInfo
    server_url: str = Field(default="", max_length=2048)
    osquery_enroll_secret: str | None = Field(default=None, max_length=255)


@router.get("/setup")
def setup_status(session: DbSession) -> dict[str, Any]:
    return {"setup_required": setup_service.setup_required(session)}


@router.post("/setup")
def setup(body: SetupBody, session: DbSession, state: State) -> dict[str, Any]:
    result = setup_service.run_setup(
        session, state.settings, name=body.admin.name, email=body.admin.email, password=body.admin.password,
        password_confirmation=body.admin.password_confirmation, org_name=body.org_info.org_name,
        org_logo_url=body.org_info.org_logo_url, server_url=body.server_url,
        enroll_secret=body.osquery_enroll_secret,
    )
    return {"admin": users_service.user_dict(session, result.admin), "org_info": result.org_info,
            "server_url": result.server_url, "osquery_enroll_secret": result.enroll_secret, "token": result.token}
