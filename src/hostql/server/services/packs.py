"""Legacy packs: named groups of scheduled queries sent to targeted hosts.

A pack is one ``Pack`` row; ``Pack.spec`` is the same document that
``fleetctl apply`` writes through :func:`hostql.server.services.specs.apply_packs`,
so the REST endpoints (``/packs``, ``/schedule``) and the spec endpoints
(``/spec/packs``) read and write one thing::

    {"queries": [{"query": <saved query name>, "name": <name in the pack>,
                  "description", "interval", "snapshot", "removed", "platform",
                  "version", "shard", "denylist"}, ...],
     "targets": {"labels": [<label name>, ...], "teams": [<team name>, ...]},
     "host_ids": [<host id>, ...],                      # REST only
     "schedule": [{"id": <scheduled id>, "query_id": <query id>}, ...]}  # REST only

``queries`` and ``targets`` are exactly the pack spec (fleet-reference §4.2),
which is why labels and teams are kept by name and the REST-only data sits
beside them: a ``fleetctl get packs`` answer can be applied again.  Applying
a spec replaces the document, dropping host targets as Fleet does.

``schedule`` runs parallel to ``queries``: each entry's scheduled-query ID
and the saved query's ID (so renaming the saved query does not cut it off).
When it is missing or stale (after a spec apply) the IDs are derived from
the positions and queries are found by name.  A scheduled-query ID is
``pack_id * SCHEDULE_ID_STRIDE + n``, so ``/schedule/{id}`` finds its pack
without scanning.  A scheduled query whose saved query is gone is dropped
from every view and from agent configs (Fleet deletes it with the query).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session as OrmSession

from hostql.server.errors import Conflict, NotFound, ValidationFailed
from hostql.server.services import labels as label_service
from hostql.server.services.activities import record_activity
from hostql.server.services.listing import ListOptions, apply_list_options, iso
from hostql.server.storage.models import Host, Label, LabelMembership, Pack, Query, Team, User

SCHEDULE_ID_STRIDE = 100_000
RESERVED_NAME = re.compile(r"Global|team-\d+")
MAX_INTERVAL = 604_800  # osquery's largest schedule interval (one week)
# Keys of a pack query entry that go into the osquery config as they are.
CONFIG_KEYS = ("interval", "snapshot", "removed", "platform", "version", "shard", "denylist")
# Optional scheduled-query fields: None removes the key (osquery's default applies).
OPTIONAL_FIELDS = ("description", "snapshot", "removed", "platform", "version", "shard", "denylist")
ORDER_COLUMNS: dict[str, Any] = {"id": Pack.id, "name": Pack.name, "created_at": Pack.created_at,
                                 "updated_at": Pack.updated_at}


# --- the stored document --------------------------------------------------------------------

def _spec(pack: Pack) -> dict[str, Any]:
    return pack.spec if isinstance(pack.spec, dict) else {}


def _queries(pack: Pack) -> list[dict[str, Any]]:
    return [dict(q) if isinstance(q, dict) else {} for q in _spec(pack).get("queries") or []]


def _names(pack: Pack, kind: str) -> list[str]:
    targets = _spec(pack).get("targets")
    values = targets.get(kind) if isinstance(targets, dict) else None
    return [v for v in values or [] if isinstance(v, str)]


def _host_ids(pack: Pack) -> list[int]:
    return [v for v in _spec(pack).get("host_ids") or [] if isinstance(v, int) and not isinstance(v, bool)]


def _save(pack: Pack, **changes: Any) -> None:
    """Replace parts of ``pack.spec`` (a new dict: JSON columns do not track mutation)."""
    pack.spec = {**_spec(pack), **changes}


# --- targets --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Targets:
    host_ids: list[int]
    label_ids: list[int]
    team_ids: list[int]


def _ids_by_name(session: OrmSession, model: type[Label] | type[Team], names: Sequence[str]) -> list[int]:
    if not names:
        return []
    found = {row[0]: row[1] for row in session.execute(select(model.name, model.id).where(model.name.in_(list(names))))}
    return [found[name] for name in names if name in found]


def targets_of(session: OrmSession, pack: Pack) -> Targets:
    """The pack's targets as IDs (labels or teams that no longer exist are left out)."""
    return Targets(host_ids=_host_ids(pack), label_ids=_ids_by_name(session, Label, _names(pack, "labels")),
                   team_ids=_ids_by_name(session, Team, _names(pack, "teams")))


def _names_for_ids(session: OrmSession, model: type[Label] | type[Team], ids: Iterable[int],
                   field: str) -> list[str]:
    wanted = list(dict.fromkeys(ids))
    found = {row[0]: row[1] for row in session.execute(select(model.id, model.name).where(model.id.in_(wanted)))}
    missing = [str(i) for i in wanted if i not in found]
    if missing:
        raise ValidationFailed(f"unknown {field.removesuffix('_ids')} ids: {', '.join(missing)}", name=field)
    return [found[i] for i in wanted]


def _set_targets(session: OrmSession, pack: Pack, host_ids: Sequence[int] | None,
                 label_ids: Sequence[int] | None, team_ids: Sequence[int] | None) -> None:
    """Replace the kinds of target that are given (None: keep); 422 naming the field for unknown IDs."""
    targets = _spec(pack).get("targets")
    new_targets = dict(targets) if isinstance(targets, dict) else {}
    new_targets.setdefault("labels", [])
    new_targets.setdefault("teams", [])
    changes: dict[str, Any] = {}
    if label_ids is not None:
        new_targets["labels"] = _names_for_ids(session, Label, label_ids, "label_ids")
    if team_ids is not None:
        new_targets["teams"] = _names_for_ids(session, Team, team_ids, "team_ids")
    changes["targets"] = new_targets
    if host_ids is not None:
        changes["host_ids"] = label_service.check_host_ids(session, host_ids)
    _save(pack, **changes)


def targeted_host_ids(session: OrmSession, targets: Targets) -> set[int]:
    """Every existing host the targets reach (listed hosts, label members, team members)."""
    clauses = []
    if targets.host_ids:
        clauses.append(Host.id.in_(targets.host_ids))
    if targets.team_ids:
        clauses.append(Host.team_id.in_(targets.team_ids))
    if targets.label_ids:
        members = select(LabelMembership.host_id).where(LabelMembership.label_id.in_(targets.label_ids))
        clauses.append(Host.id.in_(members))
    if not clauses:
        return set()
    return set(session.scalars(select(Host.id).where(or_(*clauses))))


def targets_host(targets: Targets, host: Host, host_label_ids: set[int]) -> bool:
    return (host.id in targets.host_ids or (host.team_id is not None and host.team_id in targets.team_ids)
            or bool(host_label_ids.intersection(targets.label_ids)))


# --- scheduled queries ----------------------------------------------------------------------

@dataclass
class Scheduled:
    """One query of a pack: its ID, its entry in ``spec["queries"]`` and the saved query."""

    id: int
    entry: dict[str, Any]
    query: Query | None

    @property
    def name(self) -> str:
        return str(self.entry.get("name") or self.entry.get("query") or "")


def _query_by_name(session: OrmSession, name: str) -> Query | None:
    stmt = select(Query).where(Query.name == name, Query.saved.is_(True))
    return session.scalars(stmt.order_by(Query.team_id.is_not(None), Query.id)).first()


def _schedule(pack: Pack, count: int) -> list[dict[str, Any]] | None:
    """The stored parallel list, or None when it does not describe the current queries."""
    schedule = _spec(pack).get("schedule")
    if not isinstance(schedule, list) or len(schedule) != count:
        return None
    if not all(isinstance(s, dict) and isinstance(s.get("id"), int) for s in schedule):
        return None
    return schedule


def scheduled_of(session: OrmSession, pack: Pack, *, include_orphans: bool = False) -> list[Scheduled]:
    """The pack's scheduled queries in order (without those whose saved query is gone)."""
    entries = _queries(pack)
    schedule = _schedule(pack, len(entries))
    items: list[Scheduled] = []
    for position, entry in enumerate(entries):
        query: Query | None = None
        if schedule is not None:
            scheduled_id = int(schedule[position]["id"])
            query_id = schedule[position].get("query_id")
            query = session.get(Query, query_id) if isinstance(query_id, int) else None
        else:
            scheduled_id = pack.id * SCHEDULE_ID_STRIDE + position + 1
        if query is None and isinstance(entry.get("query"), str):
            query = _query_by_name(session, entry["query"])
        if query is not None or include_orphans:
            items.append(Scheduled(scheduled_id, entry, query))
    return items


def _store_scheduled(pack: Pack, items: Sequence[Scheduled]) -> None:
    """Write ``items`` back as ``queries`` + ``schedule`` (dropping orphans, refreshing query names)."""
    kept = [item for item in items if item.query is not None]
    queries = []
    for item in kept:
        entry = dict(item.entry)
        assert item.query is not None
        entry["query"] = item.query.name
        queries.append(entry)
    _save(pack, queries=queries,
          schedule=[{"id": item.id, "query_id": item.query.id} for item in kept if item.query is not None])


def _next_id(pack: Pack, items: Sequence[Scheduled]) -> int:
    used = [item.id - pack.id * SCHEDULE_ID_STRIDE for item in items]
    number = max(used, default=0) + 1
    if number >= SCHEDULE_ID_STRIDE:
        raise ValidationFailed("this pack cannot take more scheduled queries", name="pack_id")
    return pack.id * SCHEDULE_ID_STRIDE + number


def _check_fields(fields: dict[str, Any]) -> None:
    interval = fields.get("interval")
    if interval is not None and not 1 <= interval <= MAX_INTERVAL:
        raise ValidationFailed(f"interval must be between 1 and {MAX_INTERVAL} seconds", name="interval")
    shard = fields.get("shard")
    if shard is not None and not 0 <= shard <= 100:
        raise ValidationFailed("shard must be between 0 and 100", name="shard")
    if "name" in fields and fields["name"] is not None and not str(fields["name"]).strip():
        raise ValidationFailed("name must not be empty", name="name")


def _check_unique_name(items: Sequence[Scheduled], name: str, except_id: int | None = None) -> None:
    if any(item.name == name and item.id != except_id for item in items):
        raise Conflict(f"the pack already has a query named {name!r}", name="name")


def add_scheduled(session: OrmSession, user: User | None, pack: Pack, query: Query,
                  fields: dict[str, Any]) -> Scheduled:
    """Add ``query`` to ``pack`` (``fields``: interval, name and the optional fields)."""
    _check_fields(fields)
    if not fields.get("interval"):
        raise ValidationFailed("interval is required", name="interval")
    items = scheduled_of(session, pack)
    name = str(fields.get("name") or query.name).strip()
    _check_unique_name(items, name)
    entry: dict[str, Any] = {"query": query.name, "name": name, "interval": int(fields["interval"])}
    entry.update({key: fields[key] for key in OPTIONAL_FIELDS if fields.get(key) is not None})
    item = Scheduled(_next_id(pack, items), entry, query)
    _store_scheduled(pack, [*items, item])
    session.flush()
    record_activity(session, user, "edited_pack", {"pack_id": pack.id, "pack_name": pack.name})
    return item


def find_scheduled(session: OrmSession, scheduled_id: int) -> tuple[Pack, Scheduled]:
    pack = session.get(Pack, scheduled_id // SCHEDULE_ID_STRIDE) if scheduled_id > 0 else None
    if pack is not None:
        for item in scheduled_of(session, pack):
            if item.id == scheduled_id:
                return pack, item
    raise NotFound(f"scheduled query {scheduled_id} was not found", name="id")


def modify_scheduled(session: OrmSession, user: User | None, pack: Pack, scheduled_id: int,
                     changes: dict[str, Any], query: Query | None = None) -> Scheduled:
    """Change a scheduled query: ``changes`` holds only the fields sent (None clears an optional one)."""
    _check_fields(changes)
    items = scheduled_of(session, pack)
    item = next((i for i in items if i.id == scheduled_id), None)
    if item is None:
        raise NotFound(f"scheduled query {scheduled_id} was not found", name="id")
    entry = dict(item.entry)
    if query is not None:
        if entry.get("name") in (None, "", entry.get("query")) and "name" not in changes:
            entry["name"] = query.name  # the name followed the old query's: keep following
        entry["query"] = query.name
        item.query = query
    for key, value in changes.items():
        if value is None:
            if key in OPTIONAL_FIELDS:
                entry.pop(key, None)
            continue
        entry[key] = value.strip() if key == "name" else value
    item.entry = entry
    _check_unique_name(items, item.name, except_id=item.id)
    _store_scheduled(pack, items)
    session.flush()
    record_activity(session, user, "edited_pack", {"pack_id": pack.id, "pack_name": pack.name})
    return item


def delete_scheduled(session: OrmSession, user: User | None, pack: Pack, scheduled_id: int) -> None:
    items = scheduled_of(session, pack)
    _store_scheduled(pack, [item for item in items if item.id != scheduled_id])
    session.flush()
    record_activity(session, user, "edited_pack", {"pack_id": pack.id, "pack_name": pack.name})


def scheduled_json(pack: Pack, item: Scheduled) -> dict[str, Any]:
    """Fleet's ``ScheduledQuery`` object."""
    entry, query = item.entry, item.query
    return {
        "id": item.id,
        "pack_id": pack.id,
        "name": item.name,
        "query_id": query.id if query is not None else None,
        "query_name": query.name if query is not None else str(entry.get("query") or ""),
        "query": query.query if query is not None else "",
        "description": entry.get("description") or "",
        "interval": entry.get("interval") or 0,
        "snapshot": entry.get("snapshot"),
        "removed": entry.get("removed"),
        "platform": entry.get("platform"),
        "version": entry.get("version"),
        "shard": entry.get("shard"),
        "denylist": entry.get("denylist"),
    }


# --- packs ----------------------------------------------------------------------------------

def pack_json(session: OrmSession, pack: Pack) -> dict[str, Any]:
    """Fleet's pack object, with its targets as IDs."""
    targets = targets_of(session, pack)
    return {
        "id": pack.id,
        "created_at": iso(pack.created_at),
        "updated_at": iso(pack.updated_at),
        "name": pack.name,
        "description": pack.description,
        "platform": pack.platform,
        "disabled": pack.disabled,
        "type": None,
        "query_count": len(scheduled_of(session, pack)),
        "total_hosts_count": len(targeted_host_ids(session, targets)),
        "host_ids": targets.host_ids,
        "label_ids": targets.label_ids,
        "team_ids": targets.team_ids,
    }


def get_pack(session: OrmSession, pack_id: int) -> Pack:
    pack = session.get(Pack, pack_id)
    if pack is None:
        raise NotFound(f"pack {pack_id} was not found", name="id")
    return pack


def get_pack_by_name(session: OrmSession, name: str) -> Pack:
    pack = session.scalars(select(Pack).where(Pack.name == name)).first()
    if pack is None:
        raise NotFound(f"pack {name!r} was not found", name="name")
    return pack


def list_packs(session: OrmSession, options: ListOptions, query: str = "") -> list[Pack]:
    stmt = select(Pack)
    if query:
        stmt = stmt.where(func.lower(Pack.name).contains(query.lower(), autoescape=True))
    return list(session.scalars(apply_list_options(stmt, options, ORDER_COLUMNS, Pack.id)))


def _check_name(session: OrmSession, name: str, except_id: int | None = None) -> str:
    name = name.strip()
    if not name:
        raise ValidationFailed("pack name must not be empty", name="name")
    if RESERVED_NAME.fullmatch(name):
        # "Global" and "team-<id>" are the packs of scheduled queries in every agent config.
        raise ValidationFailed(f"{name!r} is reserved for scheduled queries", name="name")
    other = session.scalars(select(Pack.id).where(Pack.name == name)).first()
    if other is not None and other != except_id:
        raise Conflict(f"a pack named {name!r} already exists", name="name")
    return name


def create_pack(session: OrmSession, user: User | None, *, name: str, description: str = "",
                platform: str = "", disabled: bool = False, host_ids: Sequence[int] = (),
                label_ids: Sequence[int] = (), team_ids: Sequence[int] = ()) -> Pack:
    pack = Pack(name=_check_name(session, name), description=description, platform=platform,
                disabled=disabled, spec={"queries": [], "targets": {"labels": [], "teams": []}})
    _set_targets(session, pack, host_ids, label_ids, team_ids)
    session.add(pack)
    session.flush()
    record_activity(session, user, "created_pack", {"pack_id": pack.id, "pack_name": pack.name})
    return pack


def modify_pack(session: OrmSession, user: User | None, pack: Pack, changes: dict[str, Any]) -> Pack:
    """Apply the fields sent (name, description, platform, disabled, host_ids, label_ids, team_ids)."""
    if changes.get("name") is not None:
        pack.name = _check_name(session, changes["name"], except_id=pack.id)
    for key in ("description", "platform", "disabled"):
        if changes.get(key) is not None:
            setattr(pack, key, changes[key])
    if any(changes.get(key) is not None for key in ("host_ids", "label_ids", "team_ids")):
        _set_targets(session, pack, changes.get("host_ids"), changes.get("label_ids"), changes.get("team_ids"))
    session.flush()
    record_activity(session, user, "edited_pack", {"pack_id": pack.id, "pack_name": pack.name})
    return pack


def delete_pack(session: OrmSession, user: User | None, pack: Pack) -> None:
    details = {"pack_id": pack.id, "pack_name": pack.name}
    session.delete(pack)
    session.flush()
    record_activity(session, user, "deleted_pack", details)


# --- agent config ---------------------------------------------------------------------------

def config_entry(item: Scheduled) -> dict[str, Any] | None:
    """The osquery schedule entry for one pack query, or None when it cannot run."""
    if item.query is None:
        return None
    entry: dict[str, Any] = {"query": item.query.query}
    entry.update({key: item.entry[key] for key in CONFIG_KEYS if item.entry.get(key) not in (None, "")})
    interval = entry.get("interval")
    if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
        return None
    return entry


def packs_for_host(session: OrmSession, host: Host) -> dict[str, dict[str, Any]]:
    """``{pack name: {"queries": {...}, "platform"?}}`` for the enabled packs targeting ``host``."""
    packs = list(session.scalars(select(Pack).where(Pack.disabled.is_(False)).order_by(Pack.id)))
    if not packs:
        return {}
    host_labels = set(session.scalars(select(LabelMembership.label_id).where(LabelMembership.host_id == host.id)))
    result: dict[str, dict[str, Any]] = {}
    for pack in packs:
        if not targets_host(targets_of(session, pack), host, host_labels):
            continue
        queries: dict[str, Any] = {}
        for item in scheduled_of(session, pack):
            entry = config_entry(item)
            if entry is not None and item.name:
                queries[item.name] = entry
        if queries:
            result[pack.name] = {"queries": queries, **({"platform": pack.platform} if pack.platform else {})}
    return result
