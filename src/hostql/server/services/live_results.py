"""Reading live-query results: Fleet's WebSocket stream and the synchronous REST wait.

WebSocket protocol (fleet-reference §3.4): the client sends
``{"type":"auth","data":{"token":…}}`` then
``{"type":"select_campaign","data":{"campaign_id":N}}`` (its own campaign); the
server answers ``totals``, ``status`` and one ``result`` per host answer, or
``error``.  ``status`` is re-sent only when it changed, at most every
``status_interval`` seconds, except that reaching ``finished`` is sent at once.
Closing the socket completes the campaign.

Every database call runs in the thread pool, never on the event loop: one
blocked loop would stall every agent check-in and every other WebSocket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import anyio
from sqlalchemy.orm import Session as OrmSession
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from hostql.server.pubsub import results_channel
from hostql.server.services import authz, campaigns, live_targets
from hostql.server.state import ServerState
from hostql.server.storage.models import Campaign, Host, Query, User

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT = 30.0
DEFAULT_STATUS_INTERVAL = 5.0
POLL = 0.25
OFFLINE = "host is offline"


class StreamError(Exception):
    """Reported to the client as ``{"type":"error","data":message}`` before closing."""


@dataclass
class Progress:
    expected: int = 0
    hosts_with_results: set[int] = field(default_factory=set)
    hosts_without_results: set[int] = field(default_factory=set)

    def add(self, host_id: int, rows: list[Any]) -> bool:
        """Count one host's answer; ``False`` when that host already answered."""
        if host_id in self.hosts_with_results or host_id in self.hosts_without_results:
            return False
        (self.hosts_with_results if rows else self.hosts_without_results).add(host_id)
        return True

    def message(self) -> dict[str, Any]:
        actual = len(self.hosts_with_results) + len(self.hosts_without_results)
        return {
            "expected_results": self.expected,
            "actual_results": actual,
            "count_of_hosts_with_results": len(self.hosts_with_results),
            "count_of_hosts_with_no_results": len(self.hosts_without_results),
            "status": "finished" if actual >= self.expected else "pending",
        }


def _user_for_token(state: ServerState, token: str) -> User:
    from hostql.server.services import auth

    with state.database.session() as session:
        login = auth.valid_session(state.database, session, token)
        user = session.get(User, login.user_id) if login is not None else None
        if user is None or user.disabled:
            raise StreamError("unauthorized: invalid or expired token")
        if not authz.meets(authz.best_role(user), "observer"):
            raise StreamError("forbidden")
        session.expunge(user)
        return user


def _campaign_for(state: ServerState, user: User, campaign_id: Any) -> Campaign:
    if not isinstance(campaign_id, int) or isinstance(campaign_id, bool):
        raise StreamError("select_campaign: campaign_id must be an integer")
    with state.database.session() as session:
        campaign = session.get(Campaign, campaign_id)
        if campaign is None:
            raise StreamError(f"campaign {campaign_id} not found")
        if campaign.user_id != user.id:
            raise StreamError("cannot access a campaign created by another user")
        if campaign.status == campaigns.STATUS_COMPLETED:
            raise StreamError(f"campaign {campaign_id} has already completed")
        return campaign


async def _expect(websocket: WebSocket, kind: str) -> dict[str, Any]:
    try:
        message = await asyncio.wait_for(websocket.receive_json(), timeout=HANDSHAKE_TIMEOUT)
    except TimeoutError:
        raise StreamError(f"timed out waiting for {kind}") from None
    except ValueError:
        raise StreamError(f"expected a JSON {kind} message") from None
    if not isinstance(message, dict) or message.get("type") != kind or not isinstance(message.get("data"), dict):
        raise StreamError(f'expected {{"type": "{kind}", "data": {{...}}}}')
    data: dict[str, Any] = message["data"]
    return data


def _totals(state: ServerState, user: User, campaign_id: int) -> campaigns.Metrics:
    with state.database.session() as session:
        selection = campaigns.campaign_selection(session, campaign_id)
        owner = session.get(User, user.id) or user
        host_ids = campaigns.resolve_host_ids(session, owner, selection)
        return campaigns.metrics(state, session, host_ids)


def with_host_columns(message: dict[str, Any]) -> dict[str, Any]:
    host = message.get("host") or {}
    rows = [dict(row, host_hostname=host.get("hostname", ""), host_display_name=host.get("display_name", ""))
            for row in message.get("rows") or []]
    return dict(message, rows=rows)


async def serve_websocket(state: ServerState, websocket: WebSocket, *, status_interval: float | None = None) -> None:
    """Run one results WebSocket from handshake to close."""
    await websocket.accept()
    interval = status_interval if status_interval is not None else float(
        getattr(state.settings, "live_query_status_interval", DEFAULT_STATUS_INTERVAL))
    try:
        auth = await _expect(websocket, "auth")
        user = await run_in_threadpool(_user_for_token, state, str(auth.get("token") or ""))
        selected = await _expect(websocket, "select_campaign")
        campaign = await run_in_threadpool(_campaign_for, state, user, selected.get("campaign_id"))
    except StreamError as exc:
        await _send_error(websocket, str(exc))
        return
    except WebSocketDisconnect:
        return
    try:
        await _stream(state, websocket, user, campaign.id, interval)
    except Exception as exc:  # e.g. Redis unreachable: tell the client instead of dropping it
        log.exception("live query campaign %s: streaming results failed", campaign.id)
        await _send_error(websocket, f"streaming results failed: {exc}")
    finally:
        with anyio.CancelScope(shield=True):
            await run_in_threadpool(campaigns.stop, state, campaign.id)
        if websocket.client_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await websocket.close()


async def _send_error(websocket: WebSocket, message: str) -> None:
    with contextlib.suppress(Exception):
        await websocket.send_json({"type": "error", "data": message})
        await websocket.close(code=1008)


async def _stream(state: ServerState, websocket: WebSocket, user: User, campaign_id: int, interval: float) -> None:
    subscription = await state.pubsub.subscribe(results_channel(campaign_id))
    closed = asyncio.Event()

    async def watch_client() -> None:  # the client only ever closes; anything else is ignored
        try:
            while (await websocket.receive())["type"] != "websocket.disconnect":
                pass
        except Exception:
            pass
        closed.set()

    watcher = asyncio.create_task(watch_client())
    try:
        await run_in_threadpool(campaigns.set_status, state, campaign_id, campaigns.STATUS_RUNNING)
        totals = await run_in_threadpool(_totals, state, user, campaign_id)
        progress = Progress(expected=totals.online)
        await websocket.send_json({"type": "totals", "data": totals.totals_message()})
        last_status = progress.message()
        await websocket.send_json({"type": "status", "data": last_status})
        last_sent = next_tick = time.monotonic()
        next_tick += interval
        while not closed.is_set():
            message = await subscription.get(timeout=min(POLL, max(next_tick - time.monotonic(), 0.0)))
            if message is not None:
                message = live_targets.take_result(state, campaign_id, message)
                host_id = int((message.get("host") or {}).get("id", 0))
                if progress.add(host_id, message.get("rows") or []):
                    await websocket.send_json({"type": "result", "data": with_host_columns(message)})
            moment = time.monotonic()
            if moment >= next_tick:  # periodic refresh: online hosts come and go
                next_tick = moment + interval
                fresh = await run_in_threadpool(_totals, state, user, campaign_id)
                if fresh.totals_message() != totals.totals_message():
                    totals = fresh
                    await websocket.send_json({"type": "totals", "data": totals.totals_message()})
                progress.expected = totals.online
            status = progress.message()
            just_finished = status["status"] == "finished" and last_status["status"] != "finished"
            due = moment - last_sent >= interval or just_finished
            if status != last_status and due:
                await websocket.send_json({"type": "status", "data": status})
                last_status, last_sent = status, moment
    except (WebSocketDisconnect, RuntimeError):
        pass  # the client went away while we were sending
    finally:
        watcher.cancel()
        with anyio.CancelScope(shield=True):  # clean up even when the server cancels us
            await asyncio.gather(watcher, return_exceptions=True)
            await subscription.close()


# --------------------------------------------------------------------------- synchronous REST


@dataclass
class HostAnswer:
    rows: list[dict[str, Any]]
    error: str | None


async def collect(state: ServerState, campaign_id: int, sql: str, host_ids: Iterable[int],
                  wait_for: set[int], period: float) -> dict[int, HostAnswer]:
    """Target ``host_ids`` and gather answers until every host in ``wait_for`` answered or ``period`` ends.

    The campaign is completed afterwards, whatever happened.
    """
    subscription = await state.pubsub.subscribe(results_channel(campaign_id))
    answers: dict[int, HostAnswer] = {}
    try:
        campaigns.target_store(state).add(campaign_id, sql, host_ids)
        await run_in_threadpool(campaigns.set_status, state, campaign_id, campaigns.STATUS_RUNNING)
        deadline = time.monotonic() + period
        while not wait_for <= answers.keys():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            message = await subscription.get(timeout=remaining)
            if message is None:
                continue
            message = live_targets.take_result(state, campaign_id, message)
            host_id = int((message.get("host") or {}).get("id", 0))
            answers.setdefault(host_id, HostAnswer(list(message.get("rows") or []), message.get("error")))
    finally:
        with anyio.CancelScope(shield=True):
            await subscription.close()
            await run_in_threadpool(campaigns.stop, state, campaign_id)
    return answers


def rest_period(state: ServerState) -> float:
    """``live_query_rest_period`` in seconds (25 s by default)."""
    value: Any = getattr(state.settings, "live_query_rest_period", 25.0)
    seconds = value.total_seconds() if hasattr(value, "total_seconds") else float(value)
    return max(seconds, 0.0)


async def run_on_hosts(state: ServerState, session: OrmSession, user: User, query: Query,
                       host_ids: list[int]) -> dict[str, Any]:
    """``POST /queries/{id}/run``: run a saved query on hosts and wait for the answers.

    Waits until every target that is online has answered, or the REST period
    ends.  Targets that did not answer are listed with an error saying why
    (``host is offline``, or no answer in time).
    """
    def start() -> tuple[Campaign, list[int], campaigns.Metrics]:
        campaigns.check_can_run(session, user, query, query.query)
        started = campaigns.create_campaign(state, session, user, query, campaigns.Selection(hosts=host_ids))
        session.commit()  # agents (maybe at another instance) must see the campaign; release the write lock
        return started

    campaign, targeted, metrics = await run_in_threadpool(start)
    period = rest_period(state)
    answers = await collect(state, campaign.id, query.query, targeted, metrics.online_ids, period)
    results: list[dict[str, Any]] = []
    for host_id in targeted:
        answer = answers.get(host_id)
        if answer is not None:
            results.append({"host_id": host_id, "rows": answer.rows, "error": answer.error})
        elif host_id in metrics.online_ids:
            results.append({"host_id": host_id, "rows": [], "error": f"no response from host within {period:g} s"})
        else:
            results.append({"host_id": host_id, "rows": [], "error": OFFLINE})
    return {"query_id": query.id, "targeted_host_count": len(targeted),
            "responded_host_count": sum(1 for host_id in targeted if host_id in answers), "results": results}


async def run_on_host(state: ServerState, session: OrmSession, user: User, host: Host, sql: str) -> dict[str, Any]:
    """``POST /hosts/{id}/query``: ad-hoc SQL on one host; offline hosts are answered at once."""
    response: dict[str, Any] = {"host_id": host.id, "query": sql, "status": "online", "error": None, "rows": []}

    def start() -> tuple[Campaign, list[int]] | None:
        campaigns.check_can_run(session, user, None, sql)
        if not campaigns.is_online(state, host):
            return None
        query = campaigns.adhoc_query(session, user, sql)
        campaign, targeted, _ = campaigns.create_campaign(
            state, session, user, query, campaigns.Selection(hosts=[host.id]))
        session.commit()
        return campaign, targeted

    started = await run_in_threadpool(start)
    if started is None:
        return dict(response, status="offline", error=OFFLINE)
    campaign, targeted = started
    period = rest_period(state)
    answers = await collect(state, campaign.id, sql, targeted, set(targeted), period)
    answer = answers.get(host.id)
    if answer is None:
        return dict(response, error=f"no response from host within {period:g} s")
    return dict(response, error=answer.error, rows=answer.rows)
