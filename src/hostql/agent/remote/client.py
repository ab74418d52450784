"""Authenticated requests: node key, retries and re-enrollment in one place.

Config, logger and distributed plugins call :meth:`RemoteClient.call` with a
function that builds the body from the node key (each endpoint puts
``node_key`` at its own place in the body).  A failed attempt ``i`` is
followed by a wait of ``i*i`` seconds, as osquery does; a ``node_invalid``
answer drops the key, so the next attempt enrolls again with the same body
rebuilt around the new key.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from hostql.agent.flags import FlagValues
from hostql.agent.remote.enroll import EnrollError, Enrollment, QueryRunner
from hostql.agent.remote.identity import HostIdentity
from hostql.agent.remote.transport import NodeInvalidError, RemoteError, Response, Sleep, TLSTransport
from hostql.agent.store import Store

log = logging.getLogger(__name__)

BodyBuilder = Callable[[str], dict[str, Any]]


class RemoteClient:
    """The agent's side of the TLS API, shared by every TLS plugin."""

    def __init__(self, transport: TLSTransport, enrollment: Enrollment, *, sleep: Sleep = time.sleep) -> None:
        self.transport = transport
        self.enrollment = enrollment
        self._sleep = sleep

    @classmethod
    def from_flags(
        cls,
        flags: FlagValues,
        store: Store,
        runner: QueryRunner | None = None,
        *,
        identity: HostIdentity | None = None,
        sleep: Sleep = time.sleep,
    ) -> RemoteClient:
        transport = TLSTransport.from_flags(flags)
        ident = identity if identity is not None else HostIdentity(flags, store)
        enrollment = Enrollment(flags, store, transport, ident, runner, sleep=sleep)
        return cls(transport, enrollment, sleep=sleep)

    def call(self, path: str, build: BodyBuilder, attempts: int = 1, *, compress: bool = False) -> Response:
        """POST ``build(node_key)`` to ``path``, up to ``attempts`` times.

        Raises RemoteError (NodeInvalidError when the last answer was
        ``node_invalid``) if no attempt succeeds.
        """
        if not path:
            raise RemoteError("no endpoint path configured")
        attempts = max(attempts, 1)
        error: RemoteError = RemoteError("no attempt made")
        for attempt in range(1, attempts + 1):
            key = ""
            try:
                key = self.enrollment.node_key()
                return self.transport.post(path, build(key), node_key=key, compress=compress)
            except EnrollError:
                raise  # enrollment already made its own attempts
            except NodeInvalidError as exc:
                error = exc
                self.enrollment.invalidate(key)
            except RemoteError as exc:
                error = exc
            if attempt < attempts:
                log.warning("TLS request to %s failed (%s); retrying in %d s", path, error, attempt * attempt)
                self._sleep(attempt * attempt)
        raise error

    def close(self) -> None:
        self.transport.close()
