"""Hosts for the REST API: filters, JSON in Fleet's shape, summary, delete.

Status rules (online/offline/missing/new) come from
:mod:`hostql.server.services.host_status`, evaluated at :func:`listing.now`
(``state.extras["clock"]`` when tests inject one).  Deleting a host also
drops it from the osquery API's node-key cache
(:func:`hostql.server.services.checkin.invalidate_host`), so its agent gets
``node_invalid`` and enrolls again.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, delete, exists, func, or_, select
from sqlalchemy.orm import Session as OrmSession

from hostql.server.errors import NotFound, ValidationFailed
from hostql.server.services import checkin, host_status, os_versions
from hostql.server.services import labels as label_service
from hostql.server.services import policies as policy_service
from hostql.server.services import software as software_service
from hostql.server.services.activities import record_activity
from hostql.server.services.listing import ListOptions, apply_list_options, iso
from hostql.server.state import ServerState
from hostql.server.storage.models import (
    EPOCH,
    Host,
    HostSoftware,
    HostUser,
    LabelMembership,
    Policy,
    PolicyMembership,
    Software,
    Team,
    User,
)

S = TypeVar("S", bound=Select)  # type: ignore[type-arg]

LOW_DISK_GB = 32
ORDER_COLUMNS: dict[str, ColumnElement[Any]] = {
    column.key: column for column in Host.__table__.columns if column.key not in ("node_key", "additional")
}


def status_clause(status: str, at: datetime) -> ColumnElement[bool]:
    try:
        return host_status.status_filter(status, at)
    except ValueError:
        raise ValidationFailed(f"invalid status: {status}; use {', '.join(host_status.STATUSES)}",
                               name="status") from None


@dataclass(frozen=True)
class HostFilters:
    status: str | None = None
    query: str | None = None
    team_id: int | None = None  # 0: hosts in no team
    label_id: int | None = None
    policy_id: int | None = None
    policy_response: str | None = None  # passing | failing
    low_disk_space: int | None = None  # GB
    platform: str | None = None
    software_version_id: int | None = None  # hosts with this software version
    software_title_id: int | None = None  # hosts with any version of this title (see services/software.py)
    os_version_id: int | None = None  # see services/os_versions.py
    os_name: str | None = None  # with os_version: "Ubuntu" and "22.04.3 LTS"
    os_version: str | None = None
    visible_teams: frozenset[int] | None = None  # None: every host; else hosts of these teams only


def apply_filters(stmt: S, session: OrmSession, filters: HostFilters, at: datetime) -> S:
    if filters.visible_teams is not None:
        stmt = stmt.where(Host.team_id.in_(sorted(filters.visible_teams)))
    if filters.status:
        stmt = stmt.where(status_clause(filters.status, at))
    if filters.query:
        needle = filters.query.lower()
        stmt = stmt.where(or_(*(func.lower(col).contains(needle, autoescape=True) for col in (
            Host.hostname, Host.display_name, Host.computer_name, Host.uuid, Host.hardware_serial, Host.primary_ip))))
    if filters.team_id is not None:
        stmt = stmt.where(Host.team_id.is_(None) if filters.team_id == 0 else Host.team_id == filters.team_id)
    if filters.label_id is not None:
        stmt = stmt.where(exists().where(LabelMembership.host_id == Host.id,
                                         LabelMembership.label_id == filters.label_id))
    if filters.policy_response is not None and filters.policy_id is None:
        raise ValidationFailed("policy_response requires policy_id", name="policy_id")
    if filters.policy_id is not None:
        condition = [PolicyMembership.host_id == Host.id, PolicyMembership.policy_id == filters.policy_id]
        if filters.policy_response == "passing":
            condition.append(PolicyMembership.passes.is_(True))
        elif filters.policy_response == "failing":
            condition.append(PolicyMembership.passes.is_(False))
        elif filters.policy_response is not None:
            raise ValidationFailed("policy_response must be passing or failing", name="policy_response")
        stmt = stmt.where(exists().where(*condition))
    if filters.low_disk_space is not None:
        if not 1 <= filters.low_disk_space <= 100:
            raise ValidationFailed("low_disk_space must be between 1 and 100", name="low_disk_space")
        stmt = stmt.where(Host.gigs_disk_space_available < filters.low_disk_space)
    if filters.platform:
        stmt = stmt.where(Host.platform == filters.platform)
    if filters.software_version_id is not None:
        stmt = stmt.where(exists().where(HostSoftware.host_id == Host.id,
                                         HostSoftware.software_id == filters.software_version_id))
    os_condition = os_versions.host_condition(session, filters.os_version_id, filters.os_name, filters.os_version)
    if os_condition is not None:
        stmt = stmt.where(os_condition)
    if filters.software_title_id is not None:
        stmt = stmt.where(exists().where(HostSoftware.host_id == Host.id,
                                         HostSoftware.software_id.in_(software_service.title_version_ids(filters.software_title_id))))
    return stmt


def list_hosts(session: OrmSession, filters: HostFilters, options: ListOptions, at: datetime) -> list[Host]:
    stmt = apply_filters(select(Host), session, filters, at)
    return list(session.scalars(apply_list_options(stmt, options, ORDER_COLUMNS, Host.id)))


def count_hosts(session: OrmSession, filters: HostFilters, at: datetime) -> int:
    stmt = apply_filters(select(func.count()).select_from(Host), session, filters, at)
    return int(session.scalar(stmt) or 0)


SEARCH_LIMIT = 20  # hosts a target search answers with (a picker's list, not a listing)


def search_hosts(session: OrmSession, filters: HostFilters, excluded: Iterable[int], at: datetime) -> list[Host]:
    """The first :data:`SEARCH_LIMIT` hosts matching ``filters`` (by hostname), ``excluded`` left out."""
    stmt = apply_filters(select(Host), session, filters, at)
    skip = sorted(set(excluded))
    if skip:
        stmt = stmt.where(Host.id.not_in(skip))
    return list(session.scalars(stmt.order_by(Host.hostname, Host.id).limit(SEARCH_LIMIT)))


# --- JSON ----------------------------------------------------------------------------------

def _failing_counts(session: OrmSession, host_ids: list[int]) -> dict[int, int]:
    if not host_ids:
        return {}
    stmt = (select(PolicyMembership.host_id, func.count()).where(PolicyMembership.host_id.in_(host_ids),
                                                                 PolicyMembership.passes.is_(False))
            .group_by(PolicyMembership.host_id))
    return {row[0]: row[1] for row in session.execute(stmt)}


def _team_names(session: OrmSession, hosts: list[Host]) -> dict[int, str]:
    ids = {h.team_id for h in hosts if h.team_id is not None}
    if not ids:
        return {}
    return {t.id: t.name for t in session.scalars(select(Team).where(Team.id.in_(ids)))}


def display_name(host: Host) -> str:
    return host.display_name or host.computer_name or host.hostname


def host_to_json(host: Host, at: datetime, *, team_name: str | None, failing_policies: int) -> dict[str, Any]:
    return {
        "id": host.id,
        "created_at": iso(host.created_at),
        "updated_at": iso(host.updated_at),
        "detail_updated_at": iso(host.detail_updated_at),
        "label_updated_at": iso(host.label_updated_at),
        "policy_updated_at": iso(host.policy_updated_at),
        "last_enrolled_at": iso(host.last_enrolled_at),
        "seen_time": iso(host.seen_time),
        "refetch_requested": host.refetch_requested,
        "hostname": host.hostname,
        "display_name": display_name(host),
        "display_text": host.hostname,
        "uuid": host.uuid,
        "platform": host.platform,
        "osquery_version": host.osquery_version,
        "os_version": host.os_version,
        "build": host.build,
        "platform_like": host.platform_like,
        "code_name": host.code_name,
        "uptime": host.uptime * 1_000_000_000,
        "memory": host.memory,
        "cpu_type": host.cpu_type,
        "cpu_subtype": host.cpu_subtype,
        "cpu_brand": host.cpu_brand,
        "cpu_physical_cores": host.cpu_physical_cores,
        "cpu_logical_cores": host.cpu_logical_cores,
        "hardware_vendor": host.hardware_vendor,
        "hardware_model": host.hardware_model,
        "hardware_version": host.hardware_version,
        "hardware_serial": host.hardware_serial,
        "computer_name": host.computer_name,
        "primary_ip": host.primary_ip,
        "primary_mac": host.primary_mac,
        "public_ip": host.public_ip,
        "distributed_interval": host.distributed_interval,
        "config_tls_refresh": host.config_tls_refresh,
        "logger_tls_period": host.logger_tls_period,
        "gigs_disk_space_available": host.gigs_disk_space_available,
        "percent_disk_space_available": host.percent_disk_space_available,
        "gigs_total_disk_space": host.gigs_total_disk_space,
        "team_id": host.team_id,
        "team_name": team_name,
        "status": host_status.host_status(host, at),
        "issues": {"failing_policies_count": failing_policies, "total_issues_count": failing_policies},
        "additional": host.additional or {},
    }


def hosts_json(session: OrmSession, hosts: list[Host], at: datetime) -> list[dict[str, Any]]:
    failing = _failing_counts(session, [h.id for h in hosts])
    teams = _team_names(session, hosts)
    return [host_to_json(h, at, team_name=teams.get(h.team_id) if h.team_id is not None else None,
                         failing_policies=failing.get(h.id, 0)) for h in hosts]


def host_software(session: OrmSession, host_id: int) -> list[dict[str, Any]]:
    stmt = (select(Software, HostSoftware.installed_path)
            .join(HostSoftware, HostSoftware.software_id == Software.id)
            .where(HostSoftware.host_id == host_id).order_by(Software.name, Software.version, Software.id))
    return [{"id": sw.id, "name": sw.name, "version": sw.version, "source": sw.source, "arch": sw.arch,
             "vendor": sw.vendor, "generated_cpe": "", "vulnerabilities": None,
             "installed_paths": [path] if path else []}
            for sw, path in session.execute(stmt)]


def host_users(session: OrmSession, host_id: int) -> list[dict[str, Any]]:
    stmt = select(HostUser).where(HostUser.host_id == host_id).order_by(HostUser.uid, HostUser.username)
    return [{"uid": u.uid, "username": u.username, "type": u.type, "groupname": u.groupname, "shell": u.shell}
            for u in session.scalars(stmt)]


def host_detail_json(session: OrmSession, host: Host, at: datetime) -> dict[str, Any]:
    body = hosts_json(session, [host], at)[0]
    body["labels"] = label_service.labels_json(session, label_service.labels_of_host(session, host.id))
    body["packs"] = []
    body["pack_stats"] = []
    body["policies"] = policy_service.host_policies(session, host)
    body["software"] = host_software(session, host.id)
    body["users"] = host_users(session, host.id)
    return body


# --- lookups and changes -------------------------------------------------------------------

def get_host(session: OrmSession, host_id: int) -> Host:
    host = session.get(Host, host_id)
    if host is None:
        raise NotFound(f"host {host_id} not found", name="id")
    return host


def find_host(session: OrmSession, identifier: str) -> Host:
    """A host by UUID, hostname, serial, node key or osquery host ID."""
    stmt = select(Host).where(or_(Host.uuid == identifier, Host.hostname == identifier,
                                  Host.hardware_serial == identifier, Host.node_key == identifier,
                                  Host.osquery_host_id == identifier)).order_by(Host.id)
    host = session.scalars(stmt).first()
    if host is None:
        raise NotFound(f"host {identifier!r} not found", name="identifier")
    return host


def delete_hosts(state: ServerState, session: OrmSession, user: User | None, hosts: list[Host]) -> None:
    """Delete hosts (their agents must enroll again: their node keys stop working)."""
    ids = [h.id for h in hosts]
    for host in hosts:
        details = {"host_id": host.id, "host_display_name": display_name(host),
                   "host_serial": host.hardware_serial, "triggered_by": "manual"}
        # Child rows go explicitly too, in case foreign keys are not enforced (SQLite without the pragma).
        for model in (LabelMembership, PolicyMembership, HostSoftware, HostUser):
            session.execute(delete(model).where(model.host_id == host.id))
        session.delete(host)
        record_activity(session, user, "deleted_host", details)
    session.flush()
    for host_id in ids:
        # The osquery API answers node_invalid for the old key from now on (this process; others
        # within the cache TTL), so the agent enrolls again.
        checkin.invalidate_host(state, host_id)


def transfer_hosts(session: OrmSession, user: User | None, hosts: list[Host], team_id: int | None) -> None:
    """Move ``hosts`` to team ``team_id`` (None: no team), as ``POST /hosts/transfer`` does.

    The old team's policies no longer apply to a moved host: its results for them go (the
    new team's run at its next policy check, which the move makes due).  The agent gets the
    new team's config at its next fetch (the host's cache entries are dropped with the change)."""
    team: Team | None = None
    if team_id is not None:
        team = session.get(Team, team_id)
        if team is None:
            raise NotFound("team not found", name="team_id")
    moved = [host for host in hosts if host.team_id != team_id]
    for host in moved:
        host.team_id = team_id
        host.policy_updated_at = EPOCH
    if moved:
        team_policies = select(Policy.id).where(Policy.team_id.is_not(None))
        session.execute(delete(PolicyMembership).where(PolicyMembership.host_id.in_([h.id for h in moved]),
                                                       PolicyMembership.policy_id.in_(team_policies)))
    session.flush()
    record_activity(session, user, "transferred_hosts", {
        "team_id": team_id, "team_name": team.name if team is not None else None,
        "host_ids": [h.id for h in hosts], "host_display_names": [display_name(h) for h in hosts]})


def request_refetch(session: OrmSession, host: Host) -> None:
    host.refetch_requested = True
    session.flush()


# --- CSV report ----------------------------------------------------------------------------

def report_rows(hosts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Host JSON objects flattened for ``GET /hosts/report``: the issue counts as columns of their
    own, the free-form ``additional`` answers left out."""
    rows = []
    for host in hosts:
        row = {key: value for key, value in host.items() if key not in ("issues", "additional")}
        issues = host.get("issues") or {}
        row["failing_policies_count"] = issues.get("failing_policies_count", 0)
        row["total_issues_count"] = issues.get("total_issues_count", 0)
        rows.append(row)
    return rows


# The keys of a flattened host object (a test keeps the two in step).
REPORT_COLUMNS: tuple[str, ...] = (
    "id", "created_at", "updated_at", "detail_updated_at", "label_updated_at", "policy_updated_at",
    "last_enrolled_at", "seen_time", "refetch_requested", "hostname", "display_name", "display_text", "uuid",
    "platform", "osquery_version", "os_version", "build", "platform_like", "code_name", "uptime", "memory",
    "cpu_type", "cpu_subtype", "cpu_brand", "cpu_physical_cores", "cpu_logical_cores", "hardware_vendor",
    "hardware_model", "hardware_version", "hardware_serial", "computer_name", "primary_ip", "primary_mac",
    "public_ip", "distributed_interval", "config_tls_refresh", "logger_tls_period", "gigs_disk_space_available",
    "percent_disk_space_available", "gigs_total_disk_space", "team_id", "team_name", "status",
    "failing_policies_count", "total_issues_count",
)


def report_columns(columns: str | None) -> list[str]:
    """The columns a ``columns=a,b`` parameter asks for, in its order (all without it)."""
    if not columns:
        return list(REPORT_COLUMNS)
    wanted = [name.strip() for name in columns.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in REPORT_COLUMNS]
    if unknown or not wanted:
        raise ValidationFailed(f"unknown columns: {', '.join(unknown) or '(none given)'}; "
                               f"known: {', '.join(REPORT_COLUMNS)}", name="columns")
    return list(dict.fromkeys(wanted))


def csv_text(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """``rows`` as CSV with a header line; booleans as true/false, null as an empty field."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else str(row[c]).lower() if isinstance(row[c], bool)
                         else row[c] for c in columns])
    return out.getvalue()


# --- summary -------------------------------------------------------------------------------

def summary(session: OrmSession, team_id: int | None, at: datetime, low_disk_space: int | None,
            visible_teams: frozenset[int] | None = None) -> dict[str, Any]:
    filters = HostFilters(team_id=team_id, visible_teams=visible_teams)

    def count(extra: ColumnElement[bool] | None = None) -> int:
        stmt = apply_filters(select(func.count()).select_from(Host), session, filters, at)
        if extra is not None:
            stmt = stmt.where(extra)
        return int(session.scalar(stmt) or 0)

    total = count()
    online = count(status_clause("online", at))
    mia = count(status_clause("missing", at))
    platform_stmt = apply_filters(select(Host.platform, func.count()).select_from(Host), session, filters, at)
    platforms = sorted(session.execute(platform_stmt.group_by(Host.platform)), key=lambda r: r[0])
    body: dict[str, Any] = {
        "team_id": team_id,
        "totals_hosts_count": total,
        "online_count": online,
        "offline_count": total - online,
        "mia_count": mia,
        "missing_30_days_count": mia,
        "new_count": count(status_clause("new", at)),
        "all_linux_count": sum(n for p, n in platforms if policy_service.platform_family(p) == "linux"),
        "low_disk_space_count": count(Host.gigs_disk_space_available < (low_disk_space or LOW_DISK_GB)),
        "platforms": [{"platform": p, "hosts_count": n} for p, n in platforms],
        "builtin_labels": [{"id": label.id, "name": label.name, "description": label.description,
                            "label_type": label.label_type}
                           for label in label_service.builtin_labels(session)],
    }
    return body
