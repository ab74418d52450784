"""Enrollment: trading the deployment secret for a node key, and keeping it.

The node key lives in the store (domain ``configurations``, keys ``nodeKey``
and ``nodeKeyTime``) so a restart reuses it.  Enrollment is lazy: the first
request that needs a key asks :meth:`Enrollment.node_key`, which enrolls if no
key is stored.  A ``node_invalid`` answer anywhere drops the key
(:meth:`Enrollment.invalidate`) so the next request enrolls again.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from hostql.agent.flags import FlagValues, host_platform
from hostql.agent.logformat import log_value
from hostql.agent.remote.identity import HostIdentity
from hostql.agent.remote.transport import (
    RemoteError,
    Sleep,
    TLSTransport,
    flag_bool,
    flag_int,
    flag_str,
)
from hostql.agent.store import CONFIGURATIONS, Store
from hostql.sql.connection import QueryError, QueryResult

log = logging.getLogger(__name__)

NODE_KEY = "nodeKey"
NODE_KEY_TIME = "nodeKeyTime"
HOST_DETAIL_TABLES = ("os_version", "osquery_info", "platform_info", "system_info")

# osquery's platform bits: POSIX 1, WINDOWS 2, BSD 4, LINUX 8, OSX 16, FREEBSD 32.
PLATFORM_TYPES = {"linux": 0x01 | 0x08, "darwin": 0x01 | 0x10, "windows": 0x02, "freebsd": 0x01 | 0x04 | 0x20}


class EnrollError(RemoteError):
    """No node key could be had."""


class QueryRunner(Protocol):
    """What enrollment and distributed queries need of a SQL connection."""

    def execute(self, sql: str) -> QueryResult: ...


def platform_type(platform: str | None = None) -> str:
    return str(PLATFORM_TYPES.get(host_platform(platform), 0x01))


def host_details(runner: QueryRunner | None) -> dict[str, dict[str, str]]:
    """First row of each host-detail table, columns sorted, values as strings."""
    details: dict[str, dict[str, str]] = {}
    if runner is None:
        return details
    for table in HOST_DETAIL_TABLES:
        try:
            result = runner.execute(f"SELECT * FROM {table}")
        except QueryError as exc:
            log.debug("enrollment host details: %s: %s", table, exc)
            continue
        if not result.rows:
            continue
        row = dict(zip(result.columns, result.rows[0]))
        details[table] = {key: str(log_value(row[key], False)) for key in sorted(row)}
    return details


class Enrollment:
    """Owns the node key: stored, enrolled for lazily, dropped when invalid."""

    def __init__(
        self,
        flags: FlagValues,
        store: Store,
        transport: TLSTransport,
        identity: HostIdentity,
        runner: QueryRunner | None = None,
        *,
        sleep: Sleep = time.sleep,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.flags = flags
        self.store = store
        self.transport = transport
        self.identity = identity
        self.runner = runner
        self._sleep = sleep
        self._environ = environ if environ is not None else os.environ
        self._lock = threading.RLock()
        # --enroll_always: the first key of this process comes from a fresh enrollment.
        self._fresh_needed = flag_bool(flags, "enroll_always") and not flag_bool(flags, "disable_enrollment")
        self.enroll_count = 0

    # the secret and the request

    def secret(self) -> str:
        path = flag_str(self.flags, "enroll_secret_path")
        if path:
            try:
                return Path(path).read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                log.warning("cannot read --enroll_secret_path %s: %s", path, exc)
                return ""
        env = flag_str(self.flags, "enroll_secret_env")
        return self._environ.get(env, "").strip() if env else ""

    def request_body(self) -> dict[str, Any]:
        return {
            "enroll_secret": self.secret(),
            "host_identifier": self.identity.host_identifier(),
            "platform_type": platform_type(),
            "host_details": host_details(self.runner),
        }

    # the key

    def stored_key(self) -> str:
        return self.store.get(CONFIGURATIONS, NODE_KEY) or ""

    def node_key(self) -> str:
        """The key to send: the stored one, or a new one from enrolling now.

        With ``--disable_enrollment`` and nothing stored this is "" (osquery
        then sends an empty ``node_key``).  Raises EnrollError when
        enrollment fails after all its attempts.
        """
        with self._lock:
            key = self.stored_key()
            if key and not self._fresh_needed:
                return key
            if flag_bool(self.flags, "disable_enrollment"):
                return key
            return self.enroll()

    def invalidate(self, key: str) -> None:
        """The server refused ``key``: forget it unless --disable_reenrollment.

        Only the key that was refused is dropped, so several threads that
        saw the same refusal cause one re-enrollment, not one each.
        """
        if flag_bool(self.flags, "disable_reenrollment"):
            log.warning("the TLS server refused the node key; keeping it (--disable_reenrollment)")
            return
        with self._lock:
            if self.stored_key() == key:
                log.warning("the TLS server refused the node key; enrolling again")
                self.store.delete(CONFIGURATIONS, NODE_KEY)
                self.store.delete(CONFIGURATIONS, NODE_KEY_TIME)

    def enroll(self) -> str:
        """Ask the server for a node key, retrying with waits 1, 4, 9, ... seconds."""
        path = flag_str(self.flags, "enroll_tls_endpoint")
        if not path:
            raise EnrollError("cannot enroll: --enroll_tls_endpoint is empty")
        attempts = flag_int(self.flags, "tls_enroll_max_attempts")
        max_interval = flag_int(self.flags, "tls_enroll_max_interval")
        attempt = 0
        while True:
            attempt += 1
            try:
                key = self._request_key(path)
            except RemoteError as exc:
                if attempts and attempt >= attempts:
                    raise EnrollError(f"enrollment failed after {attempt} attempts: {exc}") from None
                wait = min(attempt * attempt, max_interval) if max_interval > 0 else attempt * attempt
                log.warning("enrollment request to %s failed (%s); retrying in %d s", path, exc, wait)
                self._sleep(wait)
                continue
            with self.store.transaction():
                self.store.put(CONFIGURATIONS, NODE_KEY, key)
                self.store.put(CONFIGURATIONS, NODE_KEY_TIME, str(int(time.time())))
            self._fresh_needed = False
            self.enroll_count += 1
            log.info("enrolled with the TLS server")
            return key

    def _request_key(self, path: str) -> str:
        body = self.transport.post(path, self.request_body()).body
        key = body.get("node_key") or body.get("id")
        if not isinstance(key, str) or not key:
            raise RemoteError("the enrollment response has no node_key")
        return key
