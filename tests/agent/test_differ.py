"""Differential results: multiset diff, epoch and counter (osquery-reference §3.4)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hostql.agent.differ import QueryState, compute, diff_rows


def test_first_run_adds_everything_with_counter_zero() -> None:
    result, state = compute(None, [{"a": 1}, {"a": 2}], epoch=0)
    assert result.added == [{"a": 1}, {"a": 2}] and result.removed == [] and result.counter == 0
    assert state == QueryState([{"a": 1}, {"a": 2}], 0, 0)


def test_changes_advance_the_counter() -> None:
    _, state = compute(None, [{"a": 1}, {"a": 2}], epoch=0)
    result, state = compute(state, [{"a": 2}, {"a": 3}], epoch=0)
    assert result.removed == [{"a": 1}] and result.added == [{"a": 3}] and result.counter == 1
    result, state = compute(state, [{"a": 3}], epoch=0)
    assert result.removed == [{"a": 2}] and result.added == [] and result.counter == 2


def test_no_change_logs_nothing_and_keeps_the_counter() -> None:
    _, state = compute(None, [{"a": 1}], epoch=0)
    _, state = compute(state, [{"a": 2}], epoch=0)
    result, same = compute(state, [{"a": 2}], epoch=0)
    assert result.empty and not result.changed and same is state and state.counter == 1


def test_new_epoch_resets() -> None:
    _, state = compute(None, [{"a": 1}], epoch=0)
    _, state = compute(state, [{"a": 2}], epoch=0)
    result, state = compute(state, [{"a": 2}], epoch=7)
    assert result.added == [{"a": 2}] and result.counter == 0 and state.epoch == 7


def test_duplicates_are_counted() -> None:
    removed, added = diff_rows([{"a": 1}, {"a": 1}], [{"a": 1}, {"a": 1}, {"a": 1}])
    assert removed == [] and added == [{"a": 1}]


def test_key_order_does_not_matter() -> None:
    assert diff_rows([{"a": 1, "b": 2}], [{"b": 2, "a": 1}]) == ([], [])


def test_state_round_trips_through_json() -> None:
    state = QueryState([{"a": "é", "n": None, "i": 3}], 2, 5)
    assert QueryState.from_json(state.to_json()) == state


rows = st.lists(st.fixed_dictionaries({"k": st.integers(0, 3), "v": st.sampled_from(["x", "y"])}), max_size=8)


@given(rows, rows)
def test_applying_the_diff_gives_the_new_multiset(old: list[dict[str, object]], new: list[dict[str, object]]) -> None:
    removed, added = diff_rows(old, new)
    remaining = list(old)
    for row in removed:
        remaining.remove(row)
    rebuilt = remaining + added
    def key(row: dict[str, object]) -> str:
        return repr(sorted(row.items()))

    assert sorted(map(key, rebuilt)) == sorted(map(key, new))
