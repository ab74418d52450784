"""File carving: agents upload files in blocks; users list carves and fetch the blocks.

osquery (``--disable_carver=false``) carves the files a ``carves`` query names
(``SELECT * FROM carves WHERE carve = 1 AND path = '...'``, usually a live query)
and uploads them as a tar archive in blocks (osquery-reference §1.6, Fleet's
§2.6):

* ``/carve/begin`` (node key) announces ``block_count`` blocks of ``block_size``
  bytes, ``carve_size`` in all, and gets a ``session_id``;
* ``/carve/block`` (the session id is the credential: no node key) sends block
  ``block_id`` base64-encoded, in order from 0.

Blocks are kept in the database (as Fleet keeps them in MySQL) for
:data:`CARVE_EXPIRY` after the carve began; then the carve is marked expired
and its data deleted.  A carve is named ``<hostname>-<UTC time>-<request_id>``
like Fleet's.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session as OrmSession

from hostql.server.errors import BadRequest, NotFound
from hostql.server.services.listing import ListOptions, apply_list_options, iso
from hostql.server.storage.models import Carve, CarveBlock, Host

CARVE_EXPIRY = timedelta(hours=24)  # Fleet keeps carves in MySQL for a day
MAX_BLOCK_SIZE = 8 * 1024 * 1024  # base64 of a block must fit the agent body limit (16 MiB)
MAX_CARVE_SIZE = 4 * 1024 * 1024 * 1024  # the database holds the data: bound what one carve may add
ORDER_KEYS = {"id": Carve.id, "name": Carve.name, "created_at": Carve.created_at, "host_id": Carve.host_id}


class CarveRefused(ValueError):
    """An agent's carve request that cannot be taken (answered ``{"error": ...}``)."""


def _int_field(body: dict[str, Any], name: str, low: int, high: int) -> int:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise CarveRefused(f"{name} must be a whole number from {low} to {high}")
    return value


def _text_field(body: dict[str, Any], name: str, required: bool = True) -> str:
    value = body.get(name, "" if not required else None)
    if not isinstance(value, str) or (required and not value):
        raise CarveRefused(f"{name} must be a non-empty string" if required else f"{name} must be a string")
    return value


def begin(session: OrmSession, host: Host, body: dict[str, Any], now: datetime) -> Carve:
    """Start a carve for ``host`` from a ``/carve/begin`` body."""
    block_size = _int_field(body, "block_size", 1, MAX_BLOCK_SIZE)
    block_count = _int_field(body, "block_count", 1, MAX_CARVE_SIZE // block_size)
    carve_size = _int_field(body, "carve_size", 0, block_count * block_size)
    carve_guid = _text_field(body, "carve_id")[:64]
    request_id = _text_field(body, "request_id", required=False)[:200]
    expire(session, now)
    carve = Carve(host_id=host.id, name=f"{host.hostname}-{now.strftime('%Y-%m-%dT%H:%M:%SZ')}-{request_id}"[:255],
                  created_at=now, block_count=block_count, block_size=block_size, carve_size=carve_size,
                  carve_id=carve_guid, request_id=request_id, session_id=secrets.token_urlsafe(32))
    session.add(carve)
    session.flush()
    return carve


def add_block(session: OrmSession, body: dict[str, Any]) -> None:
    """Store one ``/carve/block``; blocks must come in order, each at most ``block_size`` bytes."""
    session_id = _text_field(body, "session_id")
    carve = session.scalars(select(Carve).where(Carve.session_id == session_id).with_for_update()).first()
    if carve is None:
        raise CarveRefused("unknown carve session")
    if carve.expired:
        raise CarveRefused("the carve has expired")
    block_id = _int_field(body, "block_id", 0, carve.block_count - 1)
    if block_id != carve.max_block + 1:
        raise CarveRefused(f"block {block_id} out of order: expected block {carve.max_block + 1}")
    encoded = _text_field(body, "data", required=False)
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise CarveRefused("data is not base64") from None
    if len(data) > carve.block_size:
        raise CarveRefused(f"block {block_id} has {len(data)} bytes, more than the block size {carve.block_size}")
    session.add(CarveBlock(carve_id=carve.id, block_id=block_id, data=data))
    carve.max_block = block_id
    session.flush()


def expire(session: OrmSession, now: datetime) -> None:
    """Mark carves older than :data:`CARVE_EXPIRY` expired and delete their data."""
    cutoff = now - CARVE_EXPIRY
    old = select(Carve.id).where(Carve.created_at < cutoff, Carve.expired.is_(False))
    ids = list(session.scalars(old))
    if ids:
        session.execute(delete(CarveBlock).where(CarveBlock.carve_id.in_(ids)))
        session.execute(update(Carve).where(Carve.id.in_(ids)).values(expired=True))


def carve_json(carve: Carve) -> dict[str, Any]:
    """Fleet's carve object."""
    return {"id": carve.id, "host_id": carve.host_id, "name": carve.name, "created_at": iso(carve.created_at),
            "block_count": carve.block_count, "block_size": carve.block_size, "carve_size": carve.carve_size,
            "carve_id": carve.carve_id, "request_id": carve.request_id, "session_id": carve.session_id,
            "expired": carve.expired, "max_block": carve.max_block, "error": None}


def list_carves(session: OrmSession, options: ListOptions, *, expired: bool,
                visible_teams: frozenset[int] | None, now: datetime) -> list[Carve]:
    """Carves of hosts the caller may see (team users: their teams' hosts'), newest first by default."""
    expire(session, now)
    stmt = select(Carve)
    if not expired:
        stmt = stmt.where(Carve.expired.is_(False))
    if visible_teams is not None:
        stmt = stmt.join(Host, Host.id == Carve.host_id).where(Host.team_id.in_(sorted(visible_teams)))
    if not options.order_key and not options.order_direction:
        options = ListOptions(page=options.page, per_page=options.per_page, order_direction="desc")
    return list(session.scalars(apply_list_options(stmt, options, ORDER_KEYS, Carve.id)))


def get_carve(session: OrmSession, carve_id: int, now: datetime) -> Carve:
    expire(session, now)
    carve = session.get(Carve, carve_id)
    if carve is None:
        raise NotFound(f"carve {carve_id} not found", name="id")
    return carve


def carve_team(session: OrmSession, carve: Carve) -> int | None:
    """The team of the carve's host (None: no team, or the host was deleted)."""
    host = session.get(Host, carve.host_id) if carve.host_id is not None else None
    return host.team_id if host is not None else None


def get_block(session: OrmSession, carve: Carve, block_id: int) -> str:
    """Block ``block_id`` of ``carve``, base64-encoded."""
    if carve.expired:
        raise BadRequest(f"carve {carve.id} has expired: its data was deleted", name="id")
    block = session.get(CarveBlock, (carve.id, block_id))
    if block is None:
        raise NotFound(f"block {block_id} of carve {carve.id} not found", name="block_id")
    return base64.b64encode(block.data).decode("ascii")
