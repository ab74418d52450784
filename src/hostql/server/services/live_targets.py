"""The bridge between live-query campaigns and agent check-ins.

The osquery API asks which campaign queries a host must run
(:func:`pending_for_host`) and hands back each answer (:func:`record_result`).
Targets live in the pub/sub backend's target store, so an agent may check in
at any server instance sharing the same Redis; answers are published on
``results_<campaign_id>`` for the instance holding the listener.

A result nobody listens to is retained for the channel's next subscriber
(usually the WebSocket the UI opens right after creating the campaign) and kept
pending too (the host's bit stays set, so it is asked again should the retained
copy go astray) while the campaign is younger than :data:`ORPHAN_AFTER`; after
that the campaign is orphaned: completed and removed, as Fleet does.  No
database call here runs on the event loop.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session as OrmSession
from starlette.concurrency import run_in_threadpool

from hostql.server.pubsub import results_channel
from hostql.server.services import campaigns
from hostql.server.services.listing import now
from hostql.server.state import ServerState
from hostql.server.storage.models import Campaign, Host

CAMPAIGN_PREFIX = "fleet_distributed_query_"
ORPHAN_AFTER = timedelta(minutes=1)
RETAINED = "_retained"  # marks a retained result: its reader clears the host's target bit

log = logging.getLogger(__name__)


def pending_for_host(state: ServerState, session: OrmSession | None, host: Host) -> dict[str, str]:
    """``{"fleet_distributed_query_<campaign id>": sql}`` for every live query ``host`` must run."""
    try:
        pending = campaigns.target_store(state).pending(host.id)
    except Exception:  # other distributed queries must still go out (Fleet only logs this)
        log.exception("reading live-query targets for host %s failed", host.id)
        return {}
    return {f"{CAMPAIGN_PREFIX}{campaign_id}": sql for campaign_id, sql in sorted(pending.items())}


def take_result(state: ServerState, campaign_id: int, message: dict[str, Any]) -> dict[str, Any]:
    """A result as received by a subscriber; a retained one marks its host done for the campaign."""
    if message.pop(RETAINED, False):
        host_id = (message.get("host") or {}).get("id")
        if isinstance(host_id, int):
            campaigns.target_store(state).clear(campaign_id, host_id)
    return message


def campaign_id_of(query_name: str) -> int | None:
    """The campaign id in ``fleet_distributed_query_<id>``, or ``None`` for other names."""
    if not query_name.startswith(CAMPAIGN_PREFIX):
        return None
    suffix = query_name[len(CAMPAIGN_PREFIX):]
    return int(suffix) if suffix.isdigit() else None


def result_message(host: Host, campaign_id: int, rows: list[dict[str, Any]], error: str | None) -> dict[str, Any]:
    return {
        "distributed_query_execution_id": campaign_id,
        "host": {"id": host.id, "hostname": host.hostname,
                 "display_name": host.display_name or host.computer_name or host.hostname},
        "rows": rows,
        "error": error or None,
    }


async def record_result(state: ServerState, host: Host, campaign_id: int, rows: list[dict[str, Any]],
                        error: str | None) -> None:
    """Publish one host's answer to a campaign and mark the host done for it."""
    store = campaigns.target_store(state)
    if not store.is_pending(campaign_id, host.id):
        return  # campaign stopped, or the host already answered
    channel = results_channel(campaign_id)
    message = result_message(host, campaign_id, rows, error)
    receivers = await state.pubsub.publish(channel, message)
    if receivers > 0:
        store.clear(campaign_id, host.id)
        return
    created = await run_in_threadpool(_created_at, state, campaign_id)
    if created is None or now(state) - created > ORPHAN_AFTER:
        log.info("live query campaign %s has no listener; completing it", campaign_id)
        await run_in_threadpool(campaigns.stop, state, campaign_id)
        return
    await state.pubsub.retain(channel, dict(message, **{RETAINED: True}))


def _created_at(state: ServerState, campaign_id: int) -> Any:
    with state.database.session() as session:
        campaign = session.get(Campaign, campaign_id)
        return campaign.created_at if campaign is not None else None
