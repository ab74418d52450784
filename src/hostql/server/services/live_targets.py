"""The bridge between live-query campaigns and agent check-ins.

The osquery API asks which campaign queries a host must run
(:func:`pending_for_host`) and hands back each answer (:func:`record_result`).
Targets live in the pub/sub backend's target store, so an agent may check in
at any server instance sharing the same Redis; answers are published on
``results_<campaign_id>`` for the instance holding the listener.

A result nobody listens to is kept pending (the host's bit stays set, so it is
asked again) while the campaign is younger than :data:`ORPHAN_AFTER`; after
that the campaign is orphaned: completed and removed, as Fleet does.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session as OrmSession

from hostql.server.pubsub import results_channel
from hostql.server.services import campaigns
from hostql.server.services.listing import now
from hostql.server.state import ServerState
from hostql.server.storage.models import Campaign, Host

CAMPAIGN_PREFIX = "fleet_distributed_query_"
ORPHAN_AFTER = timedelta(minutes=1)

log = logging.getLogger(__name__)


def pending_for_host(state: ServerState, session: OrmSession, host: Host) -> dict[str, str]:
    """``{"fleet_distributed_query_<campaign id>": sql}`` for every live query ``host`` must run."""
    try:
        pending = campaigns.target_store(state).pending(host.id)
    except Exception:  # other distributed queries must still go out (Fleet only logs this)
        log.exception("reading live-query targets for host %s failed", host.id)
        return {}
    return {f"{CAMPAIGN_PREFIX}{campaign_id}": sql for campaign_id, sql in sorted(pending.items())}


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
    receivers = await state.pubsub.publish(results_channel(campaign_id),
                                           result_message(host, campaign_id, rows, error))
    if receivers > 0:
        store.clear(campaign_id, host.id)
        return
    with state.database.session() as session:
        campaign = session.get(Campaign, campaign_id)
        created = campaign.created_at if campaign is not None else None
    if created is None or now(state) - created > ORPHAN_AFTER:
        log.info("live query campaign %s has no listener; completing it", campaign_id)
        campaigns.stop(state, campaign_id)
