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

Agents fetch their config every minute or so and all hosts of one team and
platform get the same document, so :func:`config_for_host` keeps the built
parts per (team, platform) for :data:`CONFIG_TTL` (a change made through this
process's ORM drops them at once; other processes' within the TTL, as for the
app config); legacy packs are looked up per host only while an enabled pack
exists.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from hostql.server.services.appconfig import DEFAULT_AGENT_OPTIONS
from hostql.server.services.packs import packs_for_host
from hostql.server.storage.changes import ChangeCache
from hostql.server.storage.models import AppConfig, Host, Pack, Query, Team

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


def agent_options_for_team(session: Session, team_id: int | None) -> dict[str, Any]:
    """The stored agent options for hosts of team ``team_id`` (the team's, else global, else default)."""
    if team_id is not None:
        team = session.get(Team, team_id)
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


def build_config(session: Session, host: Host) -> dict[str, Any]:
    """The whole osquery config document for ``host``, built from the database."""
    return _compose(_TeamConfig.build(session, host.team_id, host.platform), legacy_packs(session, host))


def config_for_host(session: Session, host: Host) -> dict[str, Any]:
    """The whole osquery config document for ``host`` (:func:`build_config`), from the process's
    cache when it can: every agent fetches its config every minute or so, and all hosts of a
    team and platform get the same document unless a legacy pack targets them.  Shared:
    callers must not change it."""
    engine = session.get_bind()
    parts = _team_configs.get(engine, (host.team_id, host.platform),
                              lambda: _TeamConfig.build(session, host.team_id, host.platform))
    packs_exist = _packs_exist.get(engine, None, lambda: _enabled_packs_exist(session))
    return _compose(parts, legacy_packs(session, host) if packs_exist else {})


@dataclass(frozen=True)
class _TeamConfig:
    """What the document of a host of one team and platform is made of but legacy packs."""

    options_config: dict[str, Any]  # the agent options' ``config`` for the platform
    scheduled: dict[str, dict[str, Any]]  # the ``Global`` and ``team-<id>`` packs
    document: dict[str, Any]  # the two together: a host no legacy pack targets gets this

    @classmethod
    def build(cls, session: Session, team_id: int | None, platform: str) -> _TeamConfig:
        options = agent_options_for_team(session, team_id)
        options_config = osquery_config_for(options, platform)
        scheduled = scheduled_packs(session, team_id)
        return cls(options_config, scheduled, _with_packs(options_config, {}, scheduled))


def _with_packs(options_config: dict[str, Any], legacy: dict[str, Any], scheduled: dict[str, Any]) -> dict[str, Any]:
    """The options' ``config`` with the legacy and scheduled packs added to its own (later ones win)."""
    config = dict(options_config)
    own = config.get("packs") if isinstance(config.get("packs"), dict) else {}
    packs = {**(own or {}), **legacy, **scheduled}
    if packs:
        config["packs"] = packs
    return config


def _compose(parts: _TeamConfig, legacy: dict[str, Any]) -> dict[str, Any]:
    return _with_packs(parts.options_config, legacy, parts.scheduled) if legacy else parts.document


CONFIG_TTL = 1.0  # seconds a built document is reused (changes made through this process's ORM: at once)
# What the cached parts are built from (legacy packs, which also depend on labels and
# label membership, are built per host, uncached).
_BUILT_FROM = (Query, Team, AppConfig, Pack)
_team_configs: ChangeCache[_TeamConfig] = ChangeCache(_BUILT_FROM, CONFIG_TTL)
_packs_exist: ChangeCache[bool] = ChangeCache(_BUILT_FROM, CONFIG_TTL)


def _enabled_packs_exist(session: Session) -> bool:
    return session.execute(select(Pack.id).where(Pack.disabled.is_(False)).limit(1)).first() is not None


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
