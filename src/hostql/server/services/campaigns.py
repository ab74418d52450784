"""Live-query campaigns: who is targeted, how many are online, creating and stopping them.

Target selection follows Fleet: ``selected = {hosts, labels, teams}``; builtin
labels, custom labels and teams are AND-ed across kinds and OR-ed within a
kind; the builtin "All Hosts" label selects every host; explicitly listed host
ids are always included.  Only hosts the user may see count (team users see
their teams' hosts).

Online/offline/missing/new counts use :mod:`hostql.server.services.host_status`
(Fleet's §2.8 rules), with a fresher in-memory seen time when the check-in
batcher of this process holds one.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import and_, insert, or_, select
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.sql.elements import ColumnElement

from hostql.server.errors import BadRequest, Forbidden, NotFound
from hostql.server.pubsub import MemoryTargetStore, TargetStore, results_channel
from hostql.server.services import authz, host_status
from hostql.server.services.activities import record_activity
from hostql.server.services.listing import iso, now
from hostql.server.state import ServerState
from hostql.server.storage.models import (
    AppConfig,
    Campaign,
    CampaignTarget,
    Host,
    Label,
    LabelMembership,
    Query,
    User,
)

ALL_HOSTS = "All Hosts"
STATUS_WAITING, STATUS_RUNNING, STATUS_COMPLETED = 0, 1, 2
TARGET_KINDS = ("hosts", "labels", "teams")
_KIND_TYPE = {"hosts": "host", "labels": "label", "teams": "team"}


@dataclass
class Selection:
    hosts: list[int] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    teams: list[int] = field(default_factory=list)


@dataclass
class Metrics:
    total: int = 0
    online: int = 0
    offline: int = 0
    missing_in_action: int = 0
    new: int = 0
    online_ids: set[int] = field(default_factory=set)

    def as_fleet(self) -> dict[str, int]:
        return {"TotalHosts": self.total, "OnlineHosts": self.online, "OfflineHosts": self.offline,
                "MissingInActionHosts": self.missing_in_action, "NewHosts": self.new}

    def totals_message(self) -> dict[str, int]:
        return {"count": self.total, "online": self.online, "offline": self.offline,
                "missing_in_action": self.missing_in_action}


# --------------------------------------------------------------------------- targets


def _visible(user: User) -> ColumnElement[bool] | None:
    teams = authz.visible_team_ids(user)
    if teams is None:
        return None
    return Host.team_id.in_(sorted(teams))


def _members(label_ids: Sequence[int]) -> ColumnElement[bool]:
    return Host.id.in_(select(LabelMembership.host_id).where(LabelMembership.label_id.in_(label_ids)))


def resolve_host_ids(session: OrmSession, user: User, selection: Selection) -> list[int]:
    """The ids of the hosts ``selection`` targets that ``user`` may see, ascending."""
    labels = list(session.scalars(select(Label).where(Label.id.in_(selection.labels)))) if selection.labels else []
    builtin = [label.id for label in labels if label.label_type == "builtin"]
    custom = [label.id for label in labels if label.label_type != "builtin"]
    all_hosts = any(label.label_type == "builtin" and label.name == ALL_HOSTS for label in labels)

    selectors: list[ColumnElement[bool]] = []
    if selection.hosts:
        selectors.append(Host.id.in_(selection.hosts))
    if all_hosts:
        selectors.append(Host.id.is_not(None))
    else:
        kinds: list[ColumnElement[bool]] = []
        if builtin:
            kinds.append(_members(builtin))
        if custom:
            kinds.append(_members(custom))
        if selection.teams:
            real = [team for team in selection.teams if team > 0]
            in_team: list[ColumnElement[bool]] = [Host.team_id.in_(real)] if real else []
            if 0 in selection.teams:  # team 0: hosts without a team
                in_team.append(Host.team_id.is_(None))
            kinds.append(or_(*in_team))
        if kinds:
            selectors.append(and_(*kinds))
    if not selectors:
        return []
    stmt = select(Host.id).where(or_(*selectors))
    visible = _visible(user)
    if visible is not None:
        stmt = stmt.where(visible)
    return list(session.scalars(stmt.order_by(Host.id)))


def selection_by_names(session: OrmSession, hostnames: Sequence[str], label_names: Sequence[str]) -> Selection:
    """``run_by_names``: hosts by hostname (or other identifier) and labels by name; unknown names are errors."""
    hosts: list[int] = []
    for name in hostnames:
        host = find_host(session, name)
        if host is None:
            raise BadRequest(f"host {name!r} was not found", name="selected.hosts")
        hosts.append(host.id)
    labels = {label.name: label.id for label in session.scalars(select(Label).where(Label.name.in_(label_names)))}
    unknown = [name for name in label_names if name not in labels]
    if unknown:
        raise BadRequest(f"labels not found: {', '.join(unknown)}", name="selected.labels")
    return Selection(hosts=hosts, labels=[labels[name] for name in label_names])


def _seen_time(state: ServerState, host: Host) -> datetime:
    """The host's seen time, or the fresher one this process has not flushed yet."""
    checkin = state.extras.get("checkin")
    pending = getattr(getattr(checkin, "seen", None), "pending", None)
    fresher = pending(host.id) if callable(pending) else None
    if isinstance(fresher, datetime) and fresher > host.seen_time:
        return fresher
    return host.seen_time


def metrics(state: ServerState, session: OrmSession, host_ids: Iterable[int]) -> Metrics:
    """Fleet's target metrics for ``host_ids`` (offline excludes missing-in-action hosts)."""
    ids = list(host_ids)
    result = Metrics()
    if not ids:
        return result
    moment = now(state)
    # Only the columns the status rules read: the WebSocket recomputes this every few seconds.
    columns = (Host.id, Host.seen_time, Host.created_at, Host.distributed_interval, Host.config_tls_refresh)
    for chunk_start in range(0, len(ids), 500):
        chunk = ids[chunk_start:chunk_start + 500]
        for row in session.execute(select(*columns).where(Host.id.in_(chunk))):
            host = cast(Host, row)  # has every attribute host_status reads
            result.total += 1
            status = host_status.host_status(host, moment, _seen_time(state, host))
            if status == "online":
                result.online += 1
                result.online_ids.add(host.id)
            elif status == "missing":
                result.missing_in_action += 1
            else:
                result.offline += 1
            if host_status.is_new(host, moment):
                result.new += 1
    return result


def is_online(state: ServerState, host: Host) -> bool:
    return host_status.is_online(host, now(state), _seen_time(state, host))


# --------------------------------------------------------------------------- running


def live_queries_disabled(session: OrmSession) -> bool:
    row = session.scalars(select(AppConfig).limit(1)).first()
    if row is None or not isinstance(row.json_value, dict):
        return False
    server_settings = row.json_value.get("server_settings") or {}
    return bool(isinstance(server_settings, dict) and server_settings.get("live_query_disabled"))


def check_can_run(session: OrmSession, user: User, query: Query | None, sql: str) -> None:
    """Observers may run only saved queries marked ``observer_can_run``; the others anything."""
    if live_queries_disabled(session):
        raise Forbidden("live queries are disabled in the app settings", name="base")
    if authz.allowed_any(user, authz.RUN_ANY):
        return
    if authz.allowed_any(user, authz.RUN_OBSERVER):
        if query is None:  # ad-hoc SQL: allowed when it is exactly a saved observer_can_run query
            query = session.scalars(
                select(Query).where(Query.query == sql, Query.saved.is_(True), Query.observer_can_run.is_(True))
            ).first()
        if query is not None and query.observer_can_run and authz.can_see_team(user, query.team_id):
            return
    raise Forbidden("forbidden", name="base")


def load_query(session: OrmSession, user: User, query_id: int) -> Query:
    query = session.get(Query, query_id)
    if query is None or not authz.can_see_team(user, query.team_id):
        raise NotFound(f"query {query_id} was not found", name="query_id")
    return query


def adhoc_query(session: OrmSession, user: User, sql: str) -> Query:
    """Fleet's unsaved query row for ad-hoc SQL: ``distributed_<email>_<unixnano>``."""
    if not sql.strip():
        raise BadRequest("query is required", name="query")
    query = Query(name=f"distributed_{user.email}_{time.time_ns()}", query=sql, saved=False,
                  author_id=user.id, description="")
    session.add(query)
    session.flush()
    return query


def create_campaign(state: ServerState, session: OrmSession, user: User, query: Query,
                    selection: Selection) -> tuple[Campaign, list[int], Metrics]:
    """Write the campaign and its selection; targets are handed to the agents by the caller."""
    host_ids = resolve_host_ids(session, user, selection)
    if not host_ids:
        raise BadRequest("no hosts targeted", name="selected", message="no hosts targeted")
    campaign = Campaign(query_id=query.id, query=query.query, status=STATUS_WAITING, user_id=user.id)
    session.add(campaign)
    session.flush()
    # One multi-row INSERT: a campaign may name thousands of hosts, and ORM objects (inserted one by
    # one to learn their keys) made that most of the time to start it.
    targets = [{"campaign_id": campaign.id, "type": _KIND_TYPE[kind], "target_id": target_id}
               for kind in TARGET_KINDS for target_id in dict.fromkeys(getattr(selection, kind))]
    if targets:
        session.execute(insert(CampaignTarget), targets)
    details: dict[str, Any] = {"targets_count": len(host_ids), "query_sql": query.query}
    if query.saved:
        details["query_name"] = query.name
    record_activity(session, user, "live_query", details)
    return campaign, host_ids, metrics(state, session, host_ids)


def campaign_selection(session: OrmSession, campaign_id: int) -> Selection:
    selection = Selection()
    kinds = {value: key for key, value in _KIND_TYPE.items()}
    for target in session.scalars(select(CampaignTarget).where(CampaignTarget.campaign_id == campaign_id)):
        kind = kinds.get(target.type)
        if kind is not None:
            getattr(selection, kind).append(target.target_id)
    return selection


def campaign_json(campaign: Campaign, campaign_metrics: Metrics | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": campaign.id,
        "query_id": campaign.query_id,
        "status": campaign.status,
        "user_id": campaign.user_id,
        "created_at": iso(campaign.created_at),
        "updated_at": iso(campaign.updated_at),
    }
    if campaign_metrics is not None:
        body["Metrics"] = campaign_metrics.as_fleet()
    return body


def set_status(state: ServerState, campaign_id: int, status: int) -> None:
    with state.database.session() as session:
        campaign = session.get(Campaign, campaign_id)
        if campaign is not None and campaign.status != status:
            campaign.status = status


def target_store(state: ServerState) -> TargetStore:
    """Where this server keeps live-query targets (the pub/sub backend's store)."""
    store: TargetStore | None = getattr(state.pubsub, "targets", None)
    if store is None:  # a pub/sub without a target store: keep one per process
        store = state.extras.setdefault("live_query_targets", MemoryTargetStore())
    return store


def stop(state: ServerState, campaign_id: int) -> None:
    """Complete the campaign: no agent will be asked to run it any more."""
    target_store(state).remove(campaign_id)
    drop = getattr(state.pubsub, "drop_retained", None)
    if callable(drop):
        drop(results_channel(campaign_id))
    set_status(state, campaign_id, STATUS_COMPLETED)


def find_host(session: OrmSession, identifier: str) -> Host | None:
    """A host by UUID, hostname, serial, node key or osquery host id (Fleet's identifier lookup)."""
    stmt = select(Host).where(or_(Host.uuid == identifier, Host.hostname == identifier,
                                  Host.hardware_serial == identifier, Host.node_key == identifier,
                                  Host.osquery_host_id == identifier))
    return session.scalars(stmt.order_by(Host.id)).first()
