"""REST API: software inventory (``/api/v1/fleet/software``, ``/software/versions``, ``/software/titles``,
``/software/count``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from hostql.server.api.deps import CurrentUser, DbSession, State
from hostql.server.errors import Forbidden
from hostql.server.services import os_versions as os_version_service
from hostql.server.services import software as software_service
from hostql.server.services.authz import READ, can_see_team, require_any, visible_team_ids
from hostql.server.services.listing import ListOptions, list_options, now
from hostql.server.storage.models import User

router = APIRouter(prefix="/api/v1/fleet", tags=["software"])

Paging = Annotated[ListOptions, Depends(list_options)]


def _scope(user: User, team_id: int | None) -> frozenset[int] | None:
    """The teams whose hosts count for ``user`` (None: all); a team they cannot see is refused."""
    require_any(user, READ)
    if team_id is not None and not can_see_team(user, team_id):
        raise Forbidden(f"no access to team {team_id}")
    return visible_team_ids(user)


def _listing(session: DbSession, user: User, paging: ListOptions, team_id: int | None, query: str | None,
             vulnerable: bool) -> tuple[list[dict[str, Any]], int]:
    visible = _scope(user, team_id)
    software = software_service.list_versions(session, paging, team_id=team_id, visible_teams=visible,
                                              query=query, vulnerable=vulnerable)
    total = software_service.count_versions(session, team_id=team_id, visible_teams=visible, query=query,
                                            vulnerable=vulnerable)
    return software, total


def _meta(paging: ListOptions, shown: int, total: int) -> dict[str, bool]:
    """Fleet's paging ``meta`` for a page of ``shown`` items out of ``total``."""
    seen = (paging.page or 0) * (paging.per_page or 0) + shown
    return {"has_next_results": paging.per_page is not None and seen < total,
            "has_previous_results": bool(paging.page)}


@router.get("/software")
def list_software(session: DbSession, state: State, user: CurrentUser, paging: Paging, team_id: int | None = None,
                  query: str | None = None, vulnerable: bool = False) -> dict[str, Any]:
    """Every software version on the hosts the caller may see (Fleet's legacy endpoint)."""
    software, _ = _listing(session, user, paging, team_id, query, vulnerable)
    return {"counts_updated_at": software_service.counts_updated_at(now(state)), "software": software}


@router.get("/software/versions")
def list_software_versions(session: DbSession, state: State, user: CurrentUser, paging: Paging,
                           team_id: int | None = None, query: str | None = None,
                           vulnerable: bool = False) -> dict[str, Any]:
    software, total = _listing(session, user, paging, team_id, query, vulnerable)
    return {"count": total, "counts_updated_at": software_service.counts_updated_at(now(state)),
            "software": software, "meta": _meta(paging, len(software), total)}


@router.get("/software/count")
def count_software(session: DbSession, user: CurrentUser, team_id: int | None = None, query: str | None = None,
                   vulnerable: bool = False) -> dict[str, Any]:
    visible = _scope(user, team_id)
    return {"count": software_service.count_versions(session, team_id=team_id, visible_teams=visible, query=query,
                                                     vulnerable=vulnerable)}


@router.get("/software/titles")
def list_software_titles(session: DbSession, state: State, user: CurrentUser, paging: Paging,
                         team_id: int | None = None, query: str | None = None,
                         vulnerable: bool = False) -> dict[str, Any]:
    """Software by title (name and source) with its versions, on the hosts the caller may see."""
    visible = _scope(user, team_id)
    titles, total = software_service.list_titles(session, paging, team_id=team_id, visible_teams=visible,
                                                 query=query, vulnerable=vulnerable)
    return {"count": total, "counts_updated_at": software_service.counts_updated_at(now(state)),
            "software_titles": titles, "meta": _meta(paging, len(titles), total)}


@router.get("/software/titles/{title_id}")
def get_software_title(session: DbSession, user: CurrentUser, title_id: int,
                       team_id: int | None = None) -> dict[str, Any]:
    visible = _scope(user, team_id)
    return {"software_title": software_service.get_title(session, title_id, team_id=team_id,
                                                          visible_teams=visible)}


@router.get("/os_versions")
def list_os_versions(session: DbSession, state: State, user: CurrentUser, team_id: int | None = None,
                     platform: str | None = None, os_name: str | None = None,
                     os_version: str | None = None) -> dict[str, Any]:
    """The OS versions of the hosts the caller may see, with how many hosts run each."""
    visible = _scope(user, team_id)
    found = os_version_service.list_os_versions(session, team_id=team_id, visible_teams=visible,
                                                platform=platform or None, os_name=os_name, os_version=os_version)
    return {"count": len(found), "counts_updated_at": software_service.counts_updated_at(now(state)),
            "os_versions": found, "meta": {"has_next_results": False, "has_previous_results": False}}


@router.get("/os_versions/{os_version_id}")
def get_os_version(session: DbSession, state: State, user: CurrentUser, os_version_id: int,
                   team_id: int | None = None) -> dict[str, Any]:
    visible = _scope(user, team_id)
    return {"counts_updated_at": software_service.counts_updated_at(now(state)),
            "os_version": os_version_service.get_os_version(session, os_version_id, team_id=team_id,
                                                            visible_teams=visible)}


@router.get("/software/versions/{software_id}")
def get_software_version(session: DbSession, user: CurrentUser, software_id: int,
                         team_id: int | None = None) -> dict[str, Any]:
    visible = _scope(user, team_id)
    return {"software": software_service.get_version(session, software_id, team_id=team_id,
                                                      visible_teams=visible)}


@router.get("/software/{software_id}")
def get_software(session: DbSession, user: CurrentUser, software_id: int, team_id: int | None = None) -> dict[str, Any]:
    """The legacy path of ``/software/versions/{id}``."""
    return get_software_version(session, user, software_id, team_id)
