"""Differential results as osquery computes them.

For each scheduled query the last result set is kept with an epoch and a
counter (osquery-reference §3.4):

1. first run, or the stored epoch differs from ``--schedule_epoch``: every row
   is ``added``, the counter is 0;
2. otherwise a multiset diff of old and new rows: ``removed`` are old rows not
   in new, ``added`` new rows not in old; if anything changed the counter grows
   by one and the new set replaces the old;
3. nothing changed: nothing is logged and the counter stays.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class QueryState:
    """What is persisted per query between runs."""

    rows: list[Row]
    epoch: int
    counter: int

    def to_json(self) -> str:
        return json.dumps({"rows": self.rows, "epoch": self.epoch, "counter": self.counter},
                          separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> QueryState:
        data = json.loads(text)
        return cls(list(data["rows"]), int(data["epoch"]), int(data["counter"]))


@dataclass(frozen=True, slots=True)
class DiffResult:
    added: list[Row] = field(default_factory=list)
    removed: list[Row] = field(default_factory=list)
    counter: int = 0
    # True when the new rows must replace the stored ones.
    changed: bool = False

    @property
    def empty(self) -> bool:
        return not self.added and not self.removed


def _key(row: Row) -> tuple[tuple[str, Any], ...]:
    # Whole-row equality on typed values, independent of key order.  Values
    # are scalars (str, int, float, None), so the sorted items are hashable.
    return tuple(sorted(row.items()))


def diff_rows(old: Sequence[Row], new: Sequence[Row]) -> tuple[list[Row], list[Row]]:
    """Multiset difference: (removed, added), each in its original row order."""
    old_counts = Counter(_key(r) for r in old)
    new_counts = Counter(_key(r) for r in new)
    removed: list[Row] = []
    budget = old_counts - new_counts
    for row in old:
        k = _key(row)
        if budget[k] > 0:
            budget[k] -= 1
            removed.append(row)
    added: list[Row] = []
    budget = new_counts - old_counts
    for row in new:
        k = _key(row)
        if budget[k] > 0:
            budget[k] -= 1
            added.append(row)
    return removed, added


def compute(previous: QueryState | None, rows: list[Row], epoch: int) -> tuple[DiffResult, QueryState]:
    """The log-worthy difference of a run and the state to persist after it."""
    if previous is None or previous.epoch != epoch:
        return DiffResult(added=list(rows), counter=0, changed=True), QueryState(list(rows), epoch, 0)
    removed, added = diff_rows(previous.rows, rows)
    if not removed and not added:
        return DiffResult(counter=previous.counter), previous
    counter = previous.counter + 1
    return (DiffResult(added=added, removed=removed, counter=counter, changed=True),
            QueryState(list(rows), epoch, counter))
