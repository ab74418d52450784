"""A query running when the worker died is skipped for a day, as osquery does."""

from __future__ import annotations

from pathlib import Path

import pytest

from hostql.agent.denylist import (
    DENYLIST_DURATION,
    EXECUTING_QUERY,
    FAILED_QUERIES,
    ExecutingQuery,
    check_crashed_query,
    denylisted_queries,
    format_failed_queries,
    is_denylisted,
    parse_failed_queries,
)
from hostql.agent.store import CONFIGURATIONS, Store

NOW = 1_700_000_000


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "state.db")


def test_executing_query_marks_the_run_and_clears_it(store: Store) -> None:
    with ExecutingQuery(store, "pack_it_users"):
        assert store.get(CONFIGURATIONS, EXECUTING_QUERY) == "pack_it_users"
    assert store.get(CONFIGURATIONS, EXECUTING_QUERY) is None


def test_an_exception_is_not_a_crash(store: Store) -> None:
    with pytest.raises(ValueError), ExecutingQuery(store, "bad_sql"):
        raise ValueError("no such table")
    assert store.get(CONFIGURATIONS, EXECUTING_QUERY) is None
    assert check_crashed_query(store, NOW) is None


def test_leftover_query_is_denylisted_for_a_day(store: Store) -> None:
    store.put(CONFIGURATIONS, EXECUTING_QUERY, "pack_it_hog")
    assert check_crashed_query(store, NOW, enabled=True) == "pack_it_hog"
    assert store.get(CONFIGURATIONS, FAILED_QUERIES) == f"pack_it_hog:{NOW + 86400}"
    assert DENYLIST_DURATION == 86400
    # The mark is consumed: a second start finds nothing new.
    assert store.get(CONFIGURATIONS, EXECUTING_QUERY) is None
    assert check_crashed_query(store, NOW + 5) is None
    assert is_denylisted(store, "pack_it_hog", NOW + 10)
    assert is_denylisted(store, "pack_it_hog", NOW + 86399)
    assert not is_denylisted(store, "pack_it_other", NOW + 10)


def test_failed_queries_keeps_osquery_format_with_several_entries(store: Store) -> None:
    store.put(CONFIGURATIONS, EXECUTING_QUERY, "first")
    check_crashed_query(store, NOW)
    store.put(CONFIGURATIONS, EXECUTING_QUERY, "second")
    check_crashed_query(store, NOW + 100)
    assert store.get(CONFIGURATIONS, FAILED_QUERIES) == f"first:{NOW + 86400}:second:{NOW + 100 + 86400}"
    # The same query failing again gets a new expiry, not a second entry.
    store.put(CONFIGURATIONS, EXECUTING_QUERY, "first")
    check_crashed_query(store, NOW + 200)
    assert parse_failed_queries(store.get(CONFIGURATIONS, FAILED_QUERIES) or "") == {
        "second": NOW + 100 + 86400,
        "first": NOW + 200 + 86400,
    }


def test_denylist_false_queries_are_never_skipped(store: Store) -> None:
    store.put(CONFIGURATIONS, EXECUTING_QUERY, "must_run")
    assert check_crashed_query(store, NOW) == "must_run"
    assert is_denylisted(store, "must_run", NOW + 1, denylist=True)
    assert not is_denylisted(store, "must_run", NOW + 1, denylist=False)


def test_expired_entries_are_pruned(store: Store) -> None:
    store.put(CONFIGURATIONS, FAILED_QUERIES, f"old:{NOW - 1}:live:{NOW + 50}")
    assert not is_denylisted(store, "old", NOW)
    assert is_denylisted(store, "live", NOW)
    assert store.get(CONFIGURATIONS, FAILED_QUERIES) == f"live:{NOW + 50}"
    # Expiry is exclusive: at the expiry second the query runs again.
    assert not is_denylisted(store, "live", NOW + 50)
    assert store.get(CONFIGURATIONS, FAILED_QUERIES) is None


def test_pruning_happens_when_a_new_entry_is_added(store: Store) -> None:
    store.put(CONFIGURATIONS, FAILED_QUERIES, f"old:{NOW - 10}")
    store.put(CONFIGURATIONS, EXECUTING_QUERY, "new")
    check_crashed_query(store, NOW)
    assert store.get(CONFIGURATIONS, FAILED_QUERIES) == f"new:{NOW + 86400}"
    assert denylisted_queries(store, NOW) == {"new": NOW + 86400}


def test_without_the_watchdog_the_mark_is_cleared_not_denylisted(store: Store) -> None:
    store.put(CONFIGURATIONS, EXECUTING_QUERY, "pack_it_hog")
    assert check_crashed_query(store, NOW, enabled=False) is None
    assert store.get(CONFIGURATIONS, EXECUTING_QUERY) is None
    assert store.get(CONFIGURATIONS, FAILED_QUERIES) is None
    assert not is_denylisted(store, "pack_it_hog", NOW)


def test_state_survives_a_reopen(tmp_path: Path) -> None:
    first = Store(tmp_path / "state.db")
    ExecutingQuery(first, "never_cleared").__enter__()
    first.close()  # the process "dies" inside the query: nothing clears the mark
    again = Store(tmp_path / "state.db")
    assert again.get(CONFIGURATIONS, EXECUTING_QUERY) == "never_cleared"


def test_parse_skips_malformed_pairs() -> None:
    assert parse_failed_queries("") == {}
    assert parse_failed_queries("a:10:b:x:c:30") == {"a": 10, "c": 30}
    assert parse_failed_queries("dangling") == {}
    assert parse_failed_queries("a:10:tail") == {"a": 10}
    assert format_failed_queries({"a": 10, "c": 30}) == "a:10:c:30"
