"""State of the running agent or shell that the osquery_* tables report.

A :class:`Runtime` is handed to every generator through its query context.  The
shell makes a small one; the daemon fills in config, schedule and packs.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass, field

from hostql.agent.flags import FlagValues


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
    uuid: int
    name: str
    version: str
    sdk_version: str
    path: str
    type: str


@dataclass
class Runtime:
    """What the process knows about itself."""

    flags: FlagValues = field(default_factory=FlagValues)
    pid: int = field(default_factory=os.getpid)
    start_time: int = field(default_factory=lambda: int(time.time()))
    instance_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    config_hash: str = ""
    config_valid: bool = False
    watcher_pid: int = -1
    extensions_active: bool = False
    schedule: list[ScheduledQueryStats] = field(default_factory=list)
    packs: list[PackInfo] = field(default_factory=list)
    extensions: list[ExtensionInfo] = field(default_factory=list)
    # Registries (config, logger, ...) that the process has active, by name.
    plugins: dict[str, list[str]] = field(default_factory=dict)
