"""``--host_identifier``: what the agent calls itself in enrollment and log lines.

``hostname`` (default, looked up each time), ``uuid`` (the machine's firmware
UUID or machine-id, else a random one; remembered in the store), ``instance`` (a random UUID made once and kept
in the store), ``ephemeral`` (random for each process) and ``specified``
(``--specified_identifier``).  If the chosen source gives nothing, the
hostname is used, as osquery does.
"""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import Callable

from hostql.agent.flags import FlagValues
from hostql.agent.store import CONFIGURATIONS, Store
from hostql.tables.common.host_identity import firmware_uuid, machine_id_uuid

log = logging.getLogger(__name__)

# Keys in the ``configurations`` domain (osquery's persistent settings).
HOST_UUID_KEY = "host_uuid_v3"
INSTANCE_UUID_KEY = "instance_uuid_v1"

# One random identifier for the life of this process.
_EPHEMERAL = str(uuid.uuid4())

MODES = ("hostname", "uuid", "instance", "ephemeral", "specified")


def hostname() -> str:
    return socket.gethostname()


def hardware_uuid() -> str:
    """The host's own UUID (firmware, else machine-id; see host_identity), or ""."""
    return firmware_uuid() or machine_id_uuid()


class HostIdentity:
    """Resolves ``--host_identifier`` against the store."""

    def __init__(
        self,
        flags: FlagValues,
        store: Store | None = None,
        *,
        hostname_fn: Callable[[], str] = hostname,
        uuid_fn: Callable[[], str] = hardware_uuid,
    ) -> None:
        self.flags = flags
        self.store = store
        self._hostname = hostname_fn
        self._uuid = uuid_fn

    def host_uuid(self) -> str:
        """The machine UUID; made up once (and kept) when the hardware has none."""
        if self.store is not None:
            known = self.store.get(CONFIGURATIONS, HOST_UUID_KEY)
            if known:
                return known
        value = self._uuid() or str(uuid.uuid4()).upper()
        if self.store is not None:
            self.store.put(CONFIGURATIONS, HOST_UUID_KEY, value)
        return value

    def instance_uuid(self) -> str:
        if self.store is None:
            return ""
        known = self.store.get(CONFIGURATIONS, INSTANCE_UUID_KEY)
        if known:
            return known
        value = str(uuid.uuid4())
        self.store.put(CONFIGURATIONS, INSTANCE_UUID_KEY, value)
        return value

    def host_identifier(self) -> str:
        mode = str(self.flags.get("host_identifier"))
        value = ""
        if mode == "uuid":
            value = self.host_uuid()
        elif mode == "instance":
            value = self.instance_uuid()
        elif mode == "ephemeral":
            value = _EPHEMERAL
        elif mode == "specified":
            value = str(self.flags.get("specified_identifier"))
        elif mode != "hostname":
            log.warning("unknown --host_identifier %r; using the hostname", mode)
        if not value:
            value = self._hostname()
        return value
