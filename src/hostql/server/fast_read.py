"""``distributed/read`` answered straight from ASGI, before FastAPI's routing.

Agents poll ``/api/osquery/distributed/read`` (and ``/api/v1/osquery/...``) every
few seconds and nearly every answer is "nothing to run".  This middleware
takes those requests first: it reads the small body (within the osquery body
limit), parses it, and asks :func:`hostql.server.services.agent_api.quick_read`;
when that answers from memory it sends the answer itself (the empty one as
precomputed bytes).  Everything else (an unknown or uncached node key, work
due, a gzip body, a body that is not a JSON object, a body over the limit)
goes on to the app unchanged, with the body replayed, and is answered by
:mod:`hostql.server.osquery_api` exactly as before.
"""

from __future__ import annotations

from typing import Any

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
        node_key = ""
        authorization = ""
        for name, value in scope["headers"]:
            if name == b"content-encoding" or (name == b"content-length"
                                               and (not value.isdigit() or int(value) > self.limit)):
                await self.app(scope, receive, send)  # gzip or too big: the full path
                return
            if name == b"authorization":
                authorization = value.decode("latin-1")
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
        if size <= self.limit and not message.get("more_body", False):
            node_key = _node_key(body, authorization)
        if node_key:
            answer, _ = agent_api.quick_read(self.owner.state.hostql, node_key)
            if answer is not None:
                if not answer["queries"] and len(answer) == 2:
                    await send(_EMPTY_START)
                    await send(_EMPTY_BODY)
                    return
                payload = fastjson.dumps(answer)
                await send({"type": "http.response.start", "status": 200,
                            "headers": [_JSON, (b"content-length", str(len(payload)).encode())]})
                await send({"type": "http.response.body", "body": payload})
                return
        await self.app(scope, _replay(body, message, receive), send)


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


def install_fast_read(app: Any, settings: Any = None) -> None:
    """Put the fast path outside every other middleware of ``app``."""
    app.add_middleware(FastReadMiddleware, owner=app, limits=BodyLimits.from_settings(settings))


__all__ = ["EMPTY_READ", "READ_PATHS", "FastReadMiddleware", "install_fast_read"]
