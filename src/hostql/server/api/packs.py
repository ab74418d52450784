"""REST API: legacy packs (``/api/v1/fleet/packs...``) and their scheduled queries (``/schedule...``).

Packs are global objects: global maintainers and admins change them, every
user reads them.  The same packs are served by ``/spec/packs`` (``api/specs.py``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from hostql.server.api.deps import CurrentUser, DbSession, RequestBody
from hostql.server.errors import ValidationFailed
from hostql.server.services import packs as pack_service
from hostql.server.services import queries as query_service
from hostql.server.services.authz import READ, WRITE, require, require_any
from hostql.server.services.listing import ListOptions, list_options

router = APIRouter(prefix="/api/v1/fleet", tags=["packs"])

Paging = Annotated[ListOptions, Depends(list_options)]


class CreatePackBody(RequestBody):
    name: str
    description: str = ""
    platform: str = ""
    disabled: bool = False
    host_ids: list[int] = []
    label_ids: list[int] = []
    team_ids: list[int] = []


class ModifyPackBody(RequestBody):
    name: str | None = None
    description: str | None = None
    platform: str | None = None
    disabled: bool | None = None
    host_ids: list[int] | None = None
    label_ids: list[int] | None = None
    team_ids: list[int] | None = None


class _ScheduledFields(RequestBody):
    name: str | None = None
    description: str | None = None
    snapshot: bool | None = None
    removed: bool | None = None
    platform: str | None = None
    version: str | None = None
    shard: int | None = None
    denylist: bool | None = None


class ScheduleQueryBody(_ScheduledFields):
    pack_id: int
    query_id: int
    interval: int


class ModifyScheduledBody(_ScheduledFields):
    pack_id: int | None = None  # accepted when unchanged (Fleet's clients send it back)
    query_id: int | None = None
    interval: int | None = None


@router.post("/packs")
def create_pack(session: DbSession, user: CurrentUser, body: CreatePackBody) -> dict[str, Any]:
    require(user, WRITE)
    pack = pack_service.create_pack(session, user, **body.model_dump())
    return {"pack": pack_service.pack_json(session, pack)}


@router.get("/packs")
def list_packs(session: DbSession, user: CurrentUser, paging: Paging, query: str = "") -> dict[str, Any]:
    require_any(user, READ)
    return {"packs": [pack_service.pack_json(session, p) for p in pack_service.list_packs(session, paging, query)]}


@router.get("/packs/{pack_id}")
def get_pack(session: DbSession, user: CurrentUser, pack_id: int) -> dict[str, Any]:
    require_any(user, READ)
    return {"pack": pack_service.pack_json(session, pack_service.get_pack(session, pack_id))}


@router.patch("/packs/{pack_id}")
def modify_pack(session: DbSession, user: CurrentUser, pack_id: int, body: ModifyPackBody) -> dict[str, Any]:
    require(user, WRITE)
    pack = pack_service.modify_pack(session, user, pack_service.get_pack(session, pack_id),
                                    body.model_dump(exclude_unset=True))
    return {"pack": pack_service.pack_json(session, pack)}


@router.delete("/packs/id/{pack_id}")
def delete_pack_by_id(session: DbSession, user: CurrentUser, pack_id: int) -> dict[str, Any]:
    require(user, WRITE)
    pack_service.delete_pack(session, user, pack_service.get_pack(session, pack_id))
    return {}


@router.delete("/packs/{name}")
def delete_pack(session: DbSession, user: CurrentUser, name: str) -> dict[str, Any]:
    require(user, WRITE)
    pack_service.delete_pack(session, user, pack_service.get_pack_by_name(session, name))
    return {}


@router.get("/packs/{pack_id}/scheduled")
def pack_scheduled(session: DbSession, user: CurrentUser, pack_id: int) -> dict[str, Any]:
    require_any(user, READ)
    pack = pack_service.get_pack(session, pack_id)
    return {"scheduled": [pack_service.scheduled_json(pack, s) for s in pack_service.scheduled_of(session, pack)]}


@router.post("/schedule")
def schedule_query(session: DbSession, user: CurrentUser, body: ScheduleQueryBody) -> dict[str, Any]:
    require(user, WRITE)
    pack = pack_service.get_pack(session, body.pack_id)
    query = query_service.get_query(session, user, body.query_id)
    fields = body.model_dump(exclude={"pack_id", "query_id"})
    item = pack_service.add_scheduled(session, user, pack, query, fields)
    return {"scheduled": pack_service.scheduled_json(pack, item)}


@router.get("/schedule/{scheduled_id}")
def get_scheduled(session: DbSession, user: CurrentUser, scheduled_id: int) -> dict[str, Any]:
    require_any(user, READ)
    pack, item = pack_service.find_scheduled(session, scheduled_id)
    return {"scheduled": pack_service.scheduled_json(pack, item)}


@router.patch("/schedule/{scheduled_id}")
def modify_scheduled(session: DbSession, user: CurrentUser, scheduled_id: int,
                     body: ModifyScheduledBody) -> dict[str, Any]:
    require(user, WRITE)
    pack, item = pack_service.find_scheduled(session, scheduled_id)
    if body.pack_id is not None and body.pack_id != pack.id:
        raise ValidationFailed("a scheduled query cannot move to another pack", name="pack_id")
    query = query_service.get_query(session, user, body.query_id) if body.query_id is not None else None
    changes = body.model_dump(exclude_unset=True, exclude={"pack_id", "query_id"})
    item = pack_service.modify_scheduled(session, user, pack, item.id, changes, query)
    return {"scheduled": pack_service.scheduled_json(pack, item)}


@router.delete("/schedule/{scheduled_id}")
def delete_scheduled(session: DbSession, user: CurrentUser, scheduled_id: int) -> dict[str, Any]:
    require(user, WRITE)
    pack, item = pack_service.find_scheduled(session, scheduled_id)
    pack_service.delete_scheduled(session, user, pack, item.id)
    return {}
