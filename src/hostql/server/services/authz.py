"""Who may do what: Fleet's roles applied to actions.

Roles (global): ``admin`` everything; ``maintainer`` manages queries, policies,
labels, packs, hosts and enroll secrets but not users, teams or settings;
``observer_plus`` reads everything and may run any live query; ``observer``
reads everything and may run only queries marked ``observer_can_run``.
"""

from __future__ import annotations

from hostql.server.errors import Forbidden
from hostql.server.storage.models import User

READ = "read"  # see hosts, queries, policies, labels, ...
WRITE = "write"  # change queries, policies, labels, packs, hosts, enroll secrets
ADMIN = "admin"  # users, teams, app settings
RUN_ANY = "run_any"  # run any live query
RUN_OBSERVER = "run_observer"  # run a query marked observer_can_run

ALLOWED: dict[str, frozenset[str]] = {
    "admin": frozenset({READ, WRITE, ADMIN, RUN_ANY, RUN_OBSERVER}),
    "maintainer": frozenset({READ, WRITE, RUN_ANY, RUN_OBSERVER}),
    "observer_plus": frozenset({READ, RUN_ANY, RUN_OBSERVER}),
    "observer": frozenset({READ, RUN_OBSERVER}),
}


def allowed(user: User, action: str) -> bool:
    return action in ALLOWED.get(user.global_role or "", frozenset())


def require(user: User, action: str) -> None:
    """Raise 403 in Fleet's shape unless ``user`` may do ``action``."""
    if not allowed(user, action):
        raise Forbidden("forbidden", name="base")
