"""The osquery API's work, one function per endpoint (the router only parses and answers).

Every function takes the :class:`ServerState`; database sessions are opened
here.  The clock is ``state.extras["clock"]`` when set (tests), else UTC now.
Settings are read with ``getattr(state.settings, name, default)``.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError, OperationalError

from hostql.server.agent_workers import WRITES, run_for_agent
from hostql.server.logdest import RESULT, STATUS, router_for
from hostql.server.services import checkin, live_targets
from hostql.server.services.agent_config import config_for_host, interval_updates
from hostql.server.services.appconfig import cached_document
from hostql.server.services.distributed import (
    apply_write,
    live_only_answer,
    live_only_write,
    live_result_line,
    quiet_until,
    read_queries,
    sets_generation,
)
from hostql.server.services.enroll import Enrolled, EnrollFailed, enroll
from hostql.server.services.logs import (
    ConcurrentReportChange,
    HostRef,
    forwarded_only,
    handle_log,
    lookups_for,
    prune_due,
)
from hostql.server.services.policies import policy_results_changed
from hostql.server.state import ServerState
from hostql.server.storage.db import is_transient
from hostql.server.storage.models import Host, utcnow

NODE_INVALID = {"error": "invalid node key", "node_invalid": True}
T = TypeVar("T")
log = logging.getLogger(__name__)

ATTEMPTS = 4


def _host_exists(state: ServerState, host_id: int) -> bool:
    with state.database.session() as session:
        return session.get(Host, host_id) is not None


def host_transaction(state: ServerState, host_id: int, work: Callable[[], T]) -> T | None:
    """Run ``work`` (one whole transaction about one host) and cope with what concurrent
    agents and API users cause: a deadlock (InnoDB picks a victim when several hosts' writes
    take row locks on shared rows, e.g. FK checks on ``queries``) is retried; an integrity
    error because the host was deleted meanwhile gives None (answered ``node_invalid``, so
    the agent enrolls again) instead of a 500.  A query report another request of the same
    host changed meanwhile (read-modify-write detected by its generation, or both writing
    a new report first) runs the transaction again."""
    for attempt in range(ATTEMPTS):
        try:
            return work()
        except IntegrityError:
            if not _host_exists(state, host_id):
                return None
            if attempt == ATTEMPTS - 1:
                raise
            log.info("host %s: transaction retried after an integrity error (concurrent report write?)", host_id)
        except ConcurrentReportChange as exc:
            if attempt == ATTEMPTS - 1:
                raise
            log.info("host %s: transaction retried: %s changed meanwhile", host_id, exc)
        except OperationalError as exc:
            if attempt == ATTEMPTS - 1 or not is_transient(exc):
                raise
            log.info("host %s: transaction retried after %s", host_id, exc.orig)
            time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))
    raise AssertionError("unreachable")


def now_for(state: ServerState) -> datetime:
    clock: Callable[[], datetime] | None = state.extras.get("clock")
    return clock() if clock is not None else utcnow()


def setting(state: ServerState, name: str, default: Any) -> Any:
    return getattr(state.settings, name, default)


def authenticate(state: ServerState, node_key: str) -> Host | None:
    """The host behind ``node_key`` (cached, detached) with its seen time marked, or None."""
    helper = checkin.checkin_for(state)
    host = helper.host_for_key(node_key)
    if host is not None:
        helper.mark_seen(host, now_for(state))
    return host


def cached_host(state: ServerState, node_key: str) -> Host | None:
    """The host behind ``node_key`` when the node-key cache holds it (seen time marked), else
    None.  Memory only, so it runs on the event loop: a request whose host is cached (nearly
    all) needs no worker thread just to find out who sent it."""
    helper = checkin.checkin_for(state)
    host = helper.cache.get(node_key) if node_key else None
    if host is not None:
        helper.mark_seen(host, now_for(state))
    return host


def enroll_agent(state: ServerState, body: dict[str, Any]) -> dict[str, Any]:
    try:
        with state.database.session() as session:
            result: Enrolled = enroll(
                session, body,
                identifier_mode=str(setting(state, "host_identifier", None)
                                    or setting(state, "osquery_host_identifier", "provided")),
                cooldown=float(setting(state, "enroll_cooldown", 0) or 0),
                node_key_size=int(setting(state, "node_key_size", 24)),
                now=now_for(state),
            )
    except EnrollFailed as exc:
        return {"error": f"enroll failed: {exc}", "node_invalid": True}
    helper = checkin.checkin_for(state)
    if result.old_node_key:
        helper.cache.invalidate_key(result.old_node_key)
    helper.cache.invalidate_host(result.host_id)
    return {"node_key": result.node_key}


def _features(session: Any) -> dict[str, bool]:
    features = cached_document(session).get("features")
    features = features if isinstance(features, dict) else {}
    return {"enable_host_users": bool(features.get("enable_host_users", True)),
            "enable_software_inventory": bool(features.get("enable_software_inventory", True))}


def host_config(state: ServerState, host: Host) -> dict[str, Any] | None:
    """The config document, or None when the host is gone."""
    return host_transaction(state, host.id, lambda: _host_config(state, host))


def _host_config(state: ServerState, host: Host) -> dict[str, Any] | None:
    """Built from the host as identified (cached: a deleted or changed host is dropped from the
    cache, so it is current): reads only, except the rare fill-in of its intervals, whose
    UPDATE also tells whether the host still exists."""
    with state.database.session() as session:
        config = config_for_host(session, host)
        updates = interval_updates(host, config)
        if updates:
            result = session.execute(update(Host).where(Host.id == host.id).values(**updates))
            if not getattr(result, "rowcount", 1):
                return None
    return config


def host_log(state: ServerState, host: Host, body: dict[str, Any]) -> dict[str, Any]:
    answer = host_transaction(state, host.id, lambda: _host_log(state, host, body))
    return dict(NODE_INVALID) if answer is None else answer


def _host_log(state: ServerState, host: Host, body: dict[str, Any]) -> dict[str, Any]:
    log_type = body.get("log_type")
    data = body.get("data")
    if log_type not in ("result", "status"):
        return {"error": f"unknown log_type {log_type!r}"}
    if not isinstance(data, list):
        return {"error": "data must be a list of log lines"}
    # The host as identified: a team change or a delete drops it from the node-key cache at
    # once, and a report written for a host deleted meanwhile fails its foreign key
    # (host_transaction answers node_invalid), so lines only forwarded need no SQL at all.
    current = HostRef(host.id, host.team_id)
    with state.database.session() as session:
        handle_log(session, router_for(state), current, str(log_type), data,
                   retention_days=float(setting(state, "query_report_retention_days", 30)), state_key=id(state),
                   now=now_for(state), lookups=lookups_for(state))
    return {}


def quick_log(state: ServerState, node_key: str, body: dict[str, Any]) -> dict[str, Any] | None:
    """A ``/log`` request handled from memory: a cached host's status lines, or result lines that
    belong to no saved query (so only go to the log destinations), when every destination of
    the kind writes without blocking.  None when the full path (:func:`host_log`, in a worker
    thread) must answer: an uncached host, a line that updates a query report, a lookup not
    cached, report pruning due, a malformed request (the full path words the error).

    Agents send logs as often as they read, and most lines of most fleets are forwarded only
    (osquery's own packs, status lines); this spares them the thread hop and the transaction."""
    log_type = body.get("log_type")
    data = body.get("data")
    if log_type not in (RESULT, STATUS) or not isinstance(data, list):
        return None
    router = router_for(state)
    if not router.writes_inline(log_type):
        return None
    host = cached_host(state, node_key)
    if host is None:
        return None
    lines = [line for line in data if isinstance(line, dict)]
    if log_type == RESULT and (prune_due(id(state)) or not forwarded_only(lookups_for(state), host.team_id, lines)):
        return None
    router.write(log_type, lines)
    return {}


def quick_read(state: ServerState, node_key: str) -> tuple[dict[str, Any] | None, Host | None]:
    """A ``distributed/read`` answered from memory alone (cached host, nothing due) and the cached host.

    The answer is None when the database is needed; the host is None when it is not
    cached (look it up with :func:`authenticate`).  Nothing due is the common case (an
    agent polls every few seconds; vitals, labels and policies are due about hourly), so
    this runs on the event loop: no thread hop, no SQL.
    """
    helper = checkin.checkin_for(state)
    entry = helper.cache.entry(node_key) if node_key else None
    if entry is None:
        return None, None
    now = now_for(state)
    helper.mark_seen(entry.host, now)
    return _quiet_answer(state, helper, entry, now), entry.host


def _quiet_answer(state: ServerState, helper: checkin.Checkin, entry: checkin.CachedHost,
                  now: datetime) -> dict[str, Any] | None:
    """The read answer from memory while the cached host is quiet (see :func:`quiet_until`), else None."""
    host = entry.host
    generation = sets_generation()
    if entry.quiet_until is None or now >= entry.quiet_until or entry.sets_generation != generation:
        until = quiet_until(state, host, now, helper.read_intervals())
        if until is None:
            return None
        entry.quiet_until, entry.sets_generation = until, generation
    return live_only_answer(state, host)


def read_after_miss(state: ServerState, node_key: str) -> dict[str, Any] | None:
    """A ``distributed/read`` of a host the cache did not hold (None: unknown node key).

    The lookup caches the host, so the read is then answered from memory like any other
    when nothing is due: a host dropped from the cache (its TTL, or a write changed it)
    costs one indexed SELECT, not a full read."""
    host = authenticate(state, node_key)
    if host is None:
        return None
    helper = checkin.checkin_for(state)
    entry = helper.cache.entry(node_key)  # None when the cache refused the lookup (a change overlapped it)
    quick = _quiet_answer(state, helper, entry, now_for(state)) if entry is not None else None
    return quick if quick is not None else distributed_read(state, host)


def distributed_read(state: ServerState, host: Host) -> dict[str, Any]:
    with state.database.session() as session:
        return read_queries(state, session, host, now_for(state), checkin.checkin_for(state).read_intervals())


def _write_sync(state: ServerState, host: Host, body: dict[str, Any],
                public_ip: str) -> tuple[Host, list[Any]] | None:
    now = now_for(state)
    with state.database.session() as session:
        current = session.get(Host, host.id)
        if current is None:
            return None
        features = _features(session)
        features["enable_scheduled_query_stats"] = bool(setting(state, "enable_scheduled_query_stats", True))
        report = apply_write(session, current, body, now, features=features)
        if public_ip and current.public_ip != public_ip:
            current.public_ip = public_ip[:45]
        session.flush()
        if report.policy_changes:
            # Flips to failing trigger the failing-policy webhook (posted in the background).
            policy_results_changed(state, session, report.policy_changes)
        session.expunge(current)
    if report.campaigns and setting(state, "live_query_results_to_log", False):
        router_for(state).write(RESULT, [live_result_line(current, answer, now) for answer in report.campaigns])
    return current, report.campaigns


async def distributed_write(state: ServerState, host: Host, body: dict[str, Any], public_ip: str) -> dict[str, Any]:
    live_answers = live_only_write(body)
    if live_answers is not None:  # live-query results only: no database, as Fleet does it
        current, campaigns = host, live_answers
        if setting(state, "live_query_results_to_log", False):
            now = now_for(state)
            lines = [live_result_line(current, answer, now) for answer in campaigns]
            await run_for_agent(state, router_for(state).write, RESULT, lines, kind=WRITES)
    else:
        outcome = await run_for_agent(state, host_transaction, state, host.id,
                                      lambda: _write_sync(state, host, body, public_ip), kind=WRITES)
        if outcome is None:
            return dict(NODE_INVALID)
        current, campaigns = outcome
    for answer in campaigns:
        await live_targets.record_result(state, current, answer.campaign_id, answer.rows, answer.error)
    return {}


__all__ = ["NODE_INVALID", "EnrollFailed", "authenticate", "cached_host", "distributed_read", "distributed_write",
           "enroll_agent", "host_config", "host_log", "now_for", "quick_log", "quick_read", "read_after_miss"]
