"""The ASGI application: routers, error handlers, OpenAPI document."""

from __future__ import annotations

import importlib

from fastapi import FastAPI

from hostql import __version__
from hostql.server.errors import install_error_handlers
from hostql.server.fast_read import ServerApp, install_fast_read
from hostql.server.limits import install_body_limits
from hostql.server.state import ServerState

# Each module exposes ``router`` (a FastAPI APIRouter).  Adding a module here is
# all it takes to serve it.
ROUTER_MODULES: tuple[str, ...] = (
    "hostql.server.osquery_api",
    "hostql.server.api.setup",
    "hostql.server.api.users",
    "hostql.server.api.hosts",
    "hostql.server.api.labels",
    "hostql.server.api.teams",
    "hostql.server.api.queries",
    "hostql.server.api.live",
    "hostql.server.api.policies",
    "hostql.server.api.software",
    "hostql.server.api.specs",
    "hostql.server.api.packs",
    "hostql.server.api.carves",
    "hostql.server.api.translate",
    "hostql.server.api.misc",
)


def create_app(state: ServerState) -> FastAPI:
    app = ServerApp(
        title="hostql server",
        version=__version__,
        description="Fleet-compatible osquery management API",
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
    )
    app.state.hostql = state
    install_error_handlers(app)
    install_body_limits(app, state.settings)
    install_fast_read(app, state.settings)  # before every middleware: idle reads skip them all
    for name in ROUTER_MODULES:
        app.include_router(importlib.import_module(name).router)
    return app
