"""Operating system versions across hosts: Fleet's ``/os_versions``.

A host's ``os_version`` is the display text its ``os_version`` detail query
gives (``"Ubuntu 22.04.3 LTS"``, ``"macOS 14.1.0"``, see
:func:`hostql.server.services.detail_queries.os_version_text`); with its
``platform`` it is one OS version.  ``name_only`` and ``version`` split the text
before its first word that starts with a digit.  OS versions have no table of
their own: an id is derived from the platform and the text (a CRC-32), so it is
the same in every process and across restarts.  No vulnerabilities are matched
(see :mod:`hostql.server.services.software`).
"""

from __future__ import annotations

import zlib
from typing import Any

from sqlalchemy import ColumnElement, false, func, select, true
from sqlalchemy.orm import Session as OrmSession

from hostql.server.errors import NotFound
from hostql.server.storage.models import Host


def os_version_id(platform: str, name: str) -> int:
    """The stable id of an OS version (a positive 31-bit number)."""
    return zlib.crc32(f"{platform}\0{name}".encode()) & 0x7FFFFFFF or 1


def split_name(name: str) -> tuple[str, str]:
    """``("Ubuntu", "22.04.3 LTS")`` for ``"Ubuntu 22.04.3 LTS"``; a name without a number has no version."""
    words = name.split(" ")
    for index, word in enumerate(words):
        if word[:1].isdigit():
            return " ".join(words[:index]), " ".join(words[index:])
    return name, ""


def _scope(team_id: int | None, visible_teams: frozenset[int] | None) -> ColumnElement[bool]:
    condition: ColumnElement[bool] = true()
    if team_id is not None:
        condition = Host.team_id.is_(None) if team_id == 0 else Host.team_id == team_id
    if visible_teams is not None:
        condition = condition & Host.team_id.in_(sorted(visible_teams))
    return condition


def list_os_versions(session: OrmSession, *, team_id: int | None = None, visible_teams: frozenset[int] | None = None,
                     platform: str | None = None, os_name: str | None = None,
                     os_version: str | None = None) -> list[dict[str, Any]]:
    """Every OS version on the hosts in scope with its ``hosts_count``, the most common first."""
    count = func.count().label("hosts_count")
    stmt = (select(Host.platform, Host.os_version, count).where(_scope(team_id, visible_teams), Host.os_version != "")
            .group_by(Host.platform, Host.os_version).order_by(count.desc(), Host.os_version))
    if platform:
        stmt = stmt.where(Host.platform == platform)
    found = [os_version_json(row.platform, row.os_version, int(row.hosts_count)) for row in session.execute(stmt)]
    if os_name is not None:
        found = [item for item in found if item["name_only"] == os_name]
    if os_version is not None:
        found = [item for item in found if item["version"] == os_version]
    return found


def get_os_version(session: OrmSession, version_id: int, *, team_id: int | None = None,
                   visible_teams: frozenset[int] | None = None) -> dict[str, Any]:
    for item in list_os_versions(session, team_id=team_id, visible_teams=visible_teams):
        if item["os_version_id"] == version_id:
            return item
    raise NotFound(f"OS version {version_id} not found", name="id")


def os_version_json(platform: str, name: str, hosts_count: int) -> dict[str, Any]:
    name_only, version = split_name(name)
    return {"os_version_id": os_version_id(platform, name), "hosts_count": hosts_count, "name": name,
            "name_only": name_only, "version": version, "platform": platform, "generated_cpes": [],
            "vulnerabilities": []}


def host_condition(session: OrmSession, version_id: int | None, os_name: str | None,
                   os_version: str | None) -> ColumnElement[bool] | None:
    """The hosts filter for ``os_version_id`` or ``os_name`` + ``os_version`` (None: no such filter)."""
    if version_id is not None:
        pairs = session.execute(select(Host.platform, Host.os_version).distinct()).all()
        match = [(platform, name) for platform, name in pairs if os_version_id(platform, name) == version_id]
        if not match:
            return false()  # no host has it
        platform, name = match[0]
        return (Host.platform == platform) & (Host.os_version == name)
    if os_name is not None and os_version is not None:
        return Host.os_version == f"{os_name} {os_version}".strip()
    return None
