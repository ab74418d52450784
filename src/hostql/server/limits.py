"""Request body limits and a JSON well-formedness check, as ASGI middleware.

Every HTTP request body is read here first (bounded), so no handler ever sees
more than its path's limit: 1 MiB for the REST API, more for the agents'
endpoints (result logs can be large).  A body over the limit gets 413 in
Fleet's error shape without being read further; a declared
``Content-Length`` over the limit is refused before reading anything.

For the REST API (``/api/v1/``, ``/api/latest/``) a non-empty JSON body that
does not parse is answered 400 here, so routes that take no body cannot
silently accept garbage either.

Limits come from the settings object when it has them (``max_request_body_bytes``,
``max_osquery_body_bytes``, ``max_osquery_log_body_bytes``), else the defaults.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

MIB = 1024 * 1024
REST_PREFIXES = ("/api/v1/", "/api/latest/")
# The agent API is served under both prefixes, as Fleet serves it.
OSQUERY_PREFIXES = ("/api/osquery/", "/api/v1/osquery/")
OSQUERY_LOG_PATHS = ("/api/osquery/log", "/api/v1/osquery/log")


@dataclass(frozen=True)
class BodyLimits:
    default: int = 1 * MIB
    osquery: int = 16 * MIB
    osquery_log: int = 64 * MIB

    def for_path(self, path: str) -> int:
        if path.startswith(OSQUERY_LOG_PATHS):
            return self.osquery_log
        if path.startswith(OSQUERY_PREFIXES):
            return self.osquery
        return self.default

    @classmethod
    def from_settings(cls, settings: Any) -> BodyLimits:
        def pick(name: str, default: int) -> int:
            value = getattr(settings, name, None)
            return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default

        base = cls()
        return cls(default=pick("max_request_body_bytes", base.default),
                   osquery=pick("max_osquery_body_bytes", base.osquery),
                   osquery_log=pick("max_osquery_log_body_bytes", base.osquery_log))


def _error(status: int, message: str, reason: str) -> tuple[int, bytes]:
    body = {"message": message, "errors": [{"name": "base" if status == 413 else "body", "reason": reason}],
            "uuid": str(uuid.uuid4())}
    return status, json.dumps(body).encode()


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return True
    main = content_type.split(";", 1)[0].strip().lower()
    return main == "application/json" or main.endswith("+json")


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, limits: BodyLimits | None = None) -> None:
        self.app = app
        self.limits = limits or BodyLimits()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        limit = self.limits.for_path(path)
        declared = _header(scope, b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > limit
            except ValueError:
                await _respond(send, *_error(400, "Bad request", "invalid Content-Length header"))
                return
            if too_big:
                await _respond(send, *_error(413, "Request Entity Too Large", f"request body exceeds {limit} bytes"))
                return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _respond(send, *_error(413, "Request Entity Too Large", f"request body exceeds {limit} bytes"))
                return
            chunks.append(chunk)
            more = bool(message.get("more_body", False))
        body = b"".join(chunks)
        # Agent bodies are parsed (and answered in osquery's terms) by the osquery API itself.
        if body.strip() and path.startswith(REST_PREFIXES) and not path.startswith(OSQUERY_PREFIXES) \
                and _is_json(_header(scope, b"content-type")) \
                and not _header(scope, b"content-encoding"):
            try:
                json.loads(body)
            except (ValueError, UnicodeDecodeError) as exc:
                await _respond(send, *_error(400, "Bad request", f"malformed JSON body: {exc}"))
                return
        await self.app(scope, _replay(body, receive), send)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _respond(send: Send, status: int, payload: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


def install_body_limits(app: Any, settings: Any = None) -> None:
    """Wrap ``app`` (a FastAPI/Starlette app) with the body limits from ``settings``."""
    app.add_middleware(BodyLimitMiddleware, limits=BodyLimits.from_settings(settings))
