"""Distributed read (what a host must run now) and write (routing its answers).

Read assembly, per check-in:

1. ``fleet_detail_query_<name>`` when ``detail_updated_at`` is older than
   ``detail_update_interval`` (+ per-host jitter) or ``refetch_requested``;
   with them the admin's ``fleet_additional_query_<name>``
   (``features.additional_queries`` in the app config).
2. ``fleet_label_query_<id>`` for dynamic labels of the host's platform when
   ``label_updated_at`` is older than ``label_update_interval`` (+ jitter).
3. ``fleet_policy_query_<id>`` for global and team policies of the host's
   platform when ``policy_updated_at`` is older than ``policy_update_interval``.
4. ``fleet_distributed_query_<campaign>`` from :mod:`live_targets`.
5. ``discovery``: ``SELECT 1`` (or the detail query's own) for every query.
6. ``accelerate: 10`` while hostname or platform is unknown.

Jitter is deterministic per host: up to ``max_jitter_percent`` (10) of the
interval, so hosts enrolled together spread out without random flapping.

Write routing is by the name prefixes of fleet-reference §2.5.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hostql.server.services import live_targets
from hostql.server.services.appconfig import cached_document
from hostql.server.services.detail_queries import BY_NAME, IngestContext, platform_family, queries_for
from hostql.server.state import ServerState
from hostql.server.storage.changes import on_change
from hostql.server.storage.models import Host, Label, LabelMembership, Policy, PolicyMembership

DETAIL = "fleet_detail_query_"
LABEL = "fleet_label_query_"
POLICY = "fleet_policy_query_"
CAMPAIGN = live_targets.CAMPAIGN_PREFIX
ADDITIONAL = "fleet_additional_query_"
ACCELERATE = 10
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def seconds_setting(settings: Any, name: str, default: float) -> float:
    """A duration setting as seconds: a number, a timedelta or Go-style text like ``1h30m``."""
    value = getattr(settings, name, None)
    if value is None:
        return default
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        parts = _DURATION.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            return default
        return sum(float(number) * _UNITS[unit] for number, unit in parts)


@dataclass(frozen=True)
class Intervals:
    detail: float = 3600.0
    label: float = 3600.0
    policy: float = 3600.0
    jitter_percent: float = 10.0

    @classmethod
    def from_settings(cls, settings: Any) -> Intervals:
        return cls(seconds_setting(settings, "detail_update_interval", 3600.0),
                   seconds_setting(settings, "label_update_interval", 3600.0),
                   seconds_setting(settings, "policy_update_interval", 3600.0),
                   float(getattr(settings, "max_jitter_percent", 10.0)))


def host_jitter(host_id: int, interval: float, percent: float) -> timedelta:
    """Deterministic per-host delay in [0, interval * percent / 100)."""
    if interval <= 0 or percent <= 0:
        return timedelta(0)
    fraction = ((host_id * 2654435761) % 4096) / 4096.0
    return timedelta(seconds=interval * percent / 100.0 * fraction)


def due_at(last: datetime, interval: float, host_id: int, percent: float) -> datetime:
    return last + timedelta(seconds=interval) + host_jitter(host_id, interval, percent)


def is_due(last: datetime, interval: float, host_id: int, percent: float, now: datetime) -> bool:
    return due_at(last, interval, host_id, percent) <= now


def platform_matches(spec: str, host_platform: str) -> bool:
    """A label/policy platform list ("" = all; e.g. ``darwin,linux``) against a host platform."""
    wanted = {item.strip().lower() for item in (spec or "").split(",") if item.strip()}
    if not wanted:
        return True
    return bool(wanted & {host_platform.lower(), platform_family(host_platform)})


# ----------------------------------------------------------------- label and policy sets, cached

SETS_TTL = 1.0  # seconds; changes made through the ORM in this process invalidate at once
_generation = itertools.count()
_current_generation = [next(_generation)]


@dataclass(frozen=True)
class QuerySets:
    """Every dynamic label and every policy, as (id, sql, platform[, team id]) tuples."""

    loaded_at: float
    generation: int
    labels: tuple[tuple[int, str, str], ...]
    policies: tuple[tuple[int, str, str, int | None], ...]

    def labels_for(self, host: Host) -> dict[str, str]:
        return {f"{LABEL}{label_id}": sql for label_id, sql, platform in self.labels
                if platform_matches(platform, host.platform)}

    def policies_for(self, host: Host) -> dict[str, str]:
        return {f"{POLICY}{policy_id}": sql for policy_id, sql, platform, team_id in self.policies
                if (team_id is None or team_id == host.team_id) and platform_matches(platform, host.platform)}


def _sets_changed() -> None:
    _current_generation[0] = next(_generation)


on_change((Label, Policy), _sets_changed)


_SETS_LOCK = threading.Lock()


def cached_sets(state: ServerState) -> QuerySets | None:
    """The cached sets when still fresh (younger than :data:`SETS_TTL`, nothing changed since), else None."""
    sets = state.extras.get("read_query_sets")
    if (isinstance(sets, QuerySets) and sets.generation == _current_generation[0]
            and time.monotonic() - sets.loaded_at < SETS_TTL):
        return sets
    return None


def query_sets(state: ServerState, session: Session) -> QuerySets:
    """The label and policy sets, from the cache or loaded with ``session``."""
    sets = cached_sets(state)
    if sets is not None:
        return sets
    generation, loaded_at = _current_generation[0], time.monotonic()
    labels = tuple((label_id, sql, platform or "") for label_id, sql, platform in session.execute(
        select(Label.id, Label.query, Label.platform)
        .where(Label.label_membership_type == "dynamic", Label.query != "").order_by(Label.id)))
    policies = tuple((policy_id, sql, platform or "", team_id) for policy_id, sql, platform, team_id in session.execute(
        select(Policy.id, Policy.query, Policy.platform, Policy.team_id).order_by(Policy.id)))
    sets = QuerySets(loaded_at, generation, labels, policies)
    with _SETS_LOCK:
        state.extras["read_query_sets"] = sets
    return sets


def additional_queries(session: Session) -> dict[str, str]:
    features = cached_document(session).get("features")
    extra = features.get("additional_queries") if isinstance(features, dict) else None
    if not isinstance(extra, dict):
        return {}
    return {str(name): sql for name, sql in extra.items() if isinstance(sql, str) and sql.strip()}


def quiet_until(state: ServerState, host: Host, now: datetime, intervals: Intervals) -> datetime | None:
    """Until when ``host``'s reads need no database (no detail, label or policy query due), or None.

    None when one is due now, or when labels or policies are due and the cached
    sets are not fresh enough to tell whether any applies to the host.  Due labels
    or policies of which none applies keep the host quiet until the sets change
    (their ``updated_at`` only moves when the host answers some): the answer then
    holds while :func:`sets_generation` stays the same."""
    if host.refetch_requested:
        return None
    until = due_at(host.detail_updated_at, intervals.detail, host.id, intervals.jitter_percent)
    if until <= now:
        return None
    sets: QuerySets | None = None
    for last, interval, applicable in ((host.label_updated_at, intervals.label, QuerySets.labels_for),
                                       (host.policy_updated_at, intervals.policy, QuerySets.policies_for)):
        due = due_at(last, interval, host.id, intervals.jitter_percent)
        if due > now:
            until = min(until, due)
            continue
        sets = sets or cached_sets(state)
        if sets is None or applicable(sets, host):
            return None
    return until


def sets_generation() -> int:
    """Moves whenever a label or policy changes in this process (see :func:`quiet_until`)."""
    return _current_generation[0]


def live_only_answer(state: ServerState, host: Host) -> dict[str, Any]:
    """The read answer while :func:`quiet_until`: live queries (from the target store) only."""
    try:
        queries = live_targets.pending_for_host(state, None, host)
    except Exception:
        import logging

        logging.getLogger(__name__).exception("live query targets for host %s", host.id)
        queries = {}
    answer: dict[str, Any] = {"queries": queries, "discovery": dict.fromkeys(queries, "SELECT 1")}
    if not host.hostname or not host.platform:
        answer["accelerate"] = ACCELERATE
    return answer


def read_queries(state: ServerState, session: Session, host: Host, now: datetime,
                 intervals: Intervals) -> dict[str, Any]:
    """The ``distributed/read`` answer for ``host`` (queries, discovery, accelerate)."""
    queries: dict[str, str] = {}
    discovery: dict[str, str] = {}
    if host.refetch_requested or is_due(host.detail_updated_at, intervals.detail, host.id,
                                        intervals.jitter_percent, now):
        for detail in queries_for(host.platform):
            queries[DETAIL + detail.name] = detail.sql
            discovery[DETAIL + detail.name] = detail.discovery
        for name, sql in additional_queries(session).items():
            queries[ADDITIONAL + name] = sql
    if host.refetch_requested or is_due(host.label_updated_at, intervals.label, host.id,
                                        intervals.jitter_percent, now):
        queries.update(query_sets(state, session).labels_for(host))
    if host.refetch_requested or is_due(host.policy_updated_at, intervals.policy, host.id,
                                        intervals.jitter_percent, now):
        queries.update(query_sets(state, session).policies_for(host))
    try:
        queries.update(live_targets.pending_for_host(state, session, host))
    except Exception:  # live queries must not stop vitals, labels and policies
        import logging

        logging.getLogger(__name__).exception("live query targets for host %s", host.id)
    for name in queries:
        discovery.setdefault(name, "SELECT 1")
    answer: dict[str, Any] = {"queries": queries, "discovery": discovery}
    if not host.hostname or not host.platform:
        answer["accelerate"] = ACCELERATE
    return answer


@dataclass
class CampaignAnswer:
    campaign_id: int
    rows: list[dict[str, Any]]
    error: str | None


@dataclass
class WriteReport:
    campaigns: list[CampaignAnswer] = field(default_factory=list)
    details: int = 0
    labels: int = 0
    policies: int = 0
    ignored: list[str] = field(default_factory=list)
    # (host id, policy id, previous, current) per policy answer, for the webhook.
    policy_changes: list[tuple[int, int, bool | None, bool | None]] = field(default_factory=list)


def _succeeded(status: Any) -> bool:
    if status is None or status == "":
        return True
    try:
        return int(status) == 0
    except (TypeError, ValueError):
        return False


def _rows(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):  # old osquery sends "" for no rows
        return []
    return [row for row in value if isinstance(row, dict)]


def _campaign_answer(campaign_id: int, ok: bool, rows: list[dict[str, Any]], message: Any) -> CampaignAnswer:
    return CampaignAnswer(campaign_id, rows, None if ok else (str(message or "") or "query failed"))


def _write_parts(body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A write's ``queries``, ``statuses`` and ``messages`` objects (empty when missing or not objects)."""
    parts = (body.get("queries"), body.get("statuses"), body.get("messages"))
    results, statuses, messages = (part if isinstance(part, dict) else {} for part in parts)
    return results, statuses, messages


def live_only_write(body: dict[str, Any]) -> list[CampaignAnswer] | None:
    """The answers of a ``distributed/write`` that holds live-query results only (the common
    write while a campaign runs), or None when it holds anything else: such a write needs no
    database at all, the answers go straight to the campaigns' listeners."""
    results, statuses, messages = _write_parts(body)
    answers = []
    for name in sorted(set(results) | set(statuses)):
        campaign_id = _suffix_id(name, CAMPAIGN) if name.startswith(CAMPAIGN) else None
        if campaign_id is None:
            return None
        answers.append(_campaign_answer(campaign_id, _succeeded(statuses.get(name)), _rows(results.get(name)),
                                        messages.get(name)))
    return answers or None


def _suffix_id(name: str, prefix: str) -> int | None:
    try:
        return int(name[len(prefix):])
    except ValueError:
        return None


def _set_labels(session: Session, host: Host, answers: dict[int, bool], now: datetime) -> None:
    """Store the host's label answers (id -> member) with two queries, not two per label."""
    if not answers:
        return
    known = set(session.scalars(select(Label.id).where(Label.id.in_(answers))))
    existing = {membership.label_id: membership for membership in session.scalars(
        select(LabelMembership).where(LabelMembership.host_id == host.id, LabelMembership.label_id.in_(known)))}
    for label_id, member in answers.items():
        if label_id not in known:
            continue
        current = existing.get(label_id)
        if member and current is None:
            session.add(LabelMembership(label_id=label_id, host_id=host.id, updated_at=now))
        elif member and current is not None:
            current.updated_at = now
        elif current is not None:
            session.delete(current)


def _set_policy(session: Session, host: Host, policy_id: int, passes: bool | None,
                now: datetime) -> tuple[int, int, bool | None, bool | None] | None:
    """Store one policy answer; returns (host, policy, previous, current) for automations."""
    if session.get(Policy, policy_id) is None:
        return None
    existing = session.get(PolicyMembership, (policy_id, host.id))
    if existing is None:
        session.add(PolicyMembership(policy_id=policy_id, host_id=host.id, passes=passes, updated_at=now))
        return (host.id, policy_id, None, passes)
    previous = existing.passes
    existing.passes = passes
    existing.updated_at = now
    return (host.id, policy_id, previous, passes)


def apply_write(session: Session, host: Host, body: dict[str, Any], now: datetime, *,
                features: dict[str, bool] | None = None) -> WriteReport:
    """Store one ``distributed/write`` for ``host`` (attached to ``session``)."""
    results, statuses, messages = _write_parts(body)
    report = WriteReport()
    ctx = IngestContext(session=session, host=host, now=now, **(features or {}))
    detail_seen = False
    platform_known = bool(host.platform)  # the full detail set went out only if it was known
    additional: dict[str, Any] = dict(host.additional or {})
    labels: dict[int, bool] = {}
    for name in sorted(set(results) | set(statuses)):
        ok = _succeeded(statuses.get(name))
        rows = _rows(results.get(name))
        if name.startswith(DETAIL):
            detail_seen = True
            detail = BY_NAME.get(name[len(DETAIL):])
            if detail is not None and ok:
                detail.ingest(ctx, rows)
                report.details += 1
        elif name.startswith(LABEL) and (label_id := _suffix_id(name, LABEL)) is not None:
            if ok:
                labels[label_id] = bool(rows)
            report.labels += 1
        elif name.startswith(POLICY) and (policy_id := _suffix_id(name, POLICY)) is not None:
            change = _set_policy(session, host, policy_id, bool(rows) if ok else None, now)
            if change is not None:
                report.policy_changes.append(change)
            report.policies += 1
        elif name.startswith(CAMPAIGN) and (campaign_id := _suffix_id(name, CAMPAIGN)) is not None:
            report.campaigns.append(_campaign_answer(campaign_id, ok, rows, messages.get(name)))
        elif name.startswith(ADDITIONAL):
            detail_seen = True
            if ok:
                additional[name[len(ADDITIONAL):]] = rows
        else:
            report.ignored.append(name)
    _set_labels(session, host, labels, now)
    if additional != (host.additional or {}):
        host.additional = additional
    if detail_seen:
        # With the platform still unknown only the cross-platform queries went out:
        # leave detail_updated_at alone so the full set follows on the next read.
        if platform_known:
            host.detail_updated_at = now
        host.refetch_requested = False
    if report.labels:
        host.label_updated_at = now
    if report.policies:
        host.policy_updated_at = now
    return report


def live_result_line(host: Host, answer: CampaignAnswer, now: datetime) -> dict[str, Any]:
    """A live query answer as a snapshot result-log line (for ``live_query_results_to_log``)."""
    return {
        "name": f"{CAMPAIGN}{answer.campaign_id}",
        "hostIdentifier": host.osquery_host_id,
        "calendarTime": now.replace(tzinfo=UTC).strftime("%a %b %d %H:%M:%S %Y UTC"),
        "unixTime": int(now.replace(tzinfo=UTC).timestamp()),
        "epoch": 0,
        "counter": 0,
        "numerics": False,
        "decorations": {"host_uuid": host.uuid, "hostname": host.hostname},
        "action": "snapshot",
        "snapshot": answer.rows,
        **({"error": answer.error} if answer.error else {}),
    }
