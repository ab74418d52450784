"""The osquery TLS API agents talk to (``/api/osquery/*`` and ``/api/v1/osquery/*``).

Thin handlers: parse the JSON body (gzip allowed), find the host by node key
(body ``node_key`` or an ``Authorization: NodeKey <key>`` header), call
:mod:`hostql.server.services.agent_api`, answer JSON.  An unknown node key is
``{"error": ..., "node_invalid": true}`` with status 401 (osquery ignores the
status and re-enrolls on ``node_invalid``).  The router's lifespan starts the
seen-time flusher and flushes it and closes log destinations at shutdown.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from hostql.server import fastjson
from hostql.server.agent_workers import WRITES, run_for_agent
from hostql.server.services import agent_api, carves, checkin
from hostql.server.state import ServerState
from hostql.server.storage.models import Host

PREFIXES = ("/api/osquery", "/api/v1/osquery")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    state: ServerState = app.state.hostql
    checkin.checkin_for(state).start()
    try:
        yield
    finally:
        await run_in_threadpool(checkin.shutdown, state)
        router_ = state.extras.pop("log_router", None)
        if router_ is not None:
            router_.close()


router = APIRouter(lifespan=lifespan)


def _state(request: Request) -> ServerState:
    state: ServerState = request.app.state.hostql
    return state


def json_answer(body: dict[str, Any]) -> JSONResponse:
    if body.get("node_invalid"):
        return JSONResponse(body, status_code=401)
    return JSONResponse(body, status_code=400 if "error" in body else 200)


BAD_JSON = "request body is not a JSON object"
MAX_INFLATED = 64 * 1024 * 1024  # bytes a gzip body may grow to (the default log body limit)


def _gunzip(raw: bytes, limit: int = MAX_INFLATED) -> bytes | str:
    """``raw`` inflated, or why not: a few KiB of gzip can inflate to gigabytes, so at most
    ``limit`` bytes are produced."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)  # the gzip wrapper
    try:
        inflated = inflater.decompress(raw, limit + 1)
    except zlib.error:
        return "request body is not valid gzip"
    if len(inflated) > limit or inflater.unconsumed_tail:
        return f"request body inflates to more than {limit} bytes"
    if not inflater.eof:
        return "request body is not valid gzip (truncated)"
    return inflated


def _parse(raw: bytes, content_encoding: str) -> dict[str, Any] | str:
    """The JSON object of a request body (gzip allowed), or the reason there is none."""
    if "gzip" in content_encoding.lower():
        inflated = _gunzip(raw)
        if isinstance(inflated, str):
            return inflated
        raw = inflated
    try:
        body = fastjson.loads(raw or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        return BAD_JSON
    return body if isinstance(body, dict) else BAD_JSON


async def _json(request: Request) -> dict[str, Any] | str:
    return _parse(await request.body(), request.headers.get("content-encoding", ""))


def _node_key(request: Request, body: dict[str, Any]) -> str:
    key = body.get("node_key")
    if isinstance(key, str) and key:
        return key
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "nodekey" else ""


async def _host(request: Request, body: dict[str, Any]) -> Host | None:
    state, node_key = _state(request), _node_key(request, body)
    host = agent_api.cached_host(state, node_key)
    if host is not None:
        return host
    # A worker thread only for a cache miss: agent workers may all be waiting for SQLite's
    # write lock, and a live-query answer must not queue behind them just to be identified.
    return await run_for_agent(state, agent_api.authenticate, state, node_key)


def _public_ip(request: Request) -> str:
    for header in ("true-client-ip", "x-real-ip", "x-forwarded-for"):
        value = request.headers.get(header, "")
        if value:
            return value.split(",")[0].strip()
    return ""


async def enroll(request: Request) -> JSONResponse:
    body = await _json(request)
    if isinstance(body, str):
        return json_answer({"error": body})
    state = _state(request)
    return json_answer(await run_for_agent(state, agent_api.enroll_agent, state, body, kind=WRITES))


async def _agent_request(request: Request) -> tuple[dict[str, Any], Host] | JSONResponse:
    """The body and host of a node-key request, or the answer refusing it (a bad body, an unknown key)."""
    body = await _json(request)
    if isinstance(body, str):
        return json_answer({"error": body})
    host = await _host(request, body)
    if host is None:
        return json_answer(dict(agent_api.NODE_INVALID))
    return body, host


async def config(request: Request) -> JSONResponse:
    found = await _agent_request(request)
    if isinstance(found, JSONResponse):
        return found
    state = _state(request)
    answer = await run_for_agent(state, agent_api.host_config, state, found[1])
    return json_answer(dict(agent_api.NODE_INVALID) if answer is None else answer)


def log_sync(state: ServerState, raw: bytes, content_encoding: str, authorization: str) -> dict[str, Any]:
    """All of ``/log`` but reading the body: parsing a large body, finding the host and the
    database work happen in one worker thread, off the event loop."""
    body = _parse(raw, content_encoding)
    if isinstance(body, str):
        return {"error": body}
    key = body.get("node_key")
    if not (isinstance(key, str) and key):
        scheme, _, value = authorization.partition(" ")
        key = value.strip() if scheme.lower() == "nodekey" else ""
    host = agent_api.authenticate(state, key)
    if host is None:
        return dict(agent_api.NODE_INVALID)
    return agent_api.host_log(state, host, body)


async def log(request: Request) -> JSONResponse:
    raw = await request.body()
    headers = request.headers
    state = _state(request)
    return json_answer(await run_for_agent(state, log_sync, state, raw, headers.get("content-encoding", ""),
                                           headers.get("authorization", ""), kind=WRITES))


EMPTY_READ = json.dumps({"queries": {}, "discovery": {}}, separators=(",", ":")).encode()


async def distributed_read(request: Request) -> Response:
    body = await _json(request)
    if isinstance(body, str):
        return json_answer({"error": body})
    state, node_key = _state(request), _node_key(request, body)
    quick, host = agent_api.quick_read(state, node_key)
    if quick is None:
        if host is None:  # not cached: identify it and answer in one worker hop
            quick = await run_for_agent(state, agent_api.read_after_miss, state, node_key)
        else:  # something is due
            quick = await run_for_agent(state, agent_api.distributed_read, state, host)
    if quick is None:
        return json_answer(dict(agent_api.NODE_INVALID))
    if not quick["queries"] and len(quick) == 2:
        return Response(EMPTY_READ, media_type="application/json")
    return json_answer(quick)


async def distributed_write(request: Request) -> JSONResponse:
    found = await _agent_request(request)
    if isinstance(found, JSONResponse):
        return found
    body, host = found
    return json_answer(await agent_api.distributed_write(_state(request), host, body, _public_ip(request)))


def _carve_begin(state: ServerState, host: Host, body: dict[str, Any]) -> dict[str, Any]:
    try:
        with state.database.session() as session:
            carve = carves.begin(session, host, body, agent_api.now_for(state))
            return {"session_id": carve.session_id, "success": True}
    except carves.CarveRefused as exc:
        return {"error": f"carve refused: {exc}"}


async def carve_begin(request: Request) -> JSONResponse:
    found = await _agent_request(request)
    if isinstance(found, JSONResponse):
        return found
    body, host = found
    state = _state(request)
    return json_answer(await run_for_agent(state, _carve_begin, state, host, body, kind=WRITES))


def carve_block_sync(state: ServerState, raw: bytes, content_encoding: str) -> dict[str, Any]:
    """A ``/carve/block`` request (megabytes of base64: parsed in the worker thread, like logs)."""
    body = _parse(raw, content_encoding)
    if isinstance(body, str):
        return {"error": body}
    try:
        with state.database.session() as session:
            carves.add_block(session, body)
    except carves.CarveRefused as exc:
        return {"error": f"carve block refused: {exc}"}
    return {"success": True}


async def carve_block(request: Request) -> JSONResponse:
    raw = await request.body()
    state = _state(request)
    return json_answer(await run_for_agent(state, carve_block_sync, state, raw,
                                           request.headers.get("content-encoding", ""), kind=WRITES))


for _prefix in PREFIXES:
    router.add_api_route(f"{_prefix}/enroll", enroll, methods=["POST"], include_in_schema=False)
    router.add_api_route(f"{_prefix}/config", config, methods=["POST"], include_in_schema=False)
    router.add_api_route(f"{_prefix}/log", log, methods=["POST"], include_in_schema=False)
    router.add_api_route(f"{_prefix}/distributed/read", distributed_read, methods=["POST"], include_in_schema=False)
    router.add_api_route(f"{_prefix}/distributed/write", distributed_write, methods=["POST"],
                         include_in_schema=False)
    router.add_api_route(f"{_prefix}/carve/begin", carve_begin, methods=["POST"], include_in_schema=False)
    router.add_api_route(f"{_prefix}/carve/block", carve_block, methods=["POST"], include_in_schema=False)
