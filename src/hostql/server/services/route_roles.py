"""The authorization table: the least role each REST route needs.

This table is the single source of truth.  ``CurrentUser`` enforces it on every
request (a user whose global role -- or best team role -- is below the entry
gets 403 before the body is even validated; a route missing from the table is
refused for everybody), and ``tests/server/test_authz_matrix.py`` calls every
route of the real app with every role and without a token, and fails when a
route under ``/api/v1/fleet`` or ``/api/v1/setup`` has no line here or a line
has no route.

HOW TO ADD A ROUTE: add one line ``"METHOD /path/template": "level",`` where the
path is exactly the route's template as declared (``{id}`` placeholders
included) and ``level`` is one of:

``public``
    no token needed (login, setup); the handler must not use ``CurrentUser``.
``user``
    any signed-in user, whatever their role (``/me``, logout, own password).
``observer`` / ``observer_plus`` / ``maintainer`` / ``admin``
    at least that role, globally or on some team.  Object-level checks (which
    team the object belongs to, observer_can_run, self-or-admin) stay in the
    handler/service via ``hostql.server.services.authz.require``.

Keep lines grouped by router module so concurrent edits do not collide.
"""

from __future__ import annotations

LEVELS: tuple[str, ...] = ("public", "user", "observer", "observer_plus", "maintainer", "admin")

ROUTE_ROLES: dict[str, str] = {
    # --- api/setup.py -------------------------------------------------------------
    "GET /api/v1/setup": "public",
    "POST /api/v1/setup": "public",
    # --- api/users.py: authentication ---------------------------------------------
    "POST /api/v1/fleet/login": "public",
    "POST /api/v1/fleet/logout": "user",
    "GET /api/v1/fleet/me": "user",
    "POST /api/v1/fleet/change_password": "user",
    "POST /api/v1/fleet/perform_required_password_reset": "user",
    # --- api/users.py: users and sessions -----------------------------------------
    "GET /api/v1/fleet/users": "admin",
    "POST /api/v1/fleet/users/admin": "admin",
    "GET /api/v1/fleet/users/{user_id}": "user",  # self, or an admin
    "PATCH /api/v1/fleet/users/{user_id}": "user",  # self (name, email with password), or an admin
    "DELETE /api/v1/fleet/users/{user_id}": "admin",
    "POST /api/v1/fleet/users/{user_id}/require_password_reset": "admin",
    "GET /api/v1/fleet/users/{user_id}/sessions": "admin",
    "DELETE /api/v1/fleet/users/{user_id}/sessions": "admin",
    "GET /api/v1/fleet/sessions/{session_id}": "admin",
    "DELETE /api/v1/fleet/sessions/{session_id}": "admin",
    "GET /api/v1/fleet/activities": "observer",
    # --- api/software.py ------------------------------------------------------------
    "GET /api/v1/fleet/software": "observer",
    "GET /api/v1/fleet/software/versions": "observer",
    "GET /api/v1/fleet/software/count": "observer",
    "GET /api/v1/fleet/software/titles": "observer",
    "GET /api/v1/fleet/os_versions": "observer",
    "GET /api/v1/fleet/os_versions/{os_version_id}": "observer",
    "GET /api/v1/fleet/software/titles/{title_id}": "observer",
    "GET /api/v1/fleet/software/versions/{software_id}": "observer",
    "GET /api/v1/fleet/software/{software_id}": "observer",
    # --- api/carves.py --------------------------------------------------------------
    "GET /api/v1/fleet/carves": "maintainer",  # a carve is a file's contents
    "GET /api/v1/fleet/carves/{carve_id}": "maintainer",
    "GET /api/v1/fleet/carves/{carve_id}/block/{block_id}": "maintainer",
    # --- api/translate.py -----------------------------------------------------------
    "POST /api/v1/fleet/translate": "observer",  # users only by their own email unless admin
    # --- api/hosts.py ---------------------------------------------------------------
    "GET /api/v1/fleet/hosts": "observer",
    "GET /api/v1/fleet/hosts/count": "observer",
    "GET /api/v1/fleet/host_summary": "observer",
    "POST /api/v1/fleet/hosts/delete": "maintainer",
    "POST /api/v1/fleet/hosts/transfer": "maintainer",
    "POST /api/v1/fleet/hosts/transfer/filter": "maintainer",
    "GET /api/v1/fleet/hosts/report": "observer",
    "POST /api/v1/fleet/hosts/search": "observer",
    "GET /api/v1/fleet/hosts/identifier/{identifier}": "observer",
    "GET /api/v1/fleet/hosts/{host_id}": "observer",
    "DELETE /api/v1/fleet/hosts/{host_id}": "maintainer",
    "POST /api/v1/fleet/hosts/{host_id}/refetch": "observer",  # like Fleet: whoever sees the host
    "GET /api/v1/fleet/hosts/{host_id}/software": "observer",
    "POST /api/v1/fleet/hosts/{host_id}/labels": "maintainer",
    "DELETE /api/v1/fleet/hosts/{host_id}/labels": "maintainer",
    # --- api/labels.py --------------------------------------------------------------
    "POST /api/v1/fleet/labels": "maintainer",
    "GET /api/v1/fleet/labels": "observer",
    "GET /api/v1/fleet/labels/summary": "observer",
    "GET /api/v1/fleet/labels/{label_id}": "observer",
    "PATCH /api/v1/fleet/labels/{label_id}": "maintainer",
    "GET /api/v1/fleet/labels/{label_id}/hosts": "observer",
    "DELETE /api/v1/fleet/labels/id/{label_id}": "maintainer",
    "DELETE /api/v1/fleet/labels/{name}": "maintainer",
    # --- api/teams.py ---------------------------------------------------------------
    "GET /api/v1/fleet/teams": "observer",  # team users see their own teams
    "POST /api/v1/fleet/teams": "admin",
    "GET /api/v1/fleet/teams/{team_id}": "observer",
    "PATCH /api/v1/fleet/teams/{team_id}": "admin",
    "DELETE /api/v1/fleet/teams/{team_id}": "admin",
    "POST /api/v1/fleet/teams/{team_id}/agent_options": "admin",  # global admin or that team's admin
    "GET /api/v1/fleet/teams/{team_id}/users": "admin",  # a global admin or the team's admin
    "PATCH /api/v1/fleet/teams/{team_id}/users": "admin",
    "DELETE /api/v1/fleet/teams/{team_id}/users": "admin",
    "GET /api/v1/fleet/teams/{team_id}/secrets": "maintainer",
    "PATCH /api/v1/fleet/teams/{team_id}/secrets": "maintainer",
    "GET /api/v1/fleet/spec/enroll_secret": "maintainer",  # global maintainers and admins
    "POST /api/v1/fleet/spec/enroll_secret": "maintainer",
    # --- api/queries.py -------------------------------------------------------------
    "GET /api/v1/fleet/queries": "observer",
    "POST /api/v1/fleet/queries": "maintainer",  # team maintainers: their team's queries
    "GET /api/v1/fleet/queries/{id}": "observer",
    "PATCH /api/v1/fleet/queries/{id}": "maintainer",
    "DELETE /api/v1/fleet/queries/{name}": "maintainer",
    "DELETE /api/v1/fleet/queries/id/{id}": "maintainer",
    "POST /api/v1/fleet/queries/delete": "maintainer",
    "GET /api/v1/fleet/queries/{id}/report": "observer",
    "GET /api/v1/fleet/hosts/{id}/queries/{query_id}": "observer",
    # --- api/live.py ----------------------------------------------------------------
    # Observers may run only observer_can_run queries (checked in services/campaigns.py).
    "POST /api/v1/fleet/queries/run": "observer",
    "POST /api/v1/fleet/queries/run_by_names": "observer",
    "POST /api/v1/fleet/queries/{id}/run": "observer",
    "POST /api/v1/fleet/hosts/{id}/query": "observer",
    "POST /api/v1/fleet/targets": "observer",
    "POST /api/v1/fleet/targets/count": "observer",
    "POST /api/v1/fleet/hosts/identifier/{identifier}/query": "observer",
    "GET /api/v1/fleet/status/live_query": "observer",
    "GET /api/v1/fleet/status/result_store": "observer",
    # --- api/policies.py ------------------------------------------------------------
    "GET /api/v1/fleet/global/policies": "observer",
    "POST /api/v1/fleet/global/policies": "maintainer",
    "POST /api/v1/fleet/global/policies/delete": "maintainer",
    "GET /api/v1/fleet/global/policies/{policy_id}": "observer",
    "PATCH /api/v1/fleet/global/policies/{policy_id}": "maintainer",
    "GET /api/v1/fleet/policies/count": "observer",
    "GET /api/v1/fleet/teams/{team_id}/policies": "observer",
    "GET /api/v1/fleet/teams/{team_id}/policies/count": "observer",
    "POST /api/v1/fleet/teams/{team_id}/policies": "maintainer",
    "POST /api/v1/fleet/teams/{team_id}/policies/delete": "maintainer",
    "GET /api/v1/fleet/teams/{team_id}/policies/{policy_id}": "observer",
    "PATCH /api/v1/fleet/teams/{team_id}/policies/{policy_id}": "maintainer",
    # --- api/specs.py ---------------------------------------------------------------
    "POST /api/v1/fleet/spec/queries": "maintainer",
    "GET /api/v1/fleet/spec/queries": "observer",
    "GET /api/v1/fleet/spec/queries/{name}": "observer",
    "POST /api/v1/fleet/spec/labels": "maintainer",
    "GET /api/v1/fleet/spec/labels": "observer",
    "GET /api/v1/fleet/spec/labels/{name}": "observer",
    "POST /api/v1/fleet/spec/policies": "maintainer",
    "GET /api/v1/fleet/spec/policies": "observer",
    "POST /api/v1/fleet/spec/packs": "maintainer",
    "GET /api/v1/fleet/spec/packs": "observer",
    "GET /api/v1/fleet/spec/packs/{name}": "observer",
    "POST /api/v1/fleet/spec/teams": "admin",
    # --- api/packs.py ---------------------------------------------------------------
    "POST /api/v1/fleet/packs": "maintainer",
    "GET /api/v1/fleet/packs": "observer",
    "GET /api/v1/fleet/packs/{pack_id}": "observer",
    "PATCH /api/v1/fleet/packs/{pack_id}": "maintainer",
    "DELETE /api/v1/fleet/packs/id/{pack_id}": "maintainer",
    "DELETE /api/v1/fleet/packs/{name}": "maintainer",
    "GET /api/v1/fleet/packs/{pack_id}/scheduled": "observer",
    "POST /api/v1/fleet/schedule": "maintainer",
    "GET /api/v1/fleet/schedule/{scheduled_id}": "observer",
    "PATCH /api/v1/fleet/schedule/{scheduled_id}": "maintainer",
    "DELETE /api/v1/fleet/schedule/{scheduled_id}": "maintainer",
    # --- api/misc.py (config, version, enroll secrets, ...) ------------------------
    "GET /api/v1/fleet/version": "user",
    "GET /api/v1/fleet/config": "user",  # secrets masked for non-admins
    "PATCH /api/v1/fleet/config": "admin",
}


def route_key(method: str, path: str) -> str:
    return f"{method.upper()} {path}"


def minimum_level(method: str, path: str) -> str | None:
    """The level for a route template, or ``None`` when the route is not in the table."""
    return ROUTE_ROLES.get(route_key(method, path))
