"""Dependencies shared by every router: state, database session, current user.

Handlers declare what they need with the ``Annotated`` aliases below, e.g.
``def list_hosts(session: DbSession, user: CurrentUser) -> ...``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import select
from sqlalchemy.orm import Session as OrmSession

from hostql.server.errors import AuthenticationRequired, Forbidden
from hostql.server.state import ServerState
from hostql.server.storage.models import Session, User, utcnow

ROLES = ("admin", "maintainer", "observer_plus", "observer")


def get_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.hostql
    return state


State = Annotated[ServerState, Depends(get_state)]


def get_session(state: State) -> Iterator[OrmSession]:
    with state.database.session() as session:
        yield session


DbSession = Annotated[OrmSession, Depends(get_session)]


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    # Fleet also accepts the token as a query parameter (used by the WebSocket).
    return request.query_params.get("token", "")


def current_user(request: Request, session: DbSession) -> User:
    token = bearer_token(request)
    if not token:
        raise AuthenticationRequired("missing authorization token", name="base")
    row = session.scalars(select(Session).where(Session.key_hash == token_hash(token))).first()
    now = utcnow()
    if row is None or (row.expires_at is not None and row.expires_at <= now):
        raise AuthenticationRequired("invalid or expired session", name="base")
    user = session.get(User, row.user_id)
    if user is None or user.disabled:
        raise AuthenticationRequired("user is disabled", name="base")
    row.accessed_at = now
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def require_global_role(user: User, *roles: str) -> None:
    """Refuse unless the user's global role is one of ``roles``."""
    if user.global_role not in roles:
        raise Forbidden("forbidden", name="base")
