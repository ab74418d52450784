"""``POST /api/v1/fleet/translate``: names to ids, as ``fleetctl`` uses it.

Each item is ``{"type": "user"|"label"|"team"|"host", "payload": {"identifier": ...}}``
and comes back with ``payload.id`` filled in: a user by email, a label or team by
name, a host by hostname, UUID, serial, node key or osquery host identifier.  A
name the caller may not see is answered like one that does not exist.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session as OrmSession

from hostql.server.errors import BadRequest, NotFound
from hostql.server.services import authz
from hostql.server.services.hosts import find_host
from hostql.server.storage.models import Label, Team, User

TYPES = ("user", "label", "team", "host")


def _find(session: OrmSession, caller: User, kind: str, identifier: str) -> int | None:
    if kind == "user":
        found = session.scalars(select(User).where(func.lower(User.email) == identifier.lower())).first()
        visible = found is not None and (found.id == caller.id or authz.allowed(caller, authz.ADMIN))
        return found.id if found is not None and visible else None
    if kind == "label":
        return session.scalars(select(Label.id).where(Label.name == identifier)).first()
    if kind == "team":
        team_id = session.scalars(select(Team.id).where(Team.name == identifier)).first()
        return team_id if team_id is not None and authz.can_see_team(caller, team_id) else None
    try:
        host = find_host(session, identifier)
    except NotFound:
        return None
    return host.id if authz.can_see_team(caller, host.team_id) else None


def translate(session: OrmSession, caller: User, items: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """``(type, identifier)`` pairs as Fleet's answer items; an unknown type or name is an error
    naming the item."""
    answer = []
    for position, (kind, identifier) in enumerate(items):
        if kind not in TYPES:
            raise BadRequest(f"item {position}: type must be one of {', '.join(TYPES)}", name=f"list.{position}.type")
        found = _find(session, caller, kind, identifier)
        if found is None:
            raise NotFound(f"item {position}: no {kind} {identifier!r}", name=f"list.{position}.payload.identifier")
        answer.append({"type": kind, "payload": {"identifier": identifier, "id": found}})
    return answer
