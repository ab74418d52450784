"""REST API: ``POST /api/v1/fleet/translate`` (names to ids)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from hostql.server.api.deps import CurrentUser, DbSession
from hostql.server.services import translate as translate_service
from hostql.server.services.authz import READ, require_any

router = APIRouter(prefix="/api/v1/fleet", tags=["translate"])


class Payload(BaseModel):
    model_config = ConfigDict(extra="ignore")  # an answer's payload (with its id) may be sent back
    identifier: str


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: str
    payload: Payload


class TranslateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    list: list[Item]


@router.post("/translate")
def translate(session: DbSession, user: CurrentUser, body: TranslateBody) -> dict[str, Any]:
    require_any(user, READ)
    items = [(item.type, item.payload.identifier) for item in body.list]
    return {"list": translate_service.translate(session, user, items)}
