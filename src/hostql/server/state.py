"""What every request handler can reach: settings, database, pub/sub, caches."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hostql.server.pubsub import MemoryPubSub, PubSub
from hostql.server.storage.db import Database


@dataclass
class ServerState:
    """One per server process; stored on ``app.state.hostql``."""

    database: Database
    settings: Any = None  # hostql.server.settings.Settings
    pubsub: PubSub = field(default_factory=MemoryPubSub)
    # Services keep process-wide helpers here (node-key cache, seen-time batcher, ...).
    extras: dict[str, Any] = field(default_factory=dict)
