"""``distributed/read`` answered straight from ASGI, before FastAPI's middleware and routing.

Agents poll ``/api/osquery/distributed/read`` (and ``/api/v1/osquery/...``) every
few seconds and nearly every answer is "nothing to run".  :class:`ServerApp`
(the FastAPI application the server builds) hands those requests to
:class:`FastReadMiddleware` before Starlette's middleware stack runs (its
error middleware, FastAPI's telemetry and body-limit wrappers cost more than
the answer itself).  The fast path reads the small body (within the osquery body
limit), parses it, and asks :func:`hostql.server.services.agent_api.quick_read`;
when that answers from memory it sends the answer itself (the empty one as
precomputed bytes).  Everything else (an unknown or uncached node key, work
due, a gzip body, a body that is not a JSON object, a body over the limit)
goes on to the app unchanged, with the body replayed, and is answered by
:mod:`hostql.server.osquery_api` exactly as before; so does a read whose quick
answer raised (the full path then reports the error as for any request).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from functools import partial
from typing import Any, NamedTuple

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
_JSON = (b"content-type", b"application/json")
_EMPTY_START: Message = {"type": "http.response.start", "status": 200,
                         "headers": [_JSON, (b"content-length", str(len(EMPTY_READ)).encode())]}
_EMPTY_BODY: Message = {"type": "http.response.body", "body": EMPTY_READ}


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


class FastReadMiddleware:
    """Answers the distributed reads :func:`agent_api.quick_read` can answer; passes on the rest."""

    def __init__(self, app: ASGIApp, owner: Any, limits: BodyLimits | None = None) -> None:
        self.app = app
        self.owner = owner  # the FastAPI app: its ``state.hostql`` is read per request (tests replace it)
        self.limit = (limits or BodyLimits()).osquery

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in READ_PATHS or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        if not self.may_answer(scope["headers"]):
            await self.app(scope, receive, send)  # gzip or too big: the full path
            return
        received = await read_body(receive, self.limit)
        if received is None:
            return  # the client went away
        body, message, complete = received
        payload = self.answer(scope["headers"], body) if complete else None
        if payload is None:
            await self.app(scope, _replay(body, message, receive), send)
        elif payload is EMPTY_READ:
            await send(_EMPTY_START)
            await send(_EMPTY_BODY)
        else:
            await send({"type": "http.response.start", "status": 200,
                        "headers": [_JSON, (b"content-length", str(len(payload)).encode())]})
            await send({"type": "http.response.body", "body": payload})

    def may_answer(self, headers: list[tuple[bytes, bytes]]) -> bool:
        """False for a read this path leaves to the app whatever its body (gzip, over the limit)."""
        found = request_headers(headers, self.limit)
        return found.fits and found.content_encoding is None

    def answer(self, headers: list[tuple[bytes, bytes]], body: bytes) -> bytes | None:
        """The JSON body answering this read from memory (:data:`EMPTY_READ` itself when empty), or None."""
        node_key = _node_key(body, headers, self.limit)
        if not node_key:
            return None
        try:
            answer, _ = agent_api.quick_read(self.owner.state.hostql, node_key)
        except Exception:  # the full path answers (and reports the error as usual)
            _log.debug("quick distributed read failed; taking the full path", exc_info=True)
            return None
        if answer is None:
            return None
        if not answer["queries"] and len(answer) == 2:
            return EMPTY_READ
        return fastjson.dumps(answer)


class FastAgentEndpoint:
    """An osquery API endpoint (``log``, ``config``, ``distributed/write``) called before
    FastAPI's routing and middleware: the endpoint function itself, on a request whose body
    was read within the limit, so its answers are the full path's.  Every agent sends logs
    every few seconds, fetches its config every minute and answers every live query with a
    write; the routing, dependency and middleware layers cost more than the work of a
    cached host's request."""

    def __init__(self, app: ASGIApp, owner: Any, endpoint: Any, limits: BodyLimits | None = None) -> None:
        self.app = app
        self.owner = owner
        self.endpoint = endpoint
        self.limit = (limits or BodyLimits()).osquery

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        from starlette.requests import Request

        from hostql.server.errors import internal_error_response

        if scope["method"] != "POST" or not request_headers(scope["headers"], self.limit).fits:
            await self.app(scope, receive, send)  # the full path answers (405, 413)
            return
        received = await read_body(receive, self.limit)
        if received is None:
            return  # the client went away
        body, message, complete = received
        replay = _replay(body, message, receive)
        if not complete:
            await self.app(scope, replay, send)
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


def _node_key(body: bytes, headers: Iterable[tuple[bytes, bytes]], limit: int) -> str:
    """The node key of a read body (``node_key`` or ``Authorization: NodeKey``), "" when there is none.
    The headers are only read when the body has no node key."""
    try:
        parsed = fastjson.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return ""
    if not isinstance(parsed, dict):
        return ""
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
    """The server's FastAPI application: agents' reads and logs take their fast paths first."""

    fast_read: FastReadMiddleware | None = None
    fast_endpoints: dict[str, FastAgentEndpoint] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if self.fast_read is not None and path in READ_PATHS:
                await self.fast_read(scope, receive, send)
                return
            endpoint = self.fast_endpoints.get(path) if self.fast_endpoints is not None else None
            if endpoint is not None:
                await endpoint(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def install_fast_read(app: ServerApp, settings: Any = None) -> None:
    """Serve agents' reads, logs, config fetches and writes before every middleware of ``app``; the rest
    goes through the full app."""
    full_app = partial(FastAPI.__call__, app)
    limits = BodyLimits.from_settings(settings)
    app.fast_read = FastReadMiddleware(full_app, owner=app, limits=limits)
    from hostql.server import osquery_api

    app.fast_endpoints = {}
    for paths, endpoint in ((LOG_PATHS, osquery_api.log), (CONFIG_PATHS, osquery_api.config),
                            (WRITE_PATHS, osquery_api.distributed_write)):
        app.fast_endpoints.update(dict.fromkeys(paths, FastAgentEndpoint(full_app, app, endpoint, limits)))


_log = logging.getLogger(__name__)

__all__ = ["CONFIG_PATHS", "EMPTY_READ", "LOG_PATHS", "READ_PATHS", "WRITE_PATHS", "FastAgentEndpoint",
           "FastReadMiddleware", "ServerApp", "install_fast_read"]
