"""The bridge between live-query campaigns and agent check-ins.

The osquery API asks which campaign queries a host must run
(:func:`pending_for_host`) and hands back each answer (:func:`record_result`);
the live-query service owns the campaign state behind these two functions.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session as OrmSession

from hostql.server.state import ServerState
from hostql.server.storage.models import Host

CAMPAIGN_PREFIX = "fleet_distributed_query_"


def pending_for_host(state: ServerState, session: OrmSession, host: Host) -> dict[str, str]:
    """``{"fleet_distributed_query_<campaign id>": sql}`` for every live query ``host`` must run."""
    return {}


async def record_result(state: ServerState, host: Host, campaign_id: int, rows: list[dict[str, Any]],
                        error: str | None) -> None:
    """Publish one host's answer to a campaign and mark the host done for it."""
    return None
