"""``fleetctl apply``: create-or-update by name for queries, labels, policies, packs, teams.

Each ``apply_*`` takes the already validated spec dicts (fleet-reference §4.2),
checks every spec before changing anything, applies them and records one
``applied_spec_*`` activity.  Each ``*_spec`` function renders an object back
into its spec (what ``fleetctl get ... --yaml`` prints).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session as OrmSession

from hostql.server.errors import NotFound, ValidationFailed
from hostql.server.services import labels as label_service
from hostql.server.services import policies as policy_service
from hostql.server.services import teams as team_service
from hostql.server.services.activities import record_activity
from hostql.server.storage.models import Host, Label, LabelMembership, Pack, Policy, Query, Team, User

LOGGING_TYPES = ("snapshot", "differential", "differential_ignore_removals")


def _team_id(session: OrmSession, name: str | None) -> int | None:
    if not name:
        return None
    team = team_service.team_by_name(session, name)
    if team is None:
        raise ValidationFailed(f"team {name!r} does not exist", name="team")
    return team.id


def _team_name(session: OrmSession, team_id: int | None) -> str:
    team = session.get(Team, team_id) if team_id is not None else None
    return team.name if team is not None else ""


def _check_names(specs: Sequence[dict[str, Any]], kind: str) -> None:
    for spec in specs:
        if not str(spec.get("name") or "").strip():
            raise ValidationFailed(f"every {kind} spec needs a name", name="name")


# --- queries -------------------------------------------------------------------------------

def apply_queries(session: OrmSession, user: User | None, specs: Sequence[dict[str, Any]]) -> None:
    _check_names(specs, "query")
    resolved = []
    for spec in specs:
        if not str(spec.get("query") or "").strip():
            raise ValidationFailed(f"query {spec['name']!r} has no SQL", name="query")
        logging_type = spec.get("logging") or "snapshot"
        if logging_type not in LOGGING_TYPES:
            raise ValidationFailed(f"invalid logging type {logging_type!r}", name="logging")
        resolved.append((spec, _team_id(session, spec.get("team")), logging_type))
    for spec, team_id, logging_type in resolved:
        scope = Query.team_id.is_(None) if team_id is None else Query.team_id == team_id
        row = session.scalars(select(Query).where(scope, Query.name == spec["name"])).first()
        if row is None:
            row = Query(name=spec["name"], team_id=team_id, query=spec["query"],
                        author_id=user.id if user is not None else None, saved=True)
            session.add(row)
        row.query = spec["query"]
        row.description = spec.get("description") or ""
        row.interval = int(spec.get("interval") or 0)
        row.platform = spec.get("platform") or ""
        row.min_osquery_version = spec.get("min_osquery_version") or ""
        row.automations_enabled = bool(spec.get("automations_enabled"))
        row.logging_type = logging_type
        row.observer_can_run = bool(spec.get("observer_can_run"))
        row.discard_data = bool(spec.get("discard_data"))
    session.flush()
    record_activity(session, user, "applied_spec_saved_query",
                    {"specs": [{"name": s["name"], "description": s.get("description") or "", "query": s["query"]}
                               for s in specs]})


def query_spec(session: OrmSession, query: Query) -> dict[str, Any]:
    return {"name": query.name, "description": query.description, "query": query.query,
            "team": _team_name(session, query.team_id), "interval": query.interval,
            "observer_can_run": query.observer_can_run, "platform": query.platform,
            "min_osquery_version": query.min_osquery_version, "automations_enabled": query.automations_enabled,
            "logging": query.logging_type, "discard_data": query.discard_data}


def query_specs(session: OrmSession) -> list[dict[str, Any]]:
    rows = session.scalars(select(Query).where(Query.saved.is_(True)).order_by(Query.id))
    return [query_spec(session, q) for q in rows]


# --- labels --------------------------------------------------------------------------------

def apply_labels(session: OrmSession, user: User | None, specs: Sequence[dict[str, Any]]) -> None:
    _check_names(specs, "label")
    plans = []
    for spec in specs:
        existing = session.scalars(select(Label).where(Label.name == spec["name"])).first()
        if existing is not None and existing.label_type == label_service.BUILTIN:
            raise ValidationFailed(f"built-in label {spec['name']!r} cannot be changed", name="name")
        manual = spec.get("label_membership_type") == label_service.MANUAL or spec.get("hosts") is not None
        if manual and str(spec.get("query") or "").strip():
            raise ValidationFailed(f"manual label {spec['name']!r} cannot have a query", name="query")
        if not manual and not str(spec.get("query") or "").strip():
            raise ValidationFailed(f"label {spec['name']!r} needs a query", name="query")
        host_ids = label_service.resolve_hosts(session, spec.get("hosts") or []) if manual else None
        plans.append((spec, existing, manual, host_ids))
    for spec, existing, manual, host_ids in plans:
        if existing is None:
            label_service.create_label(session, user, name=spec["name"], description=spec.get("description") or "",
                                       query=spec.get("query") or "", platform=spec.get("platform") or "",
                                       host_ids=host_ids, manual=manual, record=False)
            continue
        new_query = "" if manual else str(spec.get("query") or "")
        membership = label_service.MANUAL if manual else label_service.DYNAMIC
        if new_query != existing.query or membership != existing.label_membership_type:
            # The old members answered another question.
            session.execute(delete(LabelMembership).where(LabelMembership.label_id == existing.id))
        existing.query = new_query
        existing.label_membership_type = membership
        existing.description = spec.get("description") or ""
        existing.platform = spec.get("platform") or ""
        if host_ids is not None:
            label_service.set_manual_members(session, existing, host_ids)
    session.flush()
    record_activity(session, user, "applied_spec_label", {"specs": [dict(s) for s in specs]})


def label_spec(session: OrmSession, label: Label) -> dict[str, Any]:
    spec: dict[str, Any] = {"id": label.id, "name": label.name, "description": label.description,
                            "query": label.query, "platform": label.platform, "label_type": label.label_type,
                            "label_membership_type": label.label_membership_type}
    if label.label_membership_type == label_service.MANUAL:
        stmt = (select(Host.hostname).join(LabelMembership, LabelMembership.host_id == Host.id)
                .where(LabelMembership.label_id == label.id).order_by(Host.hostname))
        spec["hosts"] = list(session.scalars(stmt))
    return spec


def label_specs(session: OrmSession) -> list[dict[str, Any]]:
    return [label_spec(session, label) for label in session.scalars(select(Label).order_by(Label.id))]


# --- policies ------------------------------------------------------------------------------

def apply_policies(session: OrmSession, user: User | None, specs: Sequence[dict[str, Any]]) -> None:
    _check_names(specs, "policy")
    plans = []
    for spec in specs:
        if not str(spec.get("query") or "").strip():
            raise ValidationFailed(f"policy {spec['name']!r} has no query", name="query")
        policy_service.validate_platform(spec.get("platform") or "")
        plans.append((spec, _team_id(session, spec.get("team"))))
    for spec, team_id in plans:
        scope = Policy.team_id.is_(None) if team_id is None else Policy.team_id == team_id
        existing = session.scalars(select(Policy).where(scope, Policy.name == spec["name"])).first()
        fields = {"query": spec["query"], "description": spec.get("description") or "",
                  "resolution": spec.get("resolution") or "", "platform": spec.get("platform") or "",
                  "critical": bool(spec.get("critical"))}
        if existing is None:
            policy_service.create_policy(session, user, team_id, name=spec["name"], record=False, **fields)
        else:
            policy_service.modify_policy(session, user, existing, fields, record=False)
    record_activity(session, user, "applied_spec_policy", {"policies": [dict(s) for s in specs]})


def policy_specs(session: OrmSession) -> list[dict[str, Any]]:
    rows = session.scalars(select(Policy).order_by(Policy.id))
    return [{"name": p.name, "query": p.query, "description": p.description, "resolution": p.resolution,
             "platform": p.platform, "critical": p.critical, "team": _team_name(session, p.team_id)} for p in rows]


# --- packs ---------------------------------------------------------------------------------

def apply_packs(session: OrmSession, user: User | None, specs: Sequence[dict[str, Any]]) -> None:
    _check_names(specs, "pack")
    for spec in specs:
        for item in spec.get("queries") or []:
            name = item.get("query")
            if not name or session.scalars(select(Query.id).where(Query.name == name)).first() is None:
                raise ValidationFailed(f"pack {spec['name']!r} refers to unknown query {name!r}", name="queries")
        targets = spec.get("targets") or {}
        for label_name in targets.get("labels") or []:
            if session.scalars(select(Label.id).where(Label.name == label_name)).first() is None:
                raise ValidationFailed(f"pack {spec['name']!r} targets unknown label {label_name!r}", name="targets")
        for team_name in targets.get("teams") or []:
            _team_id(session, team_name)
    for spec in specs:
        pack = session.scalars(select(Pack).where(Pack.name == spec["name"])).first()
        if pack is None:
            pack = Pack(name=spec["name"])
            session.add(pack)
        pack.description = spec.get("description") or ""
        pack.platform = spec.get("platform") or ""
        pack.disabled = bool(spec.get("disabled"))
        pack.spec = {"queries": [dict(q) for q in spec.get("queries") or []],
                     "targets": dict(spec.get("targets") or {})}
    session.flush()
    record_activity(session, user, "applied_spec_pack", {})


def pack_spec(pack: Pack) -> dict[str, Any]:
    spec = pack.spec if isinstance(pack.spec, dict) else {}
    return {"id": pack.id, "name": pack.name, "description": pack.description, "platform": pack.platform,
            "disabled": pack.disabled, "targets": spec.get("targets") or {"labels": [], "teams": []},
            "queries": spec.get("queries") or []}


def pack_specs(session: OrmSession) -> list[dict[str, Any]]:
    return [pack_spec(p) for p in session.scalars(select(Pack).order_by(Pack.id))]


def get_named(session: OrmSession, model: type[Label] | type[Pack] | type[Query], name: str) -> Any:
    row = session.scalars(select(model).where(model.name == name).order_by(model.id)).first()
    if row is None:
        raise NotFound(f"{name!r} not found", name="name")
    return row


# --- teams ---------------------------------------------------------------------------------

def apply_teams(session: OrmSession, user: User | None, specs: Sequence[dict[str, Any]]) -> dict[str, int]:
    _check_names(specs, "team")
    for spec in specs:
        if spec.get("agent_options") is not None:
            team_service.validate_agent_options(spec["agent_options"])
    applied: dict[str, int] = {}
    for spec in specs:
        secrets = [s["secret"] for s in spec["secrets"]] if spec.get("secrets") is not None else None
        team = team_service.team_by_name(session, spec["name"])
        if team is None:
            team = team_service.create_team(session, user, name=spec["name"],
                                            description=spec.get("description") or "", secrets=secrets,
                                            record=False)
        elif secrets is not None:
            team_service.replace_secrets(session, user, team.id, secrets, record=False)
        if spec.get("agent_options") is not None:
            team_service.set_agent_options(session, user, team, spec["agent_options"], record=False)
        config = dict(team.config or {})
        for key in team_service.TEAM_SETTING_KEYS:
            if isinstance(spec.get(key), dict):
                config[key] = spec[key]
        team.config = config
        applied[team.name] = team.id
    session.flush()
    record_activity(session, user, "applied_spec_team",
                    {"teams": [{"id": team_id, "name": name} for name, team_id in applied.items()]})
    return applied
