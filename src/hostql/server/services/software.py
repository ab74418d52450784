"""Software inventory across hosts: Fleet's ``/software`` (versions) and ``/software/titles`` endpoints.

Hosts report their packages through the software detail queries
(:mod:`hostql.server.services.detail_queries`); each distinct
(name, version, source, arch) is one :class:`Software` row, linked to the hosts
that have it.  A version is listed while at least one host the user may see has
it; ``hosts_count`` counts those hosts (in ``team_id`` when given).

A **title** is a piece of software whatever its version: one (name, source),
listed with its versions.  Titles have no table of their own: a title's id is
the smallest id of its versions, which stays the same while that version row
exists (software rows are never deleted, only unlinked from hosts).

Vulnerabilities are not matched: that needs the NVD/OVAL feeds Fleet downloads,
and a server that cannot fetch them must not make them up.  ``generated_cpe`` is
therefore empty and ``vulnerabilities`` null, and ``vulnerable=true`` lists
nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, exists, false, func, or_, select, true
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import aliased

from hostql.server.errors import NotFound
from hostql.server.services.listing import ListOptions, apply_list_options, iso
from hostql.server.storage.models import Host, HostSoftware, Software

ORDER_KEYS = {"name": Software.name, "version": Software.version, "source": Software.source, "id": Software.id}


def _host_scope(team_id: int | None, visible_teams: frozenset[int] | None) -> ColumnElement[bool]:
    condition: ColumnElement[bool] = true()
    if team_id is not None:
        condition = Host.team_id == team_id
    if visible_teams is not None:
        condition = condition & Host.team_id.in_(visible_teams) if visible_teams else false()
    return condition


def _versions(team_id: int | None, visible_teams: frozenset[int] | None, query: str | None,
              vulnerable: bool) -> Select[Software, int]:
    hosts_count = func.count(func.distinct(HostSoftware.host_id)).label("hosts_count")
    stmt: Select[Software, int] = (select(Software, hosts_count)
            .join(HostSoftware, HostSoftware.software_id == Software.id)
            .join(Host, Host.id == HostSoftware.host_id)
            .where(_host_scope(team_id, visible_teams))
            .group_by(Software.id))
    if query:
        pattern = f"%{query.lower()}%"
        stmt = stmt.where(or_(func.lower(Software.name).like(pattern), func.lower(Software.version).like(pattern)))
    if vulnerable:  # no vulnerability data (see the module docs): nothing is known to be vulnerable
        stmt = stmt.where(false())
    return stmt


def software_json(software: Software, hosts_count: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"id": software.id, "name": software.name, "version": software.version,
                            "source": software.source, "arch": software.arch, "vendor": software.vendor,
                            "generated_cpe": "", "vulnerabilities": None}
    if hosts_count is not None:
        body["hosts_count"] = hosts_count
    return body


def list_versions(session: OrmSession, options: ListOptions, *, team_id: int | None = None,
                  visible_teams: frozenset[int] | None = None, query: str | None = None,
                  vulnerable: bool = False) -> list[dict[str, Any]]:
    stmt = _versions(team_id, visible_teams, query, vulnerable)
    columns = {**ORDER_KEYS, "hosts_count": func.count(func.distinct(HostSoftware.host_id))}
    stmt = apply_list_options(stmt, options, columns, Software.id)
    return [software_json(software, int(count)) for software, count in session.execute(stmt)]


def count_versions(session: OrmSession, *, team_id: int | None = None, visible_teams: frozenset[int] | None = None,
                   query: str | None = None, vulnerable: bool = False) -> int:
    inner = _versions(team_id, visible_teams, query, vulnerable).with_only_columns(Software.id).subquery()
    return int(session.scalar(select(func.count()).select_from(inner)) or 0)


def get_version(session: OrmSession, software_id: int, *, team_id: int | None = None,
                visible_teams: frozenset[int] | None = None) -> dict[str, Any]:
    """One version with its host count; NotFound when no host the caller may see has it."""
    row = session.execute(_versions(team_id, visible_teams, None, False).where(Software.id == software_id)).first()
    if row is None:
        raise NotFound(f"software {software_id} not found", name="id")
    return software_json(row[0], int(row[1]))


TITLE_ORDER_KEYS = ("name", "source", "hosts_count", "versions_count", "id")


def _title_ids() -> Any:
    """(name, source, title_id) of every title, over all versions (so an id does not depend on scope)."""
    return (select(Software.name, Software.source, func.min(Software.id).label("title_id"))
            .group_by(Software.name, Software.source).subquery())


def title_version_ids(title_id: int) -> Select[int]:
    """The ids of the versions of the title whose id is ``title_id`` (none when it is no title's id)."""
    title, older = aliased(Software), aliased(Software)
    return (select(Software.id)
            .join(title, (title.name == Software.name) & (title.source == Software.source))
            .where(title.id == title_id,
                   ~exists().where(older.name == title.name, older.source == title.source, older.id < title.id)))


def _titles(team_id: int | None, visible_teams: frozenset[int] | None, query: str | None,
            vulnerable: bool, title_id: int | None = None) -> Any:
    ids = _title_ids()
    hosts_count = func.count(func.distinct(HostSoftware.host_id)).label("hosts_count")
    versions_count = func.count(func.distinct(Software.id)).label("versions_count")
    stmt = (select(ids.c.title_id, Software.name, Software.source, hosts_count, versions_count)
            .join(HostSoftware, HostSoftware.software_id == Software.id)
            .join(Host, Host.id == HostSoftware.host_id)
            .join(ids, (ids.c.name == Software.name) & (ids.c.source == Software.source))
            .where(_host_scope(team_id, visible_teams))
            .group_by(ids.c.title_id, Software.name, Software.source))
    if query:
        stmt = stmt.where(func.lower(Software.name).like(f"%{query.lower()}%"))
    if vulnerable:  # see the module docs
        stmt = stmt.where(false())
    if title_id is not None:
        stmt = stmt.where(ids.c.title_id == title_id)
    return stmt


def _with_versions(session: OrmSession, titles: list[Any], team_id: int | None,
                   visible_teams: frozenset[int] | None, *, version_hosts: bool = False) -> list[dict[str, Any]]:
    """Fleet's title objects for ``titles`` rows, each with its versions the caller may see."""
    if not titles:
        return []
    by_title: dict[tuple[str, str], list[dict[str, Any]]] = {(t.name, t.source): [] for t in titles}
    stmt = _versions(team_id, visible_teams, None, False).where(
        Software.name.in_(sorted({t.name for t in titles}))).order_by(Software.version, Software.id)
    for software, count in session.execute(stmt):
        versions = by_title.get((software.name, software.source))
        if versions is not None:
            version: dict[str, Any] = {"id": software.id, "version": software.version, "vulnerabilities": None}
            if version_hosts:
                version["hosts_count"] = int(count)
            versions.append(version)
    return [{"id": int(t.title_id), "name": t.name, "source": t.source, "browser": "",
             "hosts_count": int(t.hosts_count), "versions_count": int(t.versions_count),
             "versions": by_title[(t.name, t.source)]} for t in titles]


def list_titles(session: OrmSession, options: ListOptions, *, team_id: int | None = None,
                visible_teams: frozenset[int] | None = None, query: str | None = None,
                vulnerable: bool = False) -> tuple[list[dict[str, Any]], int]:
    """A page of titles installed on hosts the caller may see, and how many there are in all."""
    stmt = _titles(team_id, visible_teams, query, vulnerable)
    inner = stmt.subquery()
    total = int(session.scalar(select(func.count()).select_from(inner)) or 0)
    columns = {key: inner.c[key if key != "id" else "title_id"] for key in TITLE_ORDER_KEYS}
    page = list(session.execute(apply_list_options(select(inner), options, columns, inner.c.title_id)))
    return _with_versions(session, page, team_id, visible_teams), total


def get_title(session: OrmSession, title_id: int, *, team_id: int | None = None,
              visible_teams: frozenset[int] | None = None) -> dict[str, Any]:
    """One title with every version (and each one's host count); NotFound unless ``title_id`` is a
    title's id and a host the caller may see has it."""
    found = list(session.execute(_titles(team_id, visible_teams, None, False, title_id)))
    if not found:
        raise NotFound(f"software title {title_id} not found", name="id")
    return _with_versions(session, found, team_id, visible_teams, version_hosts=True)[0]


def counts_updated_at(now: datetime) -> str | None:
    # Host counts are computed when asked, so they are as fresh as the request.
    return iso(now)
