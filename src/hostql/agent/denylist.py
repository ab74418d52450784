"""Worker side of the watchdog: remember the running query, denylist it after a crash.

Before each scheduled query the worker records the query's name in the store
(domain ``configurations``, key ``executing_query``) and clears it afterwards
(:class:`ExecutingQuery`).  When the watcher kills the worker (or the worker
dies for any other reason) in the middle of a query, the name is left behind.
The next worker calls :func:`check_crashed_query` at start: the leftover name
is denylisted for a day and returned so the daemon can log "Scheduled query
may have failed: <name>".

The denylist is kept as osquery keeps it: the ``failed_queries`` key holds
``name:expiry:name:expiry...`` with expiry in Unix seconds.  Expired entries
are dropped whenever the list is read and written back.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType

from hostql.agent.store import CONFIGURATIONS, Store

EXECUTING_QUERY = "executing_query"
FAILED_QUERIES = "failed_queries"
DENYLIST_DURATION = 86400  # seconds a query that was running at a crash is skipped
# What the daemon logs (WARNING) for the name check_crashed_query returns.
CRASHED_QUERY_MESSAGE = "Scheduled query may have failed: %s"


class ExecutingQuery:
    """``with ExecutingQuery(store, name):`` marks ``name`` as running for the block.

    The mark is cleared when the block ends, also when it raises: an exception
    is a failed query, not a dead worker.  Only a process that dies inside the
    block leaves the mark behind.
    """

    def __init__(self, store: Store, name: str) -> None:
        self.store = store
        self.name = name

    def __enter__(self) -> ExecutingQuery:
        self.store.put(CONFIGURATIONS, EXECUTING_QUERY, self.name)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.store.delete(CONFIGURATIONS, EXECUTING_QUERY)


def parse_failed_queries(text: str) -> dict[str, int]:
    """``name:expiry:name:expiry...`` -> {name: expiry}; malformed pairs are skipped."""
    parts = text.split(":") if text else []
    entries: dict[str, int] = {}
    for i in range(0, len(parts) - 1, 2):
        name, expiry = parts[i], parts[i + 1]
        if not name:
            continue
        try:
            entries[name] = int(expiry)
        except ValueError:
            continue
    return entries


def format_failed_queries(entries: Mapping[str, int]) -> str:
    """{name: expiry} -> ``name:expiry:name:expiry...`` (insertion order)."""
    return ":".join(f"{name}:{expiry}" for name, expiry in entries.items())


def denylisted_queries(store: Store, now: int) -> dict[str, int]:
    """Queries denylisted at ``now``, with their expiry; stores the list without expired entries."""
    with store.transaction():
        raw = store.get(CONFIGURATIONS, FAILED_QUERIES) or ""
        entries = parse_failed_queries(raw)
        live = {name: expiry for name, expiry in entries.items() if expiry > now}
        text = format_failed_queries(live)
        if text != raw:
            if live:
                store.put(CONFIGURATIONS, FAILED_QUERIES, text)
            else:
                store.delete(CONFIGURATIONS, FAILED_QUERIES)
    return live


def check_crashed_query(store: Store, now: int, enabled: bool = True) -> str | None:
    """Denylist the query a dead worker left behind; its name, or None.

    Call once when a worker starts.  ``enabled`` is whether the watchdog runs:
    without it the leftover mark is only cleared, as in osquery.  The query is
    denylisted until ``now + DENYLIST_DURATION``.
    """
    with store.transaction():
        name = store.get(CONFIGURATIONS, EXECUTING_QUERY)
        if name is None:
            return None
        store.delete(CONFIGURATIONS, EXECUTING_QUERY)
        if not enabled or not name:
            return None
        entries = denylisted_queries(store, now)
        entries.pop(name, None)  # re-added last with the new expiry
        entries[name] = now + DENYLIST_DURATION
        store.put(CONFIGURATIONS, FAILED_QUERIES, format_failed_queries(entries))
    return name


def is_denylisted(store: Store, name: str, now: int, denylist: bool = True) -> bool:
    """Whether the scheduler skips ``name`` at ``now``.

    ``denylist`` is the query's ``"denylist"`` option: a query with
    ``"denylist": false`` is never skipped, even when it is on the list.
    """
    if not denylist:
        return False
    return name in denylisted_queries(store, now)
