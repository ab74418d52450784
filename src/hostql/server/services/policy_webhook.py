"""Delivery of the failing-policy webhook (``webhook_settings.failing_policies_webhook``).

A :class:`WebhookDispatcher` posts JSON payloads with httpx on a small thread
pool, so an agent's check-in never waits for a slow receiver.  There is one
per server process, kept in ``state.extras`` (see :func:`dispatcher`); tests
call :meth:`WebhookDispatcher.wait` to let deliveries finish.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass
from typing import Any

import httpx

from hostql.server.state import ServerState

log = logging.getLogger(__name__)

DISPATCHER_KEY = "failing_policies_webhook"
TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class WebhookDelivery:
    """One POST: a policy and a batch of hosts that newly fail it."""

    url: str
    payload: dict[str, Any]


class WebhookDispatcher:
    def __init__(self, *, workers: int = 2, timeout: float = TIMEOUT_SECONDS) -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="policy-webhook")
        self._timeout = timeout
        self._pending: set[Future[int]] = set()
        self._lock = threading.Lock()

    def submit(self, delivery: WebhookDelivery) -> Future[int]:
        future = self._executor.submit(self._post, delivery)
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._forget)
        return future

    def _forget(self, future: Future[int]) -> None:
        with self._lock:
            self._pending.discard(future)

    def _post(self, delivery: WebhookDelivery) -> int:
        try:
            response = httpx.post(delivery.url, json=delivery.payload, timeout=self._timeout)
        except httpx.HTTPError as exc:
            log.warning("failing-policy webhook to %s failed: %s", delivery.url, exc)
            return 0
        if response.status_code >= 300:
            log.warning("failing-policy webhook to %s answered %s", delivery.url, response.status_code)
        return response.status_code

    def wait(self, timeout: float | None = None) -> None:
        """Block until every delivery submitted so far has finished (or ``timeout``)."""
        with self._lock:
            pending = set(self._pending)
        if pending:
            wait_futures(pending, timeout=timeout)

    def close(self) -> None:
        self._executor.shutdown(wait=True)


def dispatcher(state: ServerState) -> WebhookDispatcher:
    """The process-wide dispatcher (created on first use)."""
    current = state.extras.get(DISPATCHER_KEY)
    if not isinstance(current, WebhookDispatcher):
        current = WebhookDispatcher()
        state.extras[DISPATCHER_KEY] = current
    return current
