"""When each scheduled query runs: intervals, splay, startup priority.

osquery ticks once a second and runs a query when ``unix_time % splayed == 0``.
The splayed interval is chosen once per query, at random within
``interval ± schedule_splay_percent %``, and kept in the store so restarts do
not reshuffle the schedule.  Here each query keeps the next multiple of its
splayed interval as its due time, so a slow query delays the others but never
makes them skip a run.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable

from hostql.agent.config import ScheduledQuery
from hostql.agent.store import CONFIGURATIONS, Store

DEFAULT_SPLAY_PERCENT = 10


def splay(interval: int, percent: int, rng: Callable[[int, int], int] = random.randint) -> int:
    """A random interval within ``interval ± percent %`` (at least 1 second)."""
    if percent <= 1:
        # osquery resets nonsensical values to the default.
        percent = DEFAULT_SPLAY_PERCENT
    spread = interval * percent // 100
    if spread <= 0:
        return max(interval, 1)
    return max(rng(interval - spread, interval + spread), 1)


def splayed_interval(store: Store, name: str, interval: int, percent: int,
                     rng: Callable[[int, int], int] = random.randint) -> int:
    """The persisted splayed interval of ``name``; re-chosen when the interval changes."""
    key = f"interval.{name}"
    known = store.get(CONFIGURATIONS, key)
    if known:
        stored_interval, _, stored_splay = known.partition(":")
        if stored_interval == str(interval) and stored_splay.isdigit() and int(stored_splay) > 0:
            return int(stored_splay)
    value = splay(interval, percent, rng)
    store.put(CONFIGURATIONS, key, f"{interval}:{value}")
    return value


def next_due(now: int, splayed: int) -> int:
    """The first unix time after ``now`` that is a multiple of ``splayed``."""
    return (now // splayed + 1) * splayed


class Schedule:
    """The due times of the scheduled queries of one config."""

    def __init__(self, store: Store, queries: Iterable[ScheduledQuery], now: int, splay_percent: int,
                 rng: Callable[[int, int], int] = random.randint, previous: Schedule | None = None) -> None:
        self.queries: dict[str, ScheduledQuery] = {}
        self.splayed: dict[str, int] = {}
        self.due: dict[str, int] = {}
        for query in queries:
            splayed = splayed_interval(store, query.name, query.interval, splay_percent, rng)
            self.queries[query.name] = query
            self.splayed[query.name] = splayed
            if previous is not None and previous.splayed.get(query.name) == splayed:
                # A config update keeps a query's next run: one that just ran
                # must not run again in the same second.
                self.due[query.name] = previous.due[query.name]
            else:
                self.due[query.name] = next_due(now - 1, splayed) if now % splayed == 0 else next_due(now, splayed)

    def startup_queries(self) -> list[ScheduledQuery]:
        """Queries with a ``startup_priority``: run once at start, lowest first."""
        ranked = [q for q in self.queries.values() if q.startup_priority is not None]
        return sorted(ranked, key=lambda q: (q.startup_priority or 0, q.name))

    def pop_due(self, now: int) -> list[ScheduledQuery]:
        """Queries due at or before ``now``, in name order; their next runs are set."""
        ready = sorted(name for name, when in self.due.items() if when <= now)
        for name in ready:
            self.due[name] = next_due(now, self.splayed[name])
        return [self.queries[name] for name in ready]

    def seconds_until_next(self, now: float) -> float:
        if not self.due:
            return 1.0
        return max(min(self.due.values()) - now, 0.0)
