"""REST API: health check, version and the global settings document (app config).

* ``GET /healthz`` -- 200 when the database (and Redis, if configured) answer,
  500 naming what failed; ``?check=db`` or ``?check=redis`` checks one.
* ``GET /api/v1/fleet/version`` -- the server's version (any signed-in user).
* ``GET /api/v1/fleet/config`` -- the app config (any signed-in user; secrets
  masked for non-admins); ``PATCH`` changes it (admins; unknown keys 422).
"""

from __future__ import annotations

import platform
import threading
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy import text

from hostql import __version__
from hostql.server.api.deps import CurrentUser, DbSession, State
from hostql.server.errors import BadRequest
from hostql.server.services import appconfig, authz
from hostql.server.services.activities import record_activity
from hostql.server.state import ServerState

router = APIRouter()

HEALTH_CHECKS = ("db", "redis")
_REDIS_LOCK = threading.Lock()


def _check_db(state: ServerState) -> str | None:
    try:
        with state.database.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        return str(getattr(exc, "orig", None) or exc).splitlines()[0] or type(exc).__name__
    return None


def _redis_client(state: ServerState) -> Any:
    with _REDIS_LOCK:
        client = state.extras.get("healthz_redis")
        if client is None:
            import redis

            client = redis.Redis.from_url(state.settings.redis, socket_connect_timeout=2, socket_timeout=2)
            state.extras["healthz_redis"] = client
        return client


def _check_redis(state: ServerState) -> str | None:
    url = getattr(state.settings, "redis", "") if state.settings is not None else ""
    if not url:
        return None
    try:
        _redis_client(state).ping()
    except Exception as exc:
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return None


@router.get("/healthz", include_in_schema=False)
def healthz(state: State, check: Annotated[str | None, Query()] = None) -> Response:
    if check is not None and check not in (*HEALTH_CHECKS, "mysql"):
        raise BadRequest(f"unknown check {check!r} (use db or redis)", name="check")
    wanted = HEALTH_CHECKS if check is None else ("db" if check == "mysql" else check,)
    errors = []
    for name in wanted:
        problem = _check_db(state) if name == "db" else _check_redis(state)
        if problem is not None:
            errors.append({"name": name, "reason": problem})
    if errors:
        return JSONResponse({"message": "Health check failed", "errors": errors, "uuid": str(uuid.uuid4())},
                            status_code=500)
    return Response(status_code=200)


@router.get("/api/v1/fleet/version")
def version(user: CurrentUser) -> dict[str, str]:
    return {
        "version": __version__,
        "branch": "",
        "revision": "",
        "go_version": "",
        "python_version": platform.python_version(),
        "build_date": "",
        "build_user": "",
    }


def _read_only_sections(state: ServerState) -> dict[str, Any]:
    settings = state.settings

    def nanoseconds(name: str, default: float) -> int:
        return int(float(getattr(settings, name, default)) * 1_000_000_000)

    def destination(kind: str) -> dict[str, Any]:
        plugins = getattr(settings, f"{kind}_log_plugin", ["filesystem"])
        names = plugins if isinstance(plugins, list) else [str(plugins)]
        return {"plugin": ",".join(names),
                "config": {"filesystem_log_file": getattr(settings, f"filesystem_{kind}_log_file", "")}}

    return {
        "license": {"tier": "free"},
        "update_interval": {"osquery_detail": nanoseconds("detail_update_interval", 3600),
                            "osquery_policy": nanoseconds("policy_update_interval", 3600)},
        "logging": {"debug": getattr(settings, "log_level", "info") == "debug", "json": False,
                    "result": destination("result"), "status": destination("status")},
    }


def _response(state: ServerState, user: Any, config: dict[str, Any]) -> dict[str, Any]:
    body = config if authz.allowed(user, authz.ADMIN) else appconfig.masked(config)
    return {**body, **_read_only_sections(state)}


@router.get("/api/v1/fleet/config")
def get_config(state: State, session: DbSession, user: CurrentUser) -> dict[str, Any]:
    return _response(state, user, appconfig.load(session))


Section = dict[str, Any] | None


class ConfigPatch(BaseModel):
    """The sections a PATCH may send (keys inside them are checked by the app-config service)."""

    model_config = ConfigDict(extra="forbid")

    org_info: Section = None
    server_settings: Section = None
    host_expiry_settings: Section = None
    activity_expiry_settings: Section = None
    features: Section = None
    agent_options: Section = None
    smtp_settings: Section = None
    sso_settings: Section = None
    webhook_settings: Section = None
    integrations: Section = None
    fleet_desktop: Section = None
    # Read-only sections of a GET answer, accepted and ignored so a GET can be sent back.
    license: Any = None
    logging: Any = None
    update_interval: Any = None
    vulnerabilities: Any = None
    version: Any = None


@router.patch("/api/v1/fleet/config")
def patch_config(state: State, session: DbSession, user: CurrentUser, body: ConfigPatch,
                 dry_run: Annotated[bool, Query()] = False) -> dict[str, Any]:
    authz.require(user, authz.ADMIN)
    config, changed = appconfig.apply_patch(session, body.model_dump(exclude_unset=True), dry_run=dry_run)
    if not dry_run and "agent_options" in changed:
        record_activity(session, user, "edited_agent_options", {"global": True, "team_id": None,
                                                                "team_name": None})
    return _response(state, user, config)
