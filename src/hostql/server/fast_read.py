"""Agents' requests answered before FastAPI's middleware and routing.

Every agent reads ``distributed/read`` every few seconds, sends ``log`` as often,
fetches ``config`` every minute and answers each live query with a
``distributed/write`` (under ``/api/osquery/`` and ``/api/v1/osquery/``).
:class:`ServerApp` (the FastAPI application the server builds) hands those
requests to a :class:`FastAgentEndpoint` before Starlette's middleware stack
runs (its error middleware, FastAPI's telemetry and body-limit wrappers cost
more than a cached host's request).  It reads the body within the path's limit
and:

* for reads and logs, first asks the path's :class:`QuickAnswer`, which answers
  from memory what needs no database: a read with nothing due
  (:func:`~hostql.server.services.agent_api.quick_read`), a small log of
  lines that only go to the log destinations
  (:func:`~hostql.server.services.agent_api.quick_log`).  The HTTP protocol
  (:mod:`hostql.server.protocol`) asks the same objects even before ASGI;
* otherwise calls the endpoint function of :mod:`hostql.server.osquery_api`
  with the body replayed, so everything else (an unknown or uncached node key,
  work due, gzip, a body that is not a JSON object) is answered exactly as by
  the routed path; a quick answer that raised falls back to it too.

A request over the limit or not a POST goes on to the full app unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from functools import partial
from typing import Any, NamedTuple, Protocol

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hostql.server import fastjson
from hostql.server.limits import BodyLimits
from hostql.server.services import agent_api

READ_PATHS = frozenset({"/api/osquery/distributed/read", "/api/v1/osquery/distributed/read"})
LOG_PATHS = frozenset({"/api/osquery/log", "/api/v1/osquery/log"})
CONFIG_PATHS = frozenset({"/api/osquery/config", "/api/v1/osquery/config"})
WRITE_PATHS = frozenset({"/api/osquery/distributed/write", "/api/v1/osquery/distributed/write"})
EMPTY_READ = b'{"queries":{},"discovery":{}}'
EMPTY_OBJECT = b"{}"
QUICK_LOG_BYTES = 64 * 1024  # larger log bodies are parsed in a worker thread, off the event loop
_JSON = (b"content-type", b"application/json")


class RequestHeaders(NamedTuple):
    """What both fast paths read in a request's raw ASGI headers (of a repeated header, the last)."""

    fits: bool  # no Content-Length over the body limit (or not a number)
    content_encoding: bytes | None  # None without a Content-Encoding header
    authorization: bytes  # b"" without an Authorization header


_PLAIN = RequestHeaders(True, None, b"")  # the usual request (osquery sends its node key in the body)


def request_headers(headers: Iterable[tuple[bytes, bytes]], limit: int) -> RequestHeaders:
    """One pass over ``headers``; values stay bytes (callers decode what they use), and the usual
    request gets the shared :data:`_PLAIN`, so nothing is allocated for it."""
    fits = True
    content_encoding: bytes | None = None
    authorization = b""
    for name, value in headers:
        if name == b"content-length":
            if not value.isdigit() or int(value) > limit:
                fits = False
        elif name == b"content-encoding":
            content_encoding = value
        elif name == b"authorization":
            authorization = value
    if fits and content_encoding is None and not authorization:
        return _PLAIN
    return RequestHeaders(fits, content_encoding, authorization)


class QuickAnswer(Protocol):
    """An agent request answered from memory, without ASGI, when it can be."""

    def may_answer(self, headers: list[tuple[bytes, bytes]]) -> bool:
        """False for a request left to the full path whatever its body (gzip, too big)."""
        ...

    def answer(self, headers: list[tuple[bytes, bytes]], body: bytes) -> bytes | None:
        """The JSON answer (status 200), or None for the full path."""
        ...


class _QuickAgentAnswer:
    """What both quick answers share: a plain body within ``limit``, parsed on the event loop, with
    a node key; :meth:`reply` gives the answer (any error: the full path answers and reports it)."""

    def __init__(self, owner: Any, limit: int) -> None:
        self.owner = owner  # the FastAPI app: its ``state.hostql`` is read per request (tests replace it)
        self.limit = limit

    def may_answer(self, headers: list[tuple[bytes, bytes]]) -> bool:
        found = request_headers(headers, self.limit)
        return found.fits and found.content_encoding is None

    def answer(self, headers: list[tuple[bytes, bytes]], body: bytes) -> bytes | None:
        if len(body) > self.limit:
            return None
        parsed = _json_object(body)
        node_key = _node_key(parsed, headers, self.limit) if parsed is not None else ""
        if not node_key or parsed is None:
            return None
        try:
            return self.reply(self.owner.state.hostql, node_key, parsed)
        except Exception:
            _log.debug("%s failed; taking the full path", type(self).__name__, exc_info=True)
            return None

    def reply(self, state: Any, node_key: str, parsed: dict[str, Any]) -> bytes | None:
        raise NotImplementedError


class QuickRead(_QuickAgentAnswer):
    """``distributed/read`` with nothing due, answered by :func:`agent_api.quick_read`."""

    def __init__(self, owner: Any, limits: BodyLimits | None = None) -> None:
        super().__init__(owner, (limits or BodyLimits()).osquery)

    def reply(self, state: Any, node_key: str, parsed: dict[str, Any]) -> bytes | None:
        """:data:`EMPTY_READ` itself when nothing is due."""
        answer, _ = agent_api.quick_read(state, node_key)
        if answer is None:
            return None
        if not answer["queries"] and len(answer) == 2:
            return EMPTY_READ
        return fastjson.dumps(answer)


class QuickLog(_QuickAgentAnswer):
    """A small ``log`` request of a cached host whose lines need no database (status lines,
    results of no saved query), handled by :func:`agent_api.quick_log` on the event loop.
    Larger bodies are parsed in a worker thread by the full path."""

    def __init__(self, owner: Any, limits: BodyLimits | None = None) -> None:
        super().__init__(owner, min((limits or BodyLimits()).osquery_log, QUICK_LOG_BYTES))

    def reply(self, state: Any, node_key: str, parsed: dict[str, Any]) -> bytes | None:
        return EMPTY_OBJECT if agent_api.quick_log(state, node_key, parsed) is not None else None


class FastAgentEndpoint:
    """An osquery API endpoint (``distributed/read``, ``log``, ``config``, ``distributed/write``)
    called before FastAPI's routing and middleware: first its :class:`QuickAnswer` when it has
    one, else the endpoint function itself on a request whose body was read within the limit,
    so its answers are the full path's.  Every agent reads every few seconds, sends logs
    as often, fetches its config every minute and answers every live query with a write;
    the routing, dependency and middleware layers cost more than the work of a cached
    host's request."""

    def __init__(self, app: ASGIApp, owner: Any, endpoint: Any, limit: int, quick: QuickAnswer | None = None) -> None:
        self.app = app
        self.owner = owner
        self.endpoint = endpoint
        self.limit = limit
        self.quick = quick

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        from starlette.requests import Request

        from hostql.server.errors import internal_error_response

        headers = scope["headers"]
        if scope["method"] != "POST" or not request_headers(headers, self.limit).fits:
            await self.app(scope, receive, send)  # the full path answers (405, 413)
            return
        quick = self.quick if self.quick is not None and self.quick.may_answer(headers) else None
        received = await read_body(receive, self.limit)
        if received is None:
            return  # the client went away
        body, message, complete = received
        replay = _replay(body, message, receive)
        if not complete:
            await self.app(scope, replay, send)
            return
        payload = quick.answer(headers, body) if quick is not None else None
        if payload is not None:
            await send({"type": "http.response.start", "status": 200,
                        "headers": [_JSON, (b"content-length", str(len(payload)).encode())]})
            await send({"type": "http.response.body", "body": payload})
            return
        try:
            response: Any = await self.endpoint(Request(dict(scope, app=self.owner), replay))
        except Exception:
            _log.exception("Unhandled error on POST %s", scope["path"])
            response = internal_error_response()
        await response(scope, receive, send)


async def read_body(receive: Receive, limit: int) -> tuple[bytes, Message, bool] | None:
    """The request body read up to ``limit`` bytes: (what was read, the last message, whether that is
    the whole body within the limit); None when the client went away."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        chunks.append(chunk)
        if size > limit or not message.get("more_body", False):
            break
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    return body, message, size <= limit and not message.get("more_body", False)


def _json_object(body: bytes) -> dict[str, Any] | None:
    """``body`` parsed when it is a JSON object, else None."""
    try:
        parsed = fastjson.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return None
    return parsed if isinstance(parsed, dict) else None


def _node_key(parsed: dict[str, Any], headers: Iterable[tuple[bytes, bytes]], limit: int) -> str:
    """The node key of a request (body ``node_key`` or ``Authorization: NodeKey``), "" when there is
    none.  The headers are only read when the body has no node key."""
    key = parsed.get("node_key")
    if isinstance(key, str) and key:
        return key
    scheme, _, value = request_headers(headers, limit).authorization.decode("latin-1").partition(" ")
    return value.strip() if scheme.lower() == "nodekey" else ""


def _replay(body: bytes, last: Message, receive: Receive) -> Receive:
    """``receive`` that first gives back what was read (with the last message's ``more_body``)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": bool(last.get("more_body", False))}
        return await receive()

    return replay


class ServerApp(FastAPI):
    """The server's FastAPI application: agents' requests take their fast paths first."""

    fast_endpoints: dict[str, FastAgentEndpoint] | None = None

    @property
    def quick_answers(self) -> dict[str, QuickAnswer]:
        """Path -> the quick answer of its fast endpoint (for the HTTP protocol's shortcut)."""
        return {path: endpoint.quick for path, endpoint in (self.fast_endpoints or {}).items()
                if endpoint.quick is not None}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.fast_endpoints is not None:
            endpoint = self.fast_endpoints.get(scope["path"])
            if endpoint is not None:
                await endpoint(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def install_fast_read(app: ServerApp, settings: Any = None) -> None:
    """Serve agents' reads, logs, config fetches and writes before every middleware of ``app``; the rest
    goes through the full app."""
    from hostql.server import osquery_api

    full_app = partial(FastAPI.__call__, app)
    limits = BodyLimits.from_settings(settings)
    quick_read, quick_log = QuickRead(app, limits), QuickLog(app, limits)
    app.fast_endpoints = {}
    for paths, endpoint, quick in ((READ_PATHS, osquery_api.distributed_read, quick_read),
                                   (LOG_PATHS, osquery_api.log, quick_log),
                                   (CONFIG_PATHS, osquery_api.config, None),
                                   (WRITE_PATHS, osquery_api.distributed_write, None)):
        for path in paths:
            app.fast_endpoints[path] = FastAgentEndpoint(full_app, app, endpoint, limits.for_path(path), quick)


_log = logging.getLogger(__name__)

__all__ = ["CONFIG_PATHS", "EMPTY_OBJECT", "EMPTY_READ", "LOG_PATHS", "READ_PATHS", "WRITE_PATHS",
           "FastAgentEndpoint", "QuickAnswer", "QuickLog", "QuickRead", "ServerApp", "install_fast_read"]
