"""State of the running agent or shell that the osquery_* tables report.

A :class:`Runtime` is handed to every generator through its query context.  The
shell makes a small one; the daemon fills in config, schedule and packs.
"""

from __future__ import annotations

import os
import time

from hostql.agent.flags import FlagValues

TYPE_CHECKING = False
if TYPE_CHECKING:
    from hostql.agent.stats import ExtensionInfo, PackInfo, ScheduledQueryStats


def random_uuid() -> str:
    """A version-4 UUID string, without importing :mod:`uuid` (which pulls in
    :mod:`platform` and costs the shell several milliseconds)."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class Runtime:
    """What the process knows about itself."""

    def __init__(self, flags: FlagValues | None = None) -> None:
        self.flags = flags if flags is not None else FlagValues()
        self.pid = os.getpid()
        self.start_time = int(time.time())
        self.instance_id = random_uuid()
        # Host UUID when the platform has none of its own (the agent persists it).
        self.host_uuid = ""
        self.config_hash = ""
        self.config_valid = False
        self.watcher_pid = -1
        self.extensions_active = False
        self.schedule: list[ScheduledQueryStats] = []
        self.packs: list[PackInfo] = []
        self.extensions: list[ExtensionInfo] = []
        # Registries (config, logger, ...) that the process has active, by name.
        self.plugins: dict[str, list[str]] = {}
