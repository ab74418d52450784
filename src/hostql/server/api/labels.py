"""REST API: labels (``/api/v1/fleet/labels...``)."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict

from hostql.server.api.deps import CurrentUser, DbSession, State
from hostql.server.api.hosts import Filters, visible
from hostql.server.errors import ValidationFailed
from hostql.server.services import hosts as host_service
from hostql.server.services import labels as label_service
from hostql.server.services.authz import READ, WRITE, require, require_any
from hostql.server.services.listing import ListOptions, list_options, now

router = APIRouter(prefix="/api/v1/fleet", tags=["labels"])

Paging = Annotated[ListOptions, Depends(list_options)]


class CreateLabelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    description: str = ""
    query: str = ""
    platform: str = ""
    label_membership_type: str | None = None
    hosts: list[str] | None = None  # hostnames (or UUIDs/serials) of a manual label
    host_ids: list[int] | None = None


class ModifyLabelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    description: str | None = None
    query: str | None = None  # immutable: accepted only when unchanged
    platform: str | None = None  # immutable: accepted only when unchanged
    hosts: list[str] | None = None
    host_ids: list[int] | None = None


def _host_ids(session: DbSession, hosts: list[str] | None, host_ids: list[int] | None) -> list[int] | None:
    if hosts is None and host_ids is None:
        return None
    ids = list(host_ids or [])
    ids += label_service.resolve_hosts(session, hosts or [])
    return ids


@router.post("/labels")
def create_label(session: DbSession, user: CurrentUser, body: CreateLabelBody) -> dict[str, Any]:
    require(user, WRITE)
    if body.label_membership_type not in (None, label_service.DYNAMIC, label_service.MANUAL):
        raise ValidationFailed("label_membership_type must be dynamic or manual", name="label_membership_type")
    manual = body.label_membership_type == label_service.MANUAL
    label = label_service.create_label(
        session, user, name=body.name, description=body.description, query=body.query, platform=body.platform,
        host_ids=_host_ids(session, body.hosts, body.host_ids), manual=manual)
    return {"label": label_service.one_label_json(session, label)}


@router.get("/labels")
def list_labels(session: DbSession, user: CurrentUser, paging: Paging, query: str = "") -> dict[str, Any]:
    require_any(user, READ)
    labels = label_service.list_labels(session, paging, query)
    return {"labels": label_service.labels_json(session, labels)}


@router.get("/labels/summary")
def labels_summary(session: DbSession, user: CurrentUser) -> dict[str, Any]:
    require_any(user, READ)
    return {"labels": label_service.summary(session)}


@router.get("/labels/{label_id}")
def get_label(session: DbSession, user: CurrentUser, label_id: int) -> dict[str, Any]:
    require_any(user, READ)
    return {"label": label_service.one_label_json(session, label_service.get_label(session, label_id))}


@router.patch("/labels/{label_id}")
def modify_label(session: DbSession, user: CurrentUser, label_id: int, body: ModifyLabelBody) -> dict[str, Any]:
    require(user, WRITE)
    label = label_service.get_label(session, label_id)
    if body.query is not None and body.query != label.query:
        raise ValidationFailed("a label's query cannot be changed", name="query")
    if body.platform is not None and body.platform != label.platform:
        raise ValidationFailed("a label's platform cannot be changed", name="platform")
    label_service.modify_label(session, user, label, name=body.name, description=body.description,
                               host_ids=_host_ids(session, body.hosts, body.host_ids))
    return {"label": label_service.one_label_json(session, label)}


@router.get("/labels/{label_id}/hosts")
def label_hosts(state: State, session: DbSession, user: CurrentUser, label_id: int, paging: Paging,
                filters: Filters) -> dict[str, Any]:
    label_service.get_label(session, label_id)
    filters = dataclasses.replace(visible(filters, user), label_id=label_id)
    at = now(state)
    hosts = host_service.list_hosts(session, filters, paging, at)
    return {"hosts": host_service.hosts_json(session, hosts, at)}


@router.delete("/labels/id/{label_id}")
def delete_label_by_id(session: DbSession, user: CurrentUser, label_id: int) -> dict[str, Any]:
    require(user, WRITE)
    label_service.delete_label(session, user, label_service.get_label(session, label_id))
    return {}


@router.delete("/labels/{name}")
def delete_label(session: DbSession, user: CurrentUser, name: str) -> dict[str, Any]:
    require(user, WRITE)
    label_service.delete_label(session, user, label_service.get_label_by_name(session, name))
    return {}
