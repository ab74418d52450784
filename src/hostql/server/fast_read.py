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
from functools import partial
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hostql.server import fastjson
from hostql.server.limits import BodyLimits
from hostql.server.services import agent_api

READ_PATHS = frozenset({"/api/osquery/distributed/read", "/api/v1/osquery/distributed/read"})
EMPTY_READ = b'{"queries":{},"discovery":{}}'
_JSON = (b"content-type", b"application/json")
_EMPTY_START: Message = {"type": "http.response.start", "status": 200,
                         "headers": [_JSON, (b"content-length", str(len(EMPTY_READ)).encode())]}
_EMPTY_BODY: Message = {"type": "http.response.body", "body": EMPTY_READ}


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
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            chunks.append(chunk)
            if size > self.limit or not message.get("more_body", False):
                break
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        payload = None
        if size <= self.limit and not message.get("more_body", False):
            payload = self.answer(scope["headers"], body)
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
        for name, value in headers:
            if name == b"content-encoding" or (name == b"content-length"
                                               and (not value.isdigit() or int(value) > self.limit)):
                return False
        return True

    def answer(self, headers: list[tuple[bytes, bytes]], body: bytes) -> bytes | None:
        """The JSON body answering this read from memory (:data:`EMPTY_READ` itself when empty), or None."""
        authorization = ""
        for name, value in headers:
            if name == b"authorization":
                authorization = value.decode("latin-1")
        node_key = _node_key(body, authorization)
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


def _node_key(body: bytes, authorization: str) -> str:
    """The node key of a read body (``node_key`` or ``Authorization: NodeKey``), "" when there is none."""
    try:
        parsed = fastjson.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return ""
    if not isinstance(parsed, dict):
        return ""
    key = parsed.get("node_key")
    if isinstance(key, str) and key:
        return key
    scheme, _, value = authorization.partition(" ")
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
    """The server's FastAPI application: distributed reads take the fast path first."""

    fast_read: FastReadMiddleware | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.fast_read is not None and scope["type"] == "http" and scope["path"] in READ_PATHS:
            await self.fast_read(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


def install_fast_read(app: ServerApp, settings: Any = None) -> None:
    """Answer idle reads before every middleware of ``app``; the rest goes through the full app."""
    app.fast_read = FastReadMiddleware(partial(FastAPI.__call__, app), owner=app,
                                       limits=BodyLimits.from_settings(settings))


_log = logging.getLogger(__name__)

__all__ = ["EMPTY_READ", "READ_PATHS", "FastReadMiddleware", "ServerApp", "install_fast_read"]
