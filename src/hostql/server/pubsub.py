"""Live-query result fan-out: one interface, an in-process and a Redis backend.

A campaign's results are published on channel ``results_<campaign_id>`` by
whichever server instance receives the agent's distributed write, and read by
the instance holding the user's WebSocket or waiting request.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Protocol


class PubSub(Protocol):
    async def publish(self, channel: str, message: dict[str, Any]) -> int:
        """Send ``message``; returns how many subscribers received it."""
        ...

    def subscribe(self, channel: str) -> AsyncIterator[dict[str, Any]]:
        """Messages on ``channel`` from now on, until the iterator is closed."""
        ...

    async def close(self) -> None: ...


class MemoryPubSub:
    """Fan-out inside one server process."""

    def __init__(self) -> None:
        self._queues: dict[str, set[asyncio.Queue[dict[str, Any]]]] = {}

    async def publish(self, channel: str, message: dict[str, Any]) -> int:
        queues = self._queues.get(channel, set())
        for queue in queues:
            queue.put_nowait(message)
        return len(queues)

    async def subscribe(self, channel: str) -> AsyncIterator[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._queues.setdefault(channel, set()).add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            subscribers = self._queues.get(channel)
            if subscribers is not None:
                subscribers.discard(queue)
                if not subscribers:
                    del self._queues[channel]

    def subscribers(self, channel: str) -> int:
        return len(self._queues.get(channel, ()))

    async def close(self) -> None:
        self._queues.clear()
