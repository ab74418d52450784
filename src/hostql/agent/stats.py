"""Records the daemon keeps about its schedule, packs and extensions.

They live apart from :mod:`hostql.runtime` so the shell, which never has a
schedule, does not pay for importing dataclasses at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ScheduledQueryStats:
    """Counters of one scheduled query, as ``osquery_schedule`` shows them."""

    name: str
    query: str
    interval: int
    executions: int = 0
    last_executed: int = 0
    denylisted: bool = False
    output_size: int = 0
    wall_time: int = 0
    wall_time_ms: int = 0
    last_wall_time_ms: int = 0
    user_time: int = 0
    last_user_time: int = 0
    system_time: int = 0
    last_system_time: int = 0
    average_memory: int = 0
    last_memory: int = 0


@dataclass
class PackInfo:
    """A pack as ``osquery_packs`` shows it."""

    name: str
    platform: str = ""
    version: str = ""
    shard: int = 0
    discovery_cache_hits: int = 0
    discovery_executions: int = 0
    active: bool = True


@dataclass
class ExtensionInfo:
    """An attached extension as ``osquery_extensions`` shows it."""

    uuid: int
    name: str
    version: str
    sdk_version: str
    path: str
    type: str
