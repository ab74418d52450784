"""Policies: yes/no questions asked of every host, global or per team.

A host passes a policy when the query returns at least one row, fails on zero
rows, and has no response when the query errored or never ran
(``PolicyMembership.passes`` is ``True``/``False``/``None``; no row at all
also means no response).

Interface for the osquery API (distributed/write):

- :func:`policies_for_host` lists the policies a host must run
  (global ones plus its team's, filtered by platform);
- :func:`record_policy_results` stores one host's answers
  (``{policy_id: True | False | None}``), then calls
  :func:`policy_results_changed` with what flipped;
- or, if the caller writes ``PolicyMembership`` itself, it calls
  ``policy_results_changed(state, session, changes)`` with
  :class:`PolicyResultChange` items (or plain
  ``(host_id, policy_id, previous, current)`` tuples).  Every change whose
  ``current`` is ``False`` and ``previous`` is not ``False`` is a flip to
  failing; those fire the failing-policy webhook (once per flip) when it is
  enabled for the policy in ``webhook_settings.failing_policies_webhook``
  (the global app config for global policies, the team config for team
  policies).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session as OrmSession

from hostql.server.errors import Conflict, NotFound, ValidationFailed
from hostql.server.services.activities import record_activity
from hostql.server.services.listing import ListOptions, apply_list_options, iso, now
from hostql.server.services.policy_webhook import WebhookDelivery, dispatcher
from hostql.server.state import ServerState
from hostql.server.storage.models import AppConfig, Host, Policy, PolicyMembership, Query, Team, User

POLICY_PLATFORMS = ("darwin", "windows", "linux", "chrome")
LINUX_PLATFORMS = frozenset({
    "linux", "ubuntu", "debian", "centos", "rhel", "fedora", "amzn", "arch", "manjaro", "gentoo",
    "opensuse", "opensuse-leap", "opensuse-tumbleweed", "sles", "suse", "oracle", "ol", "rocky",
    "almalinux", "alpine", "kali", "linuxmint", "pop", "nixos", "void", "raspbian", "elementary",
})
ORDER_COLUMNS = {
    "id": Policy.id,
    "name": Policy.name,
    "created_at": Policy.created_at,
    "updated_at": Policy.updated_at,
    "critical": Policy.critical,
}


def platform_family(platform: str) -> str:
    """``darwin``, ``windows``, ``chrome``, ``linux`` or the platform itself."""
    if platform in LINUX_PLATFORMS:
        return "linux"
    return platform


def validate_platform(platform: str) -> str:
    parts = [p.strip() for p in platform.split(",") if p.strip()]
    bad = [p for p in parts if p not in POLICY_PLATFORMS]
    if bad:
        raise ValidationFailed(f"invalid platform: {', '.join(bad)}; use {', '.join(POLICY_PLATFORMS)}",
                               name="platform")
    return ",".join(parts)


def applies_to(policy: Policy, host: Host) -> bool:
    if policy.team_id is not None and policy.team_id != host.team_id:
        return False
    if not policy.platform:
        return True
    return platform_family(host.platform) in policy.platform.split(",")


# --- reading -------------------------------------------------------------------------------

def _counts(session: OrmSession, policy_ids: Sequence[int]) -> dict[int, tuple[int, int, datetime | None]]:
    passing: dict[int, int] = defaultdict(int)
    failing: dict[int, int] = defaultdict(int)
    latest: dict[int, datetime | None] = {}
    stmt = (select(PolicyMembership.policy_id, PolicyMembership.passes, func.count(),
                   func.max(PolicyMembership.updated_at))
            .where(PolicyMembership.policy_id.in_(list(policy_ids)))
            .group_by(PolicyMembership.policy_id, PolicyMembership.passes))
    for policy_id, passes, count, updated in session.execute(stmt):
        if passes is True:
            passing[policy_id] += count
        elif passes is False:
            failing[policy_id] += count
        previous = latest.get(policy_id)
        if updated is not None and (previous is None or updated > previous):
            latest[policy_id] = updated
    return {pid: (passing[pid], failing[pid], latest.get(pid)) for pid in policy_ids}


def policies_json(session: OrmSession, policies: Sequence[Policy]) -> list[dict[str, Any]]:
    counts = _counts(session, [p.id for p in policies])
    author_ids = {p.author_id for p in policies if p.author_id is not None}
    authors = {u.id: u for u in session.scalars(select(User).where(User.id.in_(author_ids)))} if author_ids else {}
    result = []
    for policy in policies:
        author = authors.get(policy.author_id) if policy.author_id is not None else None
        passing, failing, updated = counts[policy.id]
        result.append({
            "id": policy.id,
            "name": policy.name,
            "query": policy.query,
            "description": policy.description,
            "critical": policy.critical,
            "author_id": policy.author_id,
            "author_name": author.name if author else "",
            "author_email": author.email if author else "",
            "team_id": policy.team_id,
            "resolution": policy.resolution,
            "platform": policy.platform,
            "calendar_events_enabled": False,
            "created_at": iso(policy.created_at),
            "updated_at": iso(policy.updated_at),
            "passing_host_count": passing,
            "failing_host_count": failing,
            "host_count_updated_at": iso(updated),
        })
    return result


def policy_json(session: OrmSession, policy: Policy) -> dict[str, Any]:
    return policies_json(session, [policy])[0]


def _scope(team_id: int | None) -> Any:
    return Policy.team_id.is_(None) if team_id is None else Policy.team_id == team_id


def list_policies(session: OrmSession, team_id: int | None, options: ListOptions, query: str = "") -> list[Policy]:
    stmt = select(Policy).where(_scope(team_id))
    if query:
        stmt = stmt.where(func.lower(Policy.name).contains(query.lower(), autoescape=True))
    return list(session.scalars(apply_list_options(stmt, options, ORDER_COLUMNS, Policy.id)))


def count_policies(session: OrmSession, team_id: int | None, query: str = "") -> int:
    stmt = select(func.count()).select_from(Policy).where(_scope(team_id))
    if query:
        stmt = stmt.where(func.lower(Policy.name).contains(query.lower(), autoescape=True))
    return int(session.scalar(stmt) or 0)


def get_policy(session: OrmSession, policy_id: int, team_id: int | None) -> Policy:
    policy = session.get(Policy, policy_id)
    if policy is None or policy.team_id != team_id:
        raise NotFound(f"policy {policy_id} not found", name="id")
    return policy


def policies_for_host(session: OrmSession, host: Host) -> list[Policy]:
    """The policies ``host`` must run: global ones and its team's, for its platform."""
    stmt = select(Policy).where(or_(Policy.team_id.is_(None), Policy.team_id == host.team_id)).order_by(Policy.id)
    return [p for p in session.scalars(stmt) if applies_to(p, host)]


def host_policies(session: OrmSession, host: Host) -> list[dict[str, Any]]:
    """The host page's policy list, each with ``response`` ``pass``/``fail``/``""``."""
    results = {m.policy_id: m.passes for m in
               session.scalars(select(PolicyMembership).where(PolicyMembership.host_id == host.id))}
    out = []
    for policy in policies_for_host(session, host):
        passes = results.get(policy.id)
        out.append({
            "id": policy.id, "name": policy.name, "query": policy.query, "description": policy.description,
            "critical": policy.critical, "author_id": policy.author_id, "team_id": policy.team_id,
            "resolution": policy.resolution, "platform": policy.platform,
            "response": "pass" if passes is True else "fail" if passes is False else "",
        })
    return out


# --- writing -------------------------------------------------------------------------------

def _activity_details(session: OrmSession, policy: Policy) -> dict[str, Any]:
    team = session.get(Team, policy.team_id) if policy.team_id is not None else None
    return {"policy_id": policy.id, "policy_name": policy.name,
            "team_id": team.id if team else -1, "team_name": team.name if team else None}


def _check_name_free(session: OrmSession, team_id: int | None, name: str, except_id: int | None = None) -> None:
    other = session.scalars(select(Policy).where(_scope(team_id), Policy.name == name)).first()
    if other is not None and other.id != except_id:
        raise Conflict(f"a policy named {name!r} already exists", name="name")


def create_policy(session: OrmSession, user: User | None, team_id: int | None, *, name: str = "",
                  query: str = "", description: str = "", resolution: str = "", platform: str = "",
                  critical: bool = False, query_id: int | None = None, record: bool = True) -> Policy:
    if query_id is not None:
        saved = session.get(Query, query_id)
        if saved is None:
            raise ValidationFailed(f"query {query_id} not found", name="query_id")
        name = name or saved.name
        query = query or saved.query
        description = description or saved.description
    if not name.strip():
        raise ValidationFailed("policy name must not be empty", name="name")
    if not query.strip():
        raise ValidationFailed("policy query must not be empty", name="query")
    _check_name_free(session, team_id, name.strip())
    policy = Policy(team_id=team_id, name=name.strip(), query=query, description=description,
                    resolution=resolution, platform=validate_platform(platform), critical=critical,
                    author_id=user.id if user is not None else None)
    session.add(policy)
    session.flush()
    if record:
        record_activity(session, user, "created_policy", _activity_details(session, policy))
    return policy


def modify_policy(session: OrmSession, user: User | None, policy: Policy, changes: Mapping[str, Any],
                  *, record: bool = True) -> Policy:
    """Apply the fields present in ``changes`` (name, query, description, resolution, platform, critical)."""
    if "name" in changes and changes["name"] is not None:
        name = str(changes["name"]).strip()
        if not name:
            raise ValidationFailed("policy name must not be empty", name="name")
        _check_name_free(session, policy.team_id, name, policy.id)
        policy.name = name
    if "query" in changes and changes["query"] is not None:
        if not str(changes["query"]).strip():
            raise ValidationFailed("policy query must not be empty", name="query")
        if changes["query"] != policy.query:
            # Old answers were to another question.
            session.execute(delete(PolicyMembership).where(PolicyMembership.policy_id == policy.id))
        policy.query = str(changes["query"])
    for key in ("description", "resolution"):
        if changes.get(key) is not None:
            setattr(policy, key, str(changes[key]))
    if changes.get("platform") is not None:
        policy.platform = validate_platform(str(changes["platform"]))
    if changes.get("critical") is not None:
        policy.critical = bool(changes["critical"])
    session.flush()
    if record:
        record_activity(session, user, "edited_policy", _activity_details(session, policy))
    return policy


def delete_policies(session: OrmSession, user: User | None, team_id: int | None, ids: Iterable[int]) -> int:
    policies = [get_policy(session, policy_id, team_id) for policy_id in sorted(set(ids))]
    for policy in policies:
        details = _activity_details(session, policy)
        session.delete(policy)
        record_activity(session, user, "deleted_policy", details)
    session.flush()
    return len(policies)


# --- results from hosts and the failing-policy webhook ---------------------------------------

@dataclass(frozen=True)
class PolicyResultChange:
    host_id: int
    policy_id: int
    previous: bool | None  # None: no response before
    current: bool | None

    @property
    def newly_failing(self) -> bool:
        return self.current is False and self.previous is not False


def record_policy_results(state: ServerState, session: OrmSession, host: Host,
                          results: Mapping[int, bool | None]) -> list[PolicyResultChange]:
    """Store ``host``'s policy answers and fire webhooks for the ones that flipped to failing."""
    stamp = now(state)
    existing = {m.policy_id: m for m in session.scalars(
        select(PolicyMembership).where(PolicyMembership.host_id == host.id,
                                       PolicyMembership.policy_id.in_(list(results))))}
    known = set(session.scalars(select(Policy.id).where(Policy.id.in_(list(results)))))
    changes: list[PolicyResultChange] = []
    for policy_id, passes in results.items():
        if policy_id not in known:
            continue
        row = existing.get(policy_id)
        previous = row.passes if row is not None else None
        if row is None:
            session.add(PolicyMembership(policy_id=policy_id, host_id=host.id, passes=passes, updated_at=stamp))
        else:
            row.passes = passes
            row.updated_at = stamp
        if previous != passes or row is None:
            changes.append(PolicyResultChange(host.id, policy_id, previous, passes))
    host.policy_updated_at = stamp
    session.flush()
    policy_results_changed(state, session, changes)
    return changes


def _app_config(session: OrmSession) -> dict[str, Any]:
    row = session.scalars(select(AppConfig).order_by(AppConfig.id)).first()
    return dict(row.json_value) if row is not None and isinstance(row.json_value, dict) else {}


def _webhook_settings(session: OrmSession, policy: Policy, app: dict[str, Any]) -> dict[str, Any] | None:
    if policy.team_id is None:
        source = app
    else:
        team = session.get(Team, policy.team_id)
        source = team.config if team is not None and isinstance(team.config, dict) else {}
    settings = (source.get("webhook_settings") or {}).get("failing_policies_webhook") or {}
    if not settings.get("enable_failing_policies_webhook") or not settings.get("destination_url"):
        return None
    if policy.id not in [int(i) for i in settings.get("policy_ids") or []]:
        return None
    return dict(settings)


def policy_results_changed(
    state: ServerState,
    session: OrmSession,
    changes: Iterable[PolicyResultChange | tuple[int, int, bool | None, bool | None]],
) -> list[WebhookDelivery]:
    """React to new policy results: post the failing-policy webhook for each flip to failing.

    Returns the deliveries handed to the dispatcher (posted in the background).
    """
    failing: dict[int, list[int]] = defaultdict(list)
    for item in changes:
        change = item if isinstance(item, PolicyResultChange) else PolicyResultChange(*item)
        if change.newly_failing and change.host_id not in failing[change.policy_id]:
            failing[change.policy_id].append(change.host_id)
    if not failing:
        return []
    app = _app_config(session)
    server_url = str((app.get("server_settings") or {}).get("server_url") or "").rstrip("/")
    deliveries: list[WebhookDelivery] = []
    for policy_id, host_ids in sorted(failing.items()):
        policy = session.get(Policy, policy_id)
        if policy is None:
            continue
        settings = _webhook_settings(session, policy, app)
        if settings is None:
            continue
        hosts = list(session.scalars(select(Host).where(Host.id.in_(host_ids)).order_by(Host.id)))
        entries = [{"id": h.id, "hostname": h.hostname,
                    "display_name": h.display_name or h.computer_name or h.hostname,
                    "url": f"{server_url}/hosts/{h.id}"} for h in hosts]
        batch = int(settings.get("host_batch_size") or 0) or len(entries) or 1
        policy_body = policy_json(session, policy)
        for start in range(0, len(entries), batch):
            payload = {"timestamp": iso(now(state)), "policy": policy_body, "hosts": entries[start:start + batch]}
            deliveries.append(WebhookDelivery(str(settings["destination_url"]), payload))
    sender = dispatcher(state)
    for delivery in deliveries:
        sender.submit(delivery)
    return deliveries
