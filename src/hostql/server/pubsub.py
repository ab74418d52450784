"""Live-query fan-out: one interface, an in-process and a Redis backend.

Two things are shared between server instances while a live query runs:

* **targets** (:class:`TargetStore`): which hosts must still run which campaign's
  SQL.  The osquery API asks it on every ``distributed/read``.  The Redis
  backend keeps Fleet's layout: per campaign a bitfield indexed by host id
  (``livequery:{<id>}``) and the SQL (``sql:livequery:{<id>}``), both with a
  7-day TTL, plus the set ``livequery:active`` of running campaign ids.  Few
  live queries and many hosts make one ``GETBIT`` per active campaign cheap.
* **results** (:class:`PubSub`): a host's answer is published on channel
  ``results_<campaign_id>`` by whichever instance receives the agent's
  ``distributed/write`` and read by the instance holding the user's WebSocket
  or waiting REST request.  An answer that arrives before anyone listens (the
  UI opens its WebSocket only after creating the campaign) is **retained**
  (:meth:`PubSub.retain`) and handed to the channel's next subscriber, so the
  user does not wait a whole distributed interval for the host to be asked again.

* **host changes** (:meth:`PubSub.announce_host_changes` and
  :meth:`PubSub.watch_host_changes`): each instance caches hosts by node key;
  a host deleted, re-enrolled or edited through one instance is announced on
  the channel ``hostql:hosts:changed`` so the others drop it at once, and an
  agent whose host was deleted gets ``node_invalid`` from every instance.

Target methods are synchronous (the osquery API calls them from sync code, and
one Redis round trip on loopback is cheaper than a thread hop); publish and
subscribe are asynchronous.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any, Protocol

RESULTS_CHANNEL = "results_{}"
HOSTS_CHANNEL = "hostql:hosts:changed"
WATCH_POLL_SECONDS = 1.0  # how often the host-change watcher checks whether it should stop
WATCH_RETRY_SECONDS = 1.0
RETAINED_KEY = "livequery:retained:{{{}}}"  # Redis list of results published before anyone listened
RETAIN_SECONDS = 300
RETAIN_MAX = 100_000  # messages kept per channel at most
REDRAIN_SECONDS = 1.0  # a Redis subscriber re-reads the retained list this often (answers racing its subscribe)
ACTIVE_KEY = "livequery:active"
TARGETS_KEY = "livequery:{{{}}}"  # braces: Redis Cluster hash tag, SQL and bits share a slot
SQL_KEY = "sql:livequery:{{{}}}"
CAMPAIGN_TTL_SECONDS = 7 * 24 * 3600


_log = logging.getLogger(__name__)


def _nothing_to_stop() -> None:
    pass


def results_channel(campaign_id: int) -> str:
    return RESULTS_CHANNEL.format(campaign_id)


class TargetStore(Protocol):
    """Which hosts still have to run which live query."""

    def add(self, campaign_id: int, sql: str, host_ids: Iterable[int]) -> None:
        """Start ``campaign_id``: every host in ``host_ids`` must run ``sql``."""
        ...

    def pending(self, host_id: int) -> dict[int, str]:
        """``{campaign_id: sql}`` for every running campaign ``host_id`` has not answered."""
        ...

    def is_pending(self, campaign_id: int, host_id: int) -> bool: ...

    def clear(self, campaign_id: int, host_id: int) -> None:
        """``host_id`` answered ``campaign_id``."""
        ...

    def remove(self, campaign_id: int) -> None:
        """Stop ``campaign_id`` everywhere."""
        ...

    def active(self) -> set[int]: ...


class Subscription(Protocol):
    """A registered listener on one channel (registered before ``subscribe`` returns)."""

    async def get(self, timeout: float) -> dict[str, Any] | None:
        """The next message, or ``None`` after ``timeout`` seconds without one."""
        ...

    async def close(self) -> None: ...


class PubSub(Protocol):
    targets: TargetStore

    async def publish(self, channel: str, message: dict[str, Any]) -> int:
        """Send ``message``; returns how many subscribers received it."""
        ...

    async def subscribe(self, channel: str) -> Subscription:
        """Listen on ``channel``; messages published after this returns are delivered, and retained ones first."""
        ...

    async def retain(self, channel: str, message: dict[str, Any]) -> None:
        """Keep ``message`` (published when nobody listened) for the channel's next subscriber."""
        ...

    def drop_retained(self, channel: str) -> None:
        """Forget what was retained for ``channel`` (its campaign ended)."""
        ...

    def announce_host_changes(self, host_ids: set[int] | None) -> None:
        """Tell the other server instances that these hosts changed (``None``: any host may have)."""
        ...

    def watch_host_changes(self, forget: Callable[[set[int] | None], None]) -> Callable[[], None]:
        """Call ``forget`` with the changes other instances announce; returns a function that stops watching."""
        ...

    async def close(self) -> None: ...


# --------------------------------------------------------------------------- memory


class MemoryTargetStore:
    """Targets inside one process (thread-safe: sync handlers run in a thread pool)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sql: dict[int, str] = {}
        self._hosts: dict[int, set[int]] = {}

    def add(self, campaign_id: int, sql: str, host_ids: Iterable[int]) -> None:
        with self._lock:
            self._sql[campaign_id] = sql
            self._hosts[campaign_id] = set(host_ids)

    def pending(self, host_id: int) -> dict[int, str]:
        with self._lock:
            return {cid: self._sql[cid] for cid, hosts in self._hosts.items() if host_id in hosts}

    def is_pending(self, campaign_id: int, host_id: int) -> bool:
        with self._lock:
            return host_id in self._hosts.get(campaign_id, ())

    def clear(self, campaign_id: int, host_id: int) -> None:
        with self._lock:
            self._hosts.get(campaign_id, set()).discard(host_id)

    def remove(self, campaign_id: int) -> None:
        with self._lock:
            self._sql.pop(campaign_id, None)
            self._hosts.pop(campaign_id, None)

    def active(self) -> set[int]:
        with self._lock:
            return set(self._sql)


class _MemorySubscription:
    def __init__(self, owner: MemoryPubSub, channel: str) -> None:
        self._owner = owner
        self.channel = channel
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def get(self, timeout: float) -> dict[str, Any] | None:
        try:
            return await asyncio.wait_for(self.queue.get(), timeout=max(timeout, 0.0))
        except TimeoutError:
            return None

    async def close(self) -> None:
        self._owner._unregister(self)


class MemoryPubSub:
    """Fan-out inside one server process."""

    def __init__(self) -> None:
        self.targets: TargetStore = MemoryTargetStore()
        self._lock = threading.Lock()
        self._subs: dict[str, set[_MemorySubscription]] = {}
        self._retained: dict[str, tuple[float, list[dict[str, Any]]]] = {}

    @staticmethod
    def _deliver(subs: Iterable[_MemorySubscription], message: dict[str, Any]) -> None:
        here = asyncio.get_running_loop()
        for sub in subs:
            if sub.loop is here:
                sub.queue.put_nowait(message)
            else:  # a listener on another event loop (another thread)
                sub.loop.call_soon_threadsafe(sub.queue.put_nowait, message)

    async def publish(self, channel: str, message: dict[str, Any]) -> int:
        with self._lock:
            subs = list(self._subs.get(channel, ()))
        self._deliver(subs, message)
        return len(subs)

    async def retain(self, channel: str, message: dict[str, Any]) -> None:
        moment = time.monotonic()
        with self._lock:
            subs = list(self._subs.get(channel, ()))
            if not subs:  # still nobody: keep it (a subscriber arriving meanwhile is served below)
                for name in [n for n, (at, _) in self._retained.items() if moment - at > RETAIN_SECONDS]:
                    del self._retained[name]
                _, kept = self._retained.setdefault(channel, (moment, []))
                if len(kept) < RETAIN_MAX:
                    kept.append(message)
                return
        self._deliver(subs, message)

    def drop_retained(self, channel: str) -> None:
        with self._lock:
            self._retained.pop(channel, None)

    def announce_host_changes(self, host_ids: set[int] | None) -> None:
        pass  # one process: its caches were told directly

    def watch_host_changes(self, forget: Callable[[set[int] | None], None]) -> Callable[[], None]:
        return _nothing_to_stop

    async def subscribe(self, channel: str) -> Subscription:
        sub = _MemorySubscription(self, channel)
        with self._lock:
            self._subs.setdefault(channel, set()).add(sub)
            _, retained = self._retained.pop(channel, (0.0, []))
        for message in retained:
            sub.queue.put_nowait(message)
        return sub

    def _unregister(self, sub: _MemorySubscription) -> None:
        with self._lock:
            subs = self._subs.get(sub.channel)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[sub.channel]

    def subscribers(self, channel: str) -> int:
        with self._lock:
            return len(self._subs.get(channel, ()))

    async def close(self) -> None:
        with self._lock:
            self._subs.clear()


# --------------------------------------------------------------------------- redis


class RedisTargetStore:
    """Fleet's Redis layout for live-query targets, shared by every server instance."""

    def __init__(self, client: Any, *, active_cache_seconds: float = 1.0) -> None:
        self._redis = client  # redis.Redis (sync)
        self._cache_seconds = active_cache_seconds
        self._cache: tuple[float, list[int]] | None = None
        self._lock = threading.Lock()

    def add(self, campaign_id: int, sql: str, host_ids: Iterable[int]) -> None:
        key = TARGETS_KEY.format(campaign_id)
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(key)
        for host_id in host_ids:
            pipe.setbit(key, host_id, 1)
        pipe.set(SQL_KEY.format(campaign_id), sql, ex=CAMPAIGN_TTL_SECONDS)
        pipe.expire(key, CAMPAIGN_TTL_SECONDS)
        pipe.sadd(ACTIVE_KEY, campaign_id)
        pipe.execute()
        self._forget_cache()

    def _active_ids(self) -> list[int]:
        now = time.monotonic()
        with self._lock:
            if self._cache is not None and now - self._cache[0] < self._cache_seconds:
                return self._cache[1]
        ids = sorted(int(member) for member in self._redis.smembers(ACTIVE_KEY))
        with self._lock:
            self._cache = (now, ids)
        return ids

    def _forget_cache(self) -> None:
        with self._lock:
            self._cache = None

    def pending(self, host_id: int) -> dict[int, str]:
        ids = self._active_ids()
        if not ids:
            return {}
        pipe = self._redis.pipeline(transaction=False)
        for cid in ids:
            pipe.getbit(TARGETS_KEY.format(cid), host_id)
        wanted = [cid for cid, bit in zip(ids, pipe.execute()) if bit]
        if not wanted:
            return {}
        sqls = self._redis.mget([SQL_KEY.format(cid) for cid in wanted])
        return {cid: _text(sql) for cid, sql in zip(wanted, sqls) if sql is not None}

    def is_pending(self, campaign_id: int, host_id: int) -> bool:
        return bool(self._redis.getbit(TARGETS_KEY.format(campaign_id), host_id))

    def clear(self, campaign_id: int, host_id: int) -> None:
        key = TARGETS_KEY.format(campaign_id)
        # Only clear an existing bitfield: SETBIT on a stopped campaign would recreate it without a TTL.
        if self._redis.exists(key):
            self._redis.setbit(key, host_id, 0)

    def remove(self, campaign_id: int) -> None:
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(TARGETS_KEY.format(campaign_id), SQL_KEY.format(campaign_id))
        pipe.srem(ACTIVE_KEY, campaign_id)
        pipe.execute()
        self._forget_cache()

    def active(self) -> set[int]:
        return {int(member) for member in self._redis.smembers(ACTIVE_KEY)}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def _take_retained(client: Any, channel: str) -> list[dict[str, Any]]:
    """Read and delete the retained results of ``channel`` in one transaction."""
    pipe = client.pipeline(transaction=True)
    pipe.lrange(RETAINED_KEY.format(channel), 0, -1)
    pipe.delete(RETAINED_KEY.format(channel))
    raw, _ = await pipe.execute()
    return [json.loads(item) for item in raw or []]


class _RedisSubscription:
    def __init__(self, pubsub: Any, client: Any, channel: str, retained: list[dict[str, Any]]) -> None:
        self._pubsub = pubsub  # redis.asyncio.client.PubSub
        self._client = client
        self._channel = channel
        self._backlog = list(retained)
        self._drained_at = time.monotonic()

    async def get(self, timeout: float) -> dict[str, Any] | None:
        if time.monotonic() - self._drained_at >= REDRAIN_SECONDS:
            # An answer whose publish found no subscriber just before we subscribed is retained after it.
            self._drained_at = time.monotonic()
            self._backlog.extend(await _take_retained(self._client, self._channel))
        if self._backlog:
            return self._backlog.pop(0)
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            remaining = deadline - time.monotonic()
            message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=max(remaining, 0.0))
            if message is not None and message.get("type") == "message":
                decoded: dict[str, Any] = json.loads(message["data"])
                return decoded
            if remaining <= 0:
                return None

    async def close(self) -> None:
        try:
            await self._pubsub.unsubscribe()
        finally:
            await self._pubsub.aclose()


class RedisPubSub:
    """Fan-out between server instances through one Redis server."""

    def __init__(self, url: str, *, active_cache_seconds: float = 1.0) -> None:
        import redis

        self.url = url
        self._sync = redis.Redis.from_url(url)
        self._origin = uuid.uuid4().hex  # this instance: it does not need its own announcements back
        self.targets: TargetStore = RedisTargetStore(self._sync, active_cache_seconds=active_cache_seconds)
        # redis.asyncio clients are bound to the event loop that first uses them.
        self._clients: dict[asyncio.AbstractEventLoop, Any] = {}
        self._lock = threading.Lock()

    def _client(self) -> Any:
        import redis.asyncio

        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._clients.get(loop)
            if client is None:
                client = redis.asyncio.Redis.from_url(self.url)
                self._clients[loop] = client
            return client

    async def publish(self, channel: str, message: dict[str, Any]) -> int:
        receivers: int = await self._client().publish(channel, json.dumps(message, default=str))
        return receivers

    async def subscribe(self, channel: str) -> Subscription:
        client = self._client()
        pubsub = client.pubsub()
        await pubsub.subscribe(channel)
        # Wait for Redis to confirm, so nothing published after we return is missed.
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            message = await pubsub.get_message(timeout=0.5)
            if message is not None and message.get("type") == "subscribe":
                break
        else:
            await pubsub.aclose()
            raise ConnectionError(f"redis did not confirm the subscription to {channel}")
        return _RedisSubscription(pubsub, client, channel, await _take_retained(client, channel))

    async def retain(self, channel: str, message: dict[str, Any]) -> None:
        key = RETAINED_KEY.format(channel)
        pipe = self._client().pipeline(transaction=True)
        pipe.rpush(key, json.dumps(message, default=str))
        pipe.ltrim(key, 0, RETAIN_MAX - 1)
        pipe.expire(key, RETAIN_SECONDS)
        await pipe.execute()

    def drop_retained(self, channel: str) -> None:
        self._sync.delete(RETAINED_KEY.format(channel))

    def announce_host_changes(self, host_ids: set[int] | None) -> None:
        message = {"origin": self._origin, "host_ids": None if host_ids is None else sorted(host_ids)}
        self._sync.publish(HOSTS_CHANNEL, json.dumps(message))

    def watch_host_changes(self, forget: Callable[[set[int] | None], None]) -> Callable[[], None]:
        stop = threading.Event()
        thread = threading.Thread(target=self._watch_hosts, args=(forget, stop), name="hostql-host-changes",
                                  daemon=True)
        thread.start()

        def stop_watching() -> None:
            stop.set()
            thread.join(timeout=WATCH_POLL_SECONDS + 2)

        return stop_watching

    def _watch_hosts(self, forget: Callable[[set[int] | None], None], stop: threading.Event) -> None:
        import redis

        while not stop.is_set():
            listener = self._sync.pubsub()  # type: ignore[no-untyped-call]
            try:
                listener.subscribe(HOSTS_CHANNEL)
                while not stop.is_set():
                    message = listener.get_message(timeout=WATCH_POLL_SECONDS)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        forget(None)  # whatever was announced while we were not subscribed is lost
                    elif message["type"] == "message":
                        change = json.loads(message["data"])
                        if change.get("origin") != self._origin:
                            ids = change.get("host_ids")
                            forget(None if ids is None else {int(i) for i in ids})
            except (redis.RedisError, OSError, ValueError) as exc:
                _log.warning("watching host changes in redis: %s; retrying in %g s", exc, WATCH_RETRY_SECONDS)
                stop.wait(WATCH_RETRY_SECONDS)
            finally:
                listener.close()

    def ping(self) -> bool:
        return bool(self._sync.ping())

    async def close(self) -> None:
        """Close the clients; call from the server's event loop."""
        here = asyncio.get_running_loop()
        with self._lock:
            clients, self._clients = self._clients, {}
        for loop, client in clients.items():
            if loop is here:
                await client.aclose()
            elif not loop.is_closed():
                asyncio.run_coroutine_threadsafe(client.aclose(), loop)
        self._sync.close()


def create_pubsub(redis_url: str | None = None) -> PubSub:
    """The in-process backend, or Redis when the server has a Redis URL (several instances)."""
    if redis_url:
        return RedisPubSub(redis_url)
    return MemoryPubSub()
