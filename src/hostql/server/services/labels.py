"""Labels: dynamic (a query run on hosts) and manual (a list of hosts), plus builtins.

Builtin labels are ordinary dynamic labels with ``label_type = "builtin"``
that users cannot change or delete: ``All Hosts`` and one per platform
family (fleet-reference §2.7).  :func:`seed_builtin_labels` creates the
missing ones and is safe to call at every start.

Membership of dynamic labels is written by the osquery API from the answers
to ``fleet_label_query_<id>``; manual membership is written here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session as OrmSession

from hostql.server.errors import Conflict, NotFound, ValidationFailed
from hostql.server.services.activities import record_activity
from hostql.server.services.listing import ListOptions, apply_list_options, iso
from hostql.server.storage.models import Host, Label, LabelMembership, User

BUILTIN = "builtin"
REGULAR = "regular"
DYNAMIC = "dynamic"
MANUAL = "manual"

# (name, description, query, platform)
BUILTIN_LABELS: tuple[tuple[str, str, str, str], ...] = (
    ("All Hosts", "Every host enrolled in hostql.", "select 1;", ""),
    ("macOS", "Hosts running macOS.", "select 1 from os_version where platform = 'darwin';", "darwin"),
    ("Ubuntu Linux", "Hosts running Ubuntu.", "select 1 from os_version where platform = 'ubuntu';", "ubuntu"),
    ("CentOS Linux", "Hosts running CentOS.",
     "select 1 from os_version where platform = 'centos' or name like '%centos%';", ""),
    ("MS Windows", "Hosts running Windows.", "select 1 from os_version where platform = 'windows';", "windows"),
    ("Red Hat Linux", "Hosts running Red Hat Enterprise Linux.",
     "select 1 from os_version where name like '%red hat%';", ""),
    ("All Linux", "Hosts running any Linux distribution.",
     "select 1 from osquery_info where build_platform = 'linux';", ""),
)

ORDER_COLUMNS = {
    "id": Label.id,
    "name": Label.name,
    "created_at": Label.created_at,
    "updated_at": Label.updated_at,
    "label_type": Label.label_type,
}


def seed_builtin_labels(session: OrmSession) -> list[Label]:
    """Create the builtin labels that do not exist yet (by name); return all builtins."""
    existing = {label.name: label for label in session.scalars(select(Label))}
    for name, description, query, platform in BUILTIN_LABELS:
        if name not in existing:
            label = Label(name=name, description=description, query=query, platform=platform,
                          label_type=BUILTIN, label_membership_type=DYNAMIC)
            session.add(label)
            existing[name] = label
    session.flush()
    return builtin_labels(session)


def builtin_labels(session: OrmSession) -> list[Label]:
    return list(session.scalars(select(Label).where(Label.label_type == BUILTIN).order_by(Label.id)))


def host_counts(session: OrmSession, label_ids: Iterable[int] | None = None) -> dict[int, int]:
    stmt = select(LabelMembership.label_id, func.count()).group_by(LabelMembership.label_id)
    if label_ids is not None:
        stmt = stmt.where(LabelMembership.label_id.in_(list(label_ids)))
    return {row[0]: row[1] for row in session.execute(stmt)}


def member_ids(session: OrmSession, label_id: int) -> list[int]:
    stmt = select(LabelMembership.host_id).where(LabelMembership.label_id == label_id)
    return sorted(session.scalars(stmt))


def label_to_json(label: Label, count: int, host_ids: list[int] | None = None) -> dict[str, Any]:
    return {
        "id": label.id,
        "created_at": iso(label.created_at),
        "updated_at": iso(label.updated_at),
        "name": label.name,
        "description": label.description,
        "query": label.query,
        "platform": label.platform,
        "label_type": label.label_type,
        "label_membership_type": label.label_membership_type,
        "display_text": label.name,
        "count": count,
        "host_ids": host_ids if label.label_membership_type == MANUAL else None,
    }


def labels_json(session: OrmSession, labels: Sequence[Label]) -> list[dict[str, Any]]:
    counts = host_counts(session, [label.id for label in labels])
    return [label_to_json(label, counts.get(label.id, 0)) for label in labels]


def one_label_json(session: OrmSession, label: Label) -> dict[str, Any]:
    ids = member_ids(session, label.id)
    return label_to_json(label, len(ids), ids)


def get_label(session: OrmSession, label_id: int) -> Label:
    label = session.get(Label, label_id)
    if label is None:
        raise NotFound(f"label {label_id} not found", name="id")
    return label


def get_label_by_name(session: OrmSession, name: str) -> Label:
    label = session.scalars(select(Label).where(Label.name == name)).first()
    if label is None:
        raise NotFound(f"label {name!r} not found", name="name")
    return label


def list_labels(session: OrmSession, options: ListOptions, query: str = "") -> list[Label]:
    stmt = select(Label)
    if query:
        stmt = stmt.where(func.lower(Label.name).contains(query.lower(), autoescape=True))
    stmt = apply_list_options(stmt, options, ORDER_COLUMNS, Label.id)
    return list(session.scalars(stmt))


def summary(session: OrmSession) -> list[dict[str, Any]]:
    labels = session.scalars(select(Label).order_by(Label.id))
    return [{"id": label.id, "name": label.name, "description": label.description,
             "label_type": label.label_type} for label in labels]


def resolve_hosts(session: OrmSession, identifiers: Iterable[str]) -> list[int]:
    """Host IDs for hostnames (or UUIDs, serials, osquery host IDs); 422 for unknown ones."""
    found: list[int] = []
    unknown: list[str] = []
    for identifier in identifiers:
        stmt = select(Host.id).where(or_(Host.hostname == identifier, Host.uuid == identifier,
                                         Host.hardware_serial == identifier,
                                         Host.osquery_host_id == identifier)).order_by(Host.id)
        host_id = session.scalars(stmt).first()
        if host_id is None:
            unknown.append(identifier)
        elif host_id not in found:
            found.append(host_id)
    if unknown:
        raise ValidationFailed(f"unknown hosts: {', '.join(unknown)}", name="hosts")
    return found


def check_host_ids(session: OrmSession, host_ids: Iterable[int]) -> list[int]:
    wanted = sorted(set(host_ids))
    present = set(session.scalars(select(Host.id).where(Host.id.in_(wanted))))
    missing = [str(h) for h in wanted if h not in present]
    if missing:
        raise ValidationFailed(f"unknown host ids: {', '.join(missing)}", name="host_ids")
    return wanted


def set_manual_members(session: OrmSession, label: Label, host_ids: Iterable[int]) -> None:
    session.execute(delete(LabelMembership).where(LabelMembership.label_id == label.id))
    for host_id in sorted(set(host_ids)):
        session.add(LabelMembership(label_id=label.id, host_id=host_id))
    session.flush()


def _check_name_free(session: OrmSession, name: str, except_id: int | None = None) -> None:
    other = session.scalars(select(Label).where(Label.name == name)).first()
    if other is not None and other.id != except_id:
        raise Conflict(f"a label named {name!r} already exists", name="name")


def create_label(session: OrmSession, user: User | None, *, name: str, description: str = "",
                 query: str = "", platform: str = "", host_ids: list[int] | None = None,
                 manual: bool = False, record: bool = True) -> Label:
    name = name.strip()
    if not name:
        raise ValidationFailed("label name must not be empty", name="name")
    manual = manual or host_ids is not None
    if manual and query.strip():
        raise ValidationFailed("a manual label cannot have a query", name="query")
    if not manual and not query.strip():
        raise ValidationFailed("a dynamic label needs a query", name="query")
    _check_name_free(session, name)
    label = Label(name=name, description=description, query="" if manual else query, platform=platform,
                  label_type=REGULAR, label_membership_type=MANUAL if manual else DYNAMIC)
    session.add(label)
    session.flush()
    if manual:
        set_manual_members(session, label, check_host_ids(session, host_ids or []))
    if record:
        record_activity(session, user, "created_label", {"label_id": label.id, "label_name": label.name})
    return label


def modify_label(session: OrmSession, user: User | None, label: Label, *, name: str | None = None,
                 description: str | None = None, host_ids: list[int] | None = None) -> Label:
    if label.label_type == BUILTIN:
        raise ValidationFailed("built-in labels cannot be modified", name="label_type")
    if name is not None:
        name = name.strip()
        if not name:
            raise ValidationFailed("label name must not be empty", name="name")
        _check_name_free(session, name, label.id)
        label.name = name
    if description is not None:
        label.description = description
    if host_ids is not None:
        if label.label_membership_type != MANUAL:
            raise ValidationFailed("only manual labels take a host list", name="hosts")
        set_manual_members(session, label, check_host_ids(session, host_ids))
    session.flush()
    record_activity(session, user, "edited_label", {"label_id": label.id, "label_name": label.name})
    return label


def delete_label(session: OrmSession, user: User | None, label: Label) -> None:
    if label.label_type == BUILTIN:
        raise ValidationFailed("built-in labels cannot be deleted", name="label_type")
    details = {"label_id": label.id, "label_name": label.name}
    session.delete(label)
    session.flush()
    record_activity(session, user, "deleted_label", details)


def change_host_labels(session: OrmSession, user: User | None, host: Host, names: Iterable[str],
                       *, add: bool) -> list[Label]:
    """Add ``host`` to (or remove it from) the manual labels called ``names``."""
    labels: list[Label] = []
    for name in names:
        label = session.scalars(select(Label).where(Label.name == name)).first()
        if label is None:
            raise NotFound(f"label {name!r} not found", name="labels")
        if label.label_membership_type != MANUAL or label.label_type == BUILTIN:
            raise ValidationFailed(f"label {name!r} is not a manual label", name="labels")
        labels.append(label)
    for label in labels:
        row = session.get(LabelMembership, (label.id, host.id))
        if add and row is None:
            session.add(LabelMembership(label_id=label.id, host_id=host.id))
        elif not add and row is not None:
            session.delete(row)
        record_activity(session, user, "edited_label", {"label_id": label.id, "label_name": label.name})
    session.flush()
    return labels


def labels_of_host(session: OrmSession, host_id: int) -> list[Label]:
    stmt = (select(Label).join(LabelMembership, LabelMembership.label_id == Label.id)
            .where(LabelMembership.host_id == host_id).order_by(Label.id))
    return list(session.scalars(stmt))
