"""The node-key cache never brings back a host invalidated during its lookup or before its commit."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import select, update

from hostql.server.services import checkin as checkin_module
from hostql.server.services.checkin import HostCache, checkin_for
from hostql.server.state import ServerState
from hostql.server.storage.db import Database
from hostql.server.storage.models import Host


def _host(host_id: int) -> Host:
    return Host(id=host_id, osquery_host_id=f"h{host_id}", node_key=f"key-{host_id}")


def test_a_lookup_older_than_an_invalidation_is_not_cached() -> None:
    cache = HostCache(ttl=30)
    before = cache.generation  # a reader starts its database lookup here ...
    cache.invalidate_host(7)  # ... the host is deleted meanwhile ...
    cache.put("key-7", _host(7), before)  # ... and the stale row must not come back
    assert cache.get("key-7") is None


def test_other_hosts_changing_does_not_stop_a_lookup_being_cached() -> None:
    # Under load other hosts are invalidated all the time; a lookup must still be cached
    # unless its own host or key (or everything) was invalidated since it began.
    cache = HostCache(ttl=30)
    before = cache.generation
    cache.invalidate_host(8)
    cache.invalidate_key("key-9")
    cache.put("key-7", _host(7), before)
    assert cache.get("key-7") is not None
    cache.invalidate_key("key-7")
    cache.put("key-7", _host(7), before)  # its key was invalidated after the lookup began
    assert cache.get("key-7") is None
    before = cache.generation
    cache.clear()
    cache.put("key-7", _host(7), before)
    assert cache.get("key-7") is None


def test_forgetting_old_invalidation_marks_keeps_lookups_in_flight_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checkin_module, "INVALIDATIONS_KEPT", 3)
    cache = HostCache(ttl=30)
    before = cache.generation
    for host_id in range(10, 15):  # more marks than kept: all are forgotten
        cache.invalidate_host(host_id)
    cache.put("key-7", _host(7), before)
    assert cache.get("key-7") is None
    now = cache.generation
    cache.put("key-7", _host(7), now)
    assert cache.get("key-7") is not None


def test_a_lookup_after_the_last_invalidation_is_cached() -> None:
    cache = HostCache(ttl=30)
    cache.invalidate_host(7)
    generation = cache.generation
    cache.put("key-7", _host(7), generation)
    got = cache.get("key-7")
    assert got is not None and got.id == 7


def _state_with_host(tmp_path: Path, node_key: str = "key-1") -> ServerState:
    state = ServerState(Database(f"sqlite:///{tmp_path}/hosts.db"),
                        settings=SimpleNamespace(host_cache_ttl=600.0, seen_time_flush_interval=0))
    state.database.create_all()
    with state.database.session() as session:
        session.add(Host(osquery_host_id="h1", node_key=node_key, hostname="one"))
    return state


def test_a_lookup_between_a_delete_and_its_commit_is_forgotten_at_the_commit(tmp_path: Path) -> None:
    state = _state_with_host(tmp_path)
    helper = checkin_for(state)
    try:
        with state.database.session() as session, ThreadPoolExecutor(1) as other_request:
            session.delete(session.scalars(select(Host)).one())
            session.flush()
            # Another request still reads the committed row (WAL snapshot) and caches it ...
            assert other_request.submit(helper.host_for_key, "key-1").result() is not None
        # ... which must not keep the deleted host's key working for the cache TTL.
        assert helper.host_for_key("key-1") is None
    finally:
        state.database.dispose()


def test_a_rolled_back_delete_leaves_the_host_working(tmp_path: Path) -> None:
    state = _state_with_host(tmp_path)
    helper = checkin_for(state)
    try:
        with pytest.raises(RuntimeError), state.database.session() as session:
            session.delete(session.scalars(select(Host)).one())
            session.flush()
            raise RuntimeError("the request failed")
        host = helper.host_for_key("key-1")
        assert host is not None and host.hostname == "one"
    finally:
        state.database.dispose()


def test_committed_host_changes_are_announced_to_other_instances(tmp_path: Path) -> None:
    state = _state_with_host(tmp_path)
    announced: list[set[int] | None] = []
    helper = checkin_for(state)
    helper.cache.announce = announced.append
    try:
        with state.database.session() as session:
            host = session.scalars(select(Host)).one()
            host.hostname = "renamed"
            session.flush()
            assert announced == []  # not before the commit: other instances would re-read the old row
        assert announced == [{host.id}]
        with state.database.session() as session:
            session.execute(update(Host).values(hostname="bulk"))
        assert announced[-1] is None  # a bulk statement: any host may have changed
    finally:
        state.database.dispose()


def test_invalidation_by_host_and_expiry_leave_no_entries_behind() -> None:
    now = [0.0]
    cache = HostCache(ttl=30, clock=lambda: now[0])
    cache.put("key-1", _host(1))
    cache.put("old-key-1", _host(1))  # a re-enrolled host may have had two keys
    cache.put("key-2", _host(2))
    cache.put("key-2", _host(3))  # the key now belongs to another host
    cache.invalidate_host(1)
    assert cache.get("key-1") is None and cache.get("old-key-1") is None
    cache.invalidate_host(2)
    got = cache.get("key-2")
    assert got is not None and got.id == 3
    now[0] = 31.0
    assert cache.get("key-2") is None and len(cache) == 0  # expired entries go on their next lookup
