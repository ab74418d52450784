"""The config document served at ``/api/osquery/config``.

Agent options come from the host's team (``Team.config["agent_options"]``) when
the team has them, else from the global app config
(``AppConfig.json_value["agent_options"]``), else :data:`DEFAULT_AGENT_OPTIONS`.
They are stored as Fleet stores them::

    {"config": {<osquery config: options, decorators, ...>},
     "overrides": {"platforms": {"<platform>": {<osquery config>}}}}

A platform override replaces the whole ``config`` for hosts of that
``os_version`` platform (an override keyed ``linux`` also matches every Linux
distribution when no exact key does).

Scheduled queries (saved queries with ``interval > 0``) are added as pack
``Global`` (global queries) and ``team-<id>`` (the host's team's queries).
Fleet's ``logging`` type maps to osquery's flags:

========================== ============ ===========
logging                    snapshot     removed
========================== ============ ===========
snapshot                   true         false
differential               false        true
differential_ignore_removals false      false
========================== ============ ===========

A query is scheduled only if its results go somewhere: automations are on,
or it keeps a report (``discard_data`` false).  Legacy packs (``Pack`` rows)
are added when they target the host, its team or one of its labels.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from hostql.server.services.appconfig import DEFAULT_AGENT_OPTIONS
from hostql.server.services.packs import packs_for_host
from hostql.server.storage.models import Host, Query, Team

GLOBAL_PACK = "Global"
LOGGING_FLAGS = {
    "snapshot": (True, False),
    "differential": (False, True),
    "differential_ignore_removals": (False, False),
}
# "pack" + delimiter + (Global | team-<id>) + the same delimiter + query name.
_SCHEDULE_NAME = re.compile(r"^pack(?P<delim>.+?)(?P<pack>Global|team-\d+)(?P=delim)(?P<query>.+)$", re.DOTALL)


def team_pack_name(team_id: int | None) -> str:
    return GLOBAL_PACK if team_id is None else f"team-{team_id}"


def parse_schedule_name(name: str) -> tuple[int | None, str] | None:
    """``(team id or None, query name)`` for ``pack<d>Global<d><q>``/``pack<d>team-<id><d><q>``, any delimiter."""
    match = _SCHEDULE_NAME.match(name or "")
    if match is None:
        return None
    pack = match.group("pack")
    team_id = None if pack == GLOBAL_PACK else int(pack.split("-", 1)[1])
    return team_id, match.group("query")


def find_scheduled_query(session: Session, team_id: int | None, name: str) -> Query | None:
    scope = Query.team_id.is_(None) if team_id is None else Query.team_id == team_id
    return session.scalars(select(Query).where(scope, Query.name == name)).first()


def _app_config(session: Session) -> dict[str, Any]:
    from hostql.server.services.appconfig import cached_document

    return cached_document(session)


def agent_options_for(session: Session, host: Host) -> dict[str, Any]:
    """The stored agent options that apply to ``host`` (team's, else global, else default)."""
    if host.team_id is not None:
        team = session.get(Team, host.team_id)
        options = (team.config or {}).get("agent_options") if team is not None else None
        if isinstance(options, dict) and options:
            return options
    options = _app_config(session).get("agent_options")
    if isinstance(options, dict) and options:
        return options
    return DEFAULT_AGENT_OPTIONS


def osquery_config_for(agent_options: dict[str, Any], platform: str) -> dict[str, Any]:
    """The ``config`` part with the platform override applied (a deep copy)."""
    overrides = agent_options.get("overrides") or {}
    platforms = overrides.get("platforms") if isinstance(overrides, dict) else None
    if isinstance(platforms, dict) and platforms:
        from hostql.server.services.detail_queries import platform_family

        for key in (platform, platform_family(platform)):
            override = platforms.get(key) if key else None
            if isinstance(override, dict):
                return copy.deepcopy(override)
    config = agent_options.get("config")
    return copy.deepcopy(config) if isinstance(config, dict) else {}


def scheduled_query_entry(query: Query) -> dict[str, Any]:
    snapshot, removed = LOGGING_FLAGS.get(query.logging_type, (True, False))
    entry: dict[str, Any] = {"query": query.query, "interval": query.interval, "snapshot": snapshot,
                             "removed": removed}
    if query.platform:
        entry["platform"] = query.platform
    if query.min_osquery_version:
        entry["version"] = query.min_osquery_version
    return entry


def scheduled_packs(session: Session, team_id: int | None) -> dict[str, dict[str, Any]]:
    """``{"Global": {"queries": {...}}, "team-<id>": {...}}`` for one host's team."""
    scopes = [Query.team_id.is_(None)] + ([Query.team_id == team_id] if team_id is not None else [])
    statement = select(Query).where(or_(*scopes), Query.interval > 0,
                                    or_(Query.automations_enabled.is_(True), Query.discard_data.is_(False)))
    packs: dict[str, dict[str, Any]] = {}
    for query in session.scalars(statement.order_by(Query.id)):
        pack = packs.setdefault(team_pack_name(query.team_id), {"queries": {}})
        pack["queries"][query.name] = scheduled_query_entry(query)
    return packs


def legacy_packs(session: Session, host: Host) -> dict[str, dict[str, Any]]:
    """Enabled ``Pack`` rows targeting the host, its team or one of its labels (``services/packs.py``)."""
    return packs_for_host(session, host)


def config_for_host(session: Session, host: Host) -> dict[str, Any]:
    """The whole osquery config document for ``host``."""
    config = osquery_config_for(agent_options_for(session, host), host.platform)
    packs = config.get("packs") if isinstance(config.get("packs"), dict) else {}
    packs = dict(packs or {})
    packs.update(legacy_packs(session, host))
    packs.update(scheduled_packs(session, host.team_id))
    if packs:
        config["packs"] = packs
    return config


INTERVAL_OPTIONS = {"distributed_interval": "distributed_interval", "config_refresh": "config_tls_refresh",
                    "config_tls_refresh": "config_tls_refresh", "logger_tls_period": "logger_tls_period"}


def interval_updates(host: Host, config: dict[str, Any]) -> dict[str, int]:
    """Host interval columns the served options fill in while the host has not reported them.

    Online status needs them from the first check-in; once the agent's own flags come in
    (the ``osquery_flags`` detail query) they are what the agent uses, and the config
    fetches leave them be: overwriting them on every fetch wrote the host row (and dropped
    it from the node-key cache) each time the two disagreed."""
    options = config.get("options") if isinstance(config.get("options"), dict) else {}
    changes: dict[str, int] = {}
    for option, column in INTERVAL_OPTIONS.items():
        value = (options or {}).get(option)
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            continue
        try:
            number = int(value)
        except ValueError:
            continue
        if number > 0 and not getattr(host, column):
            changes[column] = number
    return changes
