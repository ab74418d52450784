"""Who may do what: Fleet's roles applied to actions, globally or per team.

Roles: ``admin`` everything; ``maintainer`` manages queries, policies, labels,
packs, hosts and enroll secrets but not users, teams or settings;
``observer_plus`` reads everything and may run any live query; ``observer``
reads everything and may run only queries marked ``observer_can_run``.

A user has either a global role (``users.global_role``) or team roles
(``user_teams`` rows, loaded as ``user.team_roles``), never both.

Two layers enforce this:

1. Every route has a minimal role in :data:`hostql.server.services.route_roles.ROUTE_ROLES`;
   the ``CurrentUser`` dependency refuses (403) a user whose global role, or
   best team role, is below it, before the body is validated.  A route that
   is missing from the table is refused for everybody (fail closed).
2. Handlers/services check the object they act on with the functions below:

   ``require(user, action, team_id=None)``
       ``team_id=None`` means a global object or a global operation: only a
       global role counts.  ``team_id=7`` means an object of team 7: the global
       role or the user's role on team 7 counts.
   ``require_any(user, action)``
       the action is allowed by the global role or by *some* team role (list
       endpoints, reading shared global objects such as global queries);
       combine with ``visible_team_ids`` to filter what a team user sees.
   ``visible_team_ids(user)``
       ``None`` for global users (they see everything), else the set of team ids.
   ``can_see_team(user, team_id)``
       whether objects of ``team_id`` (``None`` = no team) are visible.
"""

from __future__ import annotations

from hostql.server.errors import Forbidden
from hostql.server.storage.models import User

READ = "read"  # see hosts, queries, policies, labels, ...
WRITE = "write"  # change queries, policies, labels, packs, hosts, enroll secrets
ADMIN = "admin"  # users, teams, app settings
RUN_ANY = "run_any"  # run any live query
RUN_OBSERVER = "run_observer"  # run a query marked observer_can_run

ROLES: tuple[str, ...] = ("observer", "observer_plus", "maintainer", "admin")  # weakest first
RANK: dict[str, int] = {role: rank for rank, role in enumerate(ROLES, start=1)}

ALLOWED: dict[str, frozenset[str]] = {
    "admin": frozenset({READ, WRITE, ADMIN, RUN_ANY, RUN_OBSERVER}),
    "maintainer": frozenset({READ, WRITE, RUN_ANY, RUN_OBSERVER}),
    "observer_plus": frozenset({READ, RUN_ANY, RUN_OBSERVER}),
    "observer": frozenset({READ, RUN_OBSERVER}),
}


def team_roles(user: User) -> dict[int, str]:
    """``{team_id: role}`` for a team user; empty for global users."""
    return {row.team_id: row.role for row in user.team_roles}


def role_for_team(user: User, team_id: int | None) -> str | None:
    """The role that applies to an object of ``team_id`` (``None``: a global object)."""
    if user.global_role:
        return user.global_role
    if team_id is None:
        return None
    return team_roles(user).get(team_id)


def best_role(user: User) -> str | None:
    """The global role, or the strongest team role."""
    if user.global_role:
        return user.global_role
    roles = [role for role in team_roles(user).values() if role in RANK]
    return max(roles, key=RANK.__getitem__) if roles else None


def allowed(user: User, action: str, team_id: int | None = None) -> bool:
    role = role_for_team(user, team_id)
    return role is not None and action in ALLOWED.get(role, frozenset())


def allowed_any(user: User, action: str) -> bool:
    if user.global_role:
        return action in ALLOWED.get(user.global_role, frozenset())
    return any(action in ALLOWED.get(role, frozenset()) for role in team_roles(user).values())


def require(user: User, action: str, team_id: int | None = None) -> None:
    """Raise 403 in Fleet's shape unless ``user`` may do ``action`` on an object of ``team_id``."""
    if not allowed(user, action, team_id):
        raise Forbidden("forbidden", name="base")


def require_any(user: User, action: str) -> None:
    """Raise 403 unless the global role or some team role allows ``action``."""
    if not allowed_any(user, action):
        raise Forbidden("forbidden", name="base")


def visible_team_ids(user: User) -> frozenset[int] | None:
    """``None`` when the user sees every team (global role), else the teams they belong to."""
    if user.global_role:
        return None
    return frozenset(team_roles(user))


def can_see_team(user: User, team_id: int | None) -> bool:
    """Whether objects of ``team_id`` (``None`` = objects without a team) are visible to ``user``."""
    visible = visible_team_ids(user)
    return visible is None or (team_id is not None and team_id in visible)


def meets(role: str | None, minimum: str) -> bool:
    """Whether ``role`` is at least ``minimum`` (one of :data:`ROLES`)."""
    return role is not None and RANK.get(role, 0) >= RANK[minimum]
