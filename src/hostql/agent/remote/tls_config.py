"""The ``tls`` config plugin: the config is whatever the server's config endpoint returns.

``POST --config_tls_endpoint`` with ``{"node_key": ...}``; the response body is
the config JSON (a ``node_invalid`` inside it means enroll again, which the
:class:`RemoteClient` does before its next attempt).  With
``--config_enable_backup`` every good config is kept in the store and used
when the very first fetch of the process fails.  :class:`RefreshPolicy` tells
the daemon when to fetch again (``--config_refresh``, switching to
``--config_accelerated_refresh`` after a failure).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from hostql.agent.config_sources import ConfigError, PackText, RawSource
from hostql.agent.flags import FlagValues
from hostql.agent.remote.client import RemoteClient
from hostql.agent.remote.transport import RemoteError, flag_bool, flag_int, flag_str
from hostql.agent.store import CONFIGURATIONS, Store

log = logging.getLogger(__name__)

SOURCE_KEY = "tls_plugin"  # osquery's name for the one source this plugin returns
BACKUP_KEY = f"config_persistence.{SOURCE_KEY}"


class RefreshPolicy:
    """When the next config fetch is due.

    ``--config_refresh=0`` means the config is read once.  Otherwise the
    interval is ``--config_refresh`` while fetches succeed and
    ``--config_accelerated_refresh`` after one fails, until one succeeds.
    """

    def __init__(self, refresh: int, accelerated: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.refresh = refresh
        self.accelerated = accelerated
        self._clock = clock
        self.interval = refresh
        self.last_fetch: float | None = None
        self.last_ok: bool | None = None

    @classmethod
    def from_flags(cls, flags: FlagValues, *, clock: Callable[[], float] = time.monotonic) -> RefreshPolicy:
        return cls(flag_int(flags, "config_refresh"), flag_int(flags, "config_accelerated_refresh"), clock=clock)

    def record(self, ok: bool) -> None:
        """Note the outcome of a fetch that just ended."""
        self.last_fetch = self._clock()
        self.last_ok = ok
        if ok:
            self.interval = self.refresh
        elif self.refresh > 0 and self.accelerated > 0:
            self.interval = self.accelerated

    def seconds_until_next(self) -> float | None:
        """Seconds to wait before fetching again; None when no refresh is wanted."""
        if self.refresh <= 0:
            return None
        if self.last_fetch is None:
            return 0.0
        return max(0.0, self.last_fetch + self.interval - self._clock())


class TLSConfigSource:
    """A ConfigSource (see config_sources.py) backed by the TLS config endpoint."""

    name = "tls"

    def __init__(
        self,
        flags: FlagValues,
        client: RemoteClient,
        store: Store,
        *,
        policy: RefreshPolicy | None = None,
    ) -> None:
        self.flags = flags
        self.client = client
        self.store = store
        self.policy = policy if policy is not None else RefreshPolicy.from_flags(flags)
        self._lock = threading.Lock()
        self._first = True
        self.used_backup = False

    def load(self) -> str:
        """The config text from the server (or, on a failed first fetch, the backup)."""
        with self._lock:
            first, self._first = self._first, False
            path = flag_str(self.flags, "config_tls_endpoint")
            attempts = flag_int(self.flags, "config_tls_max_attempts")
            try:
                text = self.client.call(path, lambda key: {"node_key": key}, attempts).text
            except RemoteError as exc:
                self.policy.record(False)
                backup = self.store.get(CONFIGURATIONS, BACKUP_KEY) if self._backup_enabled() else None
                if first and backup is not None:
                    log.warning("TLS config fetch failed (%s); using the backup config", exc)
                    self.used_backup = True
                    return backup
                where = path or "(no --config_tls_endpoint)"
                raise ConfigError(f"TLS config fetch from {where} failed: {exc}") from None
            self.policy.record(True)
            self.used_backup = False
            if not text.strip():
                text = "{}"
            if self._backup_enabled():
                self.store.put(CONFIGURATIONS, BACKUP_KEY, text)
            return text

    def fetch(self) -> list[RawSource]:
        return [RawSource(SOURCE_KEY, self.load())]

    def resolve_pack(self, name: str, value: str, origin: str) -> list[PackText]:
        # osquery's TLS plugin serves whole configs only; a pack given as a
        # string (a path on the server's side) cannot be fetched.
        raise ConfigError(f"packs.{name}: the tls config plugin cannot load pack {value!r}; inline it in the config")

    def _backup_enabled(self) -> bool:
        return flag_bool(self.flags, "config_enable_backup")
