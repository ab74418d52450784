"""Dependencies shared by every router: state, database session, current user.

Handlers declare what they need with the ``Annotated`` aliases below, e.g.
``def list_hosts(session: DbSession, user: CurrentUser) -> ...``.

``CurrentUser`` authenticates the bearer token and enforces the route's
minimal role from :mod:`hostql.server.services.route_roles` (403 before the
body is validated).  Object-level checks use
:func:`hostql.server.services.authz.require`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, Request
from pydantic import BaseModel, ConfigDict
from sqlalchemy.orm import Session as OrmSession

from hostql.server.errors import AuthenticationRequired, Forbidden
from hostql.server.services import authz
from hostql.server.services.route_roles import minimum_level, route_key
from hostql.server.state import ServerState
from hostql.server.storage.models import Session, User

ROLES = ("admin", "maintainer", "observer_plus", "observer")

# While ``force_password_reset`` is set a user may only do these (Fleet's behaviour).
ALLOWED_DURING_RESET = frozenset({
    "GET /api/v1/fleet/me",
    "POST /api/v1/fleet/logout",
    "POST /api/v1/fleet/perform_required_password_reset",
})


def get_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.hostql
    return state


State = Annotated[ServerState, Depends(get_state)]


def get_session(state: State) -> Iterator[OrmSession]:
    with state.database.session() as session:
        yield session


# scope="function": commit before the response is sent.  FastAPI's default ("request") runs the
# exit code after the response, so a client could act on its answer (a login's token, a created
# query's id) before the row was committed and be told it does not exist.
DbSession = Annotated[OrmSession, Depends(get_session, scope="function")]


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    # Fleet also accepts the token as a query parameter (used by the WebSocket).
    return request.query_params.get("token", "")


def client_ip(request: Request) -> str:
    """The caller's address (the first ``X-Forwarded-For`` hop when behind a proxy)."""
    forwarded = request.headers.get("x-forwarded-for", "")
    if forwarded:
        return forwarded.split(",")[0].strip()
    return request.client.host if request.client is not None else ""


def _route_template(request: Request) -> str | None:
    """The matched route's full path template (``/api/v1/fleet/users/{user_id}``)."""
    # FastAPI >= 0.13x: an included router's effective route knows the full path (include prefixes too).
    fastapi_scope = request.scope.get("fastapi")
    context: Any = fastapi_scope.get("effective_route_context") if isinstance(fastapi_scope, dict) else None
    path = getattr(context, "path_format", None) or getattr(request.scope.get("route"), "path", None)
    return path if isinstance(path, str) else None


def enforce_route_level(user: User, method: str, path: str | None) -> None:
    """Refuse (403) unless ``user`` meets the route's entry in the authorization table."""
    if path is None:
        raise Forbidden("no route for authorization", name="base")
    level = minimum_level(method, path)
    if level is None:
        raise Forbidden(
            f"no authorization rule for {route_key(method, path)} "
            "(add it to hostql.server.services.route_roles.ROUTE_ROLES)",
            name="base",
        )
    if level in ("public", "user"):
        return
    if not authz.meets(authz.best_role(user), level):
        raise Forbidden("forbidden", name="base")


def current_session(request: Request, session: DbSession) -> Session:
    """The valid session behind the bearer token (401 otherwise)."""
    from hostql.server.services import auth  # late: auth imports this module's token_hash

    token = bearer_token(request)
    if not token:
        raise AuthenticationRequired("Authorization header required", name="base")
    row = auth.valid_session(request.app.state.hostql.database, session, token)
    if row is None:
        raise AuthenticationRequired("invalid or expired session", name="base")
    return row


CurrentSession = Annotated[Session, Depends(current_session)]


def current_user(request: Request, session: DbSession, login: CurrentSession) -> User:
    user = session.get(User, login.user_id)
    if user is None or user.disabled:
        raise AuthenticationRequired("user is disabled", name="base")
    path = _route_template(request)
    if user.force_password_reset and not user.api_only and route_key(request.method, path or "") \
            not in ALLOWED_DURING_RESET:
        raise Forbidden("password reset required", name="base", message="Password reset required")
    enforce_route_level(user, request.method, path)
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def require_global_role(user: User, *roles: str) -> None:
    """Refuse unless the user's global role is one of ``roles``."""
    if user.global_role not in roles:
        raise Forbidden("forbidden", name="base")


class RequestBody(BaseModel):
    """Base for JSON request bodies: unknown fields and wrong types are refused, naming the field."""

    model_config = ConfigDict(extra="forbid", strict=True)
