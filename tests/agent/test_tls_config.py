"""The tls config source: fetch, re-enrollment, refresh policy, backup."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from tls_server import CONFIG, TLSTestServer, make_agent

from hostql.agent.config_sources import ConfigError, RawSource
from hostql.agent.remote.tls_config import BACKUP_KEY, RefreshPolicy, TLSConfigSource
from hostql.agent.store import CONFIGURATIONS


@pytest.fixture
def server(tmp_path: Path) -> Iterator[TLSTestServer]:
    with TLSTestServer(tmp_path) as srv:
        srv.state.config = {"schedule": {"q": {"query": "SELECT 1", "interval": 60}}, "node_invalid": False}
        yield srv


def test_fetch_posts_the_node_key_and_returns_the_body(server: TLSTestServer, tmp_path: Path) -> None:
    agent = make_agent(server, tmp_path, config_tls_max_attempts=1)
    try:
        source = TLSConfigSource(agent.flags, agent.client, agent.store)
        (raw,) = source.fetch()
    finally:
        agent.close()
    assert raw == RawSource("tls_plugin", json.dumps(server.state.config))
    assert source.name == "tls"
    (req,) = server.to(CONFIG)
    assert req.body == {"node_key": "node-key-1"}
    assert req.headers["authorization"] == "NodeKey node-key-1"


def test_node_invalid_inside_the_config_reenrolls_once(server: TLSTestServer, tmp_path: Path) -> None:
    agent = make_agent(server, tmp_path)
    try:
        source = TLSConfigSource(agent.flags, agent.client, agent.store)
        source.load()
        server.invalid_once.add(CONFIG)
        text = source.load()
    finally:
        agent.close()
    assert json.loads(text) == server.state.config
    assert server.enrollments() == 2
    assert agent.sleeps == [1]


def test_failed_fetch_raises_config_error(server: TLSTestServer, tmp_path: Path) -> None:
    agent = make_agent(server, tmp_path, config_tls_max_attempts=2)
    try:
        source = TLSConfigSource(agent.flags, agent.client, agent.store)
        source.load()
        server.handlers[CONFIG] = lambda r: b"not json"
        with pytest.raises(ConfigError, match="not JSON"):
            source.load()
    finally:
        agent.close()
    assert agent.sleeps == [1]
    assert len(server.to(CONFIG)) == 3


def test_backup_is_used_when_the_first_fetch_fails(server: TLSTestServer, tmp_path: Path) -> None:
    agent = make_agent(server, tmp_path, config_enable_backup=True)
    try:
        good = TLSConfigSource(agent.flags, agent.client, agent.store).load()
        assert agent.store.get(CONFIGURATIONS, BACKUP_KEY) == good
    finally:
        agent.close()
    server.down()
    restarted = make_agent(server, tmp_path, config_enable_backup=True, config_tls_max_attempts=1)
    try:
        source = TLSConfigSource(restarted.flags, restarted.client, restarted.store)
        assert source.load() == good
        assert source.used_backup
        with pytest.raises(ConfigError):  # only the first fetch of a process falls back
            source.load()
    finally:
        restarted.close()


def test_no_backup_without_the_flag(server: TLSTestServer, tmp_path: Path) -> None:
    agent = make_agent(server, tmp_path)
    try:
        TLSConfigSource(agent.flags, agent.client, agent.store).load()
        assert agent.store.get(CONFIGURATIONS, BACKUP_KEY) is None
        server.down()
        with pytest.raises(ConfigError):
            TLSConfigSource(agent.flags, agent.client, agent.store).load()
    finally:
        agent.close()


def test_string_packs_cannot_be_resolved(server: TLSTestServer, tmp_path: Path) -> None:
    agent = make_agent(server, tmp_path)
    try:
        with pytest.raises(ConfigError, match=r"packs\.p1"):
            TLSConfigSource(agent.flags, agent.client, agent.store).resolve_pack("p1", "/x.conf", "tls_plugin")
    finally:
        agent.close()


def test_refresh_policy() -> None:
    now = [1000.0]
    never = RefreshPolicy(0, 300, clock=lambda: now[0])
    never.record(False)
    assert never.seconds_until_next() is None
    policy = RefreshPolicy(60, 10, clock=lambda: now[0])
    assert policy.seconds_until_next() == 0.0
    policy.record(True)
    now[0] += 15
    assert policy.seconds_until_next() == 45
    policy.record(False)  # accelerated until a fetch works
    assert policy.seconds_until_next() == 10
    now[0] += 10
    policy.record(False)
    assert policy.seconds_until_next() == 10
    policy.record(True)
    assert policy.seconds_until_next() == 60


def test_source_records_outcomes_in_its_policy(server: TLSTestServer, tmp_path: Path) -> None:
    agent = make_agent(server, tmp_path, config_refresh=120, config_accelerated_refresh=30, config_tls_max_attempts=1)
    try:
        source = TLSConfigSource(agent.flags, agent.client, agent.store)
        source.load()
        assert 119 <= (source.policy.seconds_until_next() or 0) <= 120
        server.down()
        with pytest.raises(ConfigError):
            source.load()
        assert 29 <= (source.policy.seconds_until_next() or 0) <= 30
    finally:
        agent.close()
