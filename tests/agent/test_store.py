"""The local store keeps state and undelivered lines across restarts."""

from __future__ import annotations

from pathlib import Path

import pytest

from hostql.agent.store import Store


def test_key_values_survive_reopen(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    store.put("configurations", "nodeKey", "abc")
    store.put("queries", "q1", "{}")
    store.put("queries", "q2", "{}")
    store.close()
    again = Store(tmp_path / "state.db")
    assert again.get("configurations", "nodeKey") == "abc"
    assert [k for k, _ in again.items("queries", "q")] == ["q1", "q2"]
    again.delete("queries", "q1")
    assert again.get("queries", "q1") is None


def test_transaction_is_all_or_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    with pytest.raises(RuntimeError), store.transaction():
        store.put("queries", "q", "new")
        store.enqueue(["filesystem"], "result", ["line"])
        raise RuntimeError("crash in the middle")
    assert store.get("queries", "q") is None
    assert store.pending("filesystem") == []


def test_outbox_is_per_sink_and_ordered(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    with store.transaction():
        store.enqueue(["filesystem", "tls"], "result", ["a", "b"])
        store.enqueue(["tls"], "status", ["s"])
    fs = store.pending("filesystem")
    assert [line for _, _, line in fs] == ["a", "b"]
    store.delivered([fs[0][0]])
    assert [line for _, _, line in store.pending("filesystem")] == ["b"]
    assert [line for _, _, line in store.pending("tls", "status")] == ["s"]
    assert store.pending_count("tls") == 3


def test_purge_keeps_the_newest(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    store.enqueue(["tls"], "result", [str(i) for i in range(10)])
    assert store.purge_oldest("tls", keep=3) == 7
    assert [line for _, _, line in store.pending("tls")] == ["7", "8", "9"]


def test_unopenable_store_gives_a_clear_error(tmp_path: Path) -> None:
    from hostql.agent.store import StoreError

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot open the state store"):
        Store(blocker / "state.db")
