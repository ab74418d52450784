"""The node-key cache never brings back a host invalidated during its lookup."""

from __future__ import annotations

from hostql.server.services.checkin import HostCache
from hostql.server.storage.models import Host


def _host(host_id: int) -> Host:
    return Host(id=host_id, osquery_host_id=f"h{host_id}", node_key=f"key-{host_id}")


def test_a_lookup_older_than_an_invalidation_is_not_cached() -> None:
    cache = HostCache(ttl=30)
    before = cache.generation  # a reader starts its database lookup here ...
    cache.invalidate_host(7)  # ... the host is deleted meanwhile ...
    cache.put("key-7", _host(7), before)  # ... and the stale row must not come back
    assert cache.get("key-7") is None


def test_a_lookup_after_the_last_invalidation_is_cached() -> None:
    cache = HostCache(ttl=30)
    cache.invalidate_host(7)
    generation = cache.generation
    cache.put("key-7", _host(7), generation)
    got = cache.get("key-7")
    assert got is not None and got.id == 7
