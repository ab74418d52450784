"""Enrollment and node keys against the real TLS test server; host identifiers."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tls_server import CONFIG, ENROLL, TLSTestServer, make_agent

from hostql import OSQUERY_VERSION
from hostql.agent.flags import FlagValues
from hostql.agent.remote.enroll import EnrollError, host_details, platform_type
from hostql.agent.remote.identity import INSTANCE_UUID_KEY, HostIdentity
from hostql.agent.remote.tls_config import TLSConfigSource
from hostql.agent.store import CONFIGURATIONS, Store
from hostql.sql.connection import Connection


@pytest.fixture(scope="module")
def conn() -> Iterator[Connection]:
    c = Connection()
    yield c
    c.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[TLSTestServer]:
    with TLSTestServer(tmp_path) as srv:
        yield srv


def config_call(agent: object) -> object:
    return agent.client.call(CONFIG, lambda key: {"node_key": key})  # type: ignore[attr-defined]


def test_enroll_request_body_and_headers(server: TLSTestServer, tmp_path: Path, conn: Connection) -> None:
    agent = make_agent(server, tmp_path, conn)
    try:
        key = agent.client.enrollment.node_key()
    finally:
        agent.close()
    assert key == "node-key-1"
    (req,) = server.to(ENROLL)
    assert list(req.body) == ["enroll_secret", "host_identifier", "platform_type", "host_details"]
    assert req.body["enroll_secret"] == server.state.secret  # file content, trimmed
    assert req.body["host_identifier"] == "test-host"
    if sys.platform.startswith("linux"):
        assert req.body["platform_type"] == "9"
    details = req.body["host_details"]
    assert set(details) <= {"os_version", "osquery_info", "platform_info", "system_info"}
    assert {"os_version", "osquery_info", "system_info"} <= set(details)
    assert details["osquery_info"]["version"] == OSQUERY_VERSION
    for table, row in details.items():
        assert list(row) == sorted(row), table
        assert all(isinstance(v, str) for v in row.values()), table
    assert req.headers["content-type"] == "application/json"
    assert req.headers["user-agent"] == f"osquery/{OSQUERY_VERSION}"
    assert "authorization" not in req.headers


def test_platform_types() -> None:
    assert platform_type("linux") == "9"
    assert platform_type("darwin") == "17"
    assert platform_type("win32") == "2"


def test_host_details_omit_tables_without_rows(conn: Connection) -> None:
    class Runner:
        def execute(self, sql: str) -> object:
            if "platform_info" in sql:
                return conn.execute("SELECT * FROM platform_info WHERE 0")
            if "system_info" in sql:
                return conn.execute("SELECT * FROM no_such_table")
            return conn.execute(sql)

    details = host_details(Runner())  # type: ignore[arg-type]
    assert set(details) == {"os_version", "osquery_info"}


def test_node_key_is_stored_and_reused_after_restart(server: TLSTestServer, tmp_path: Path) -> None:
    agent = make_agent(server, tmp_path)
    try:
        config_call(agent)
        config_call(agent)
        assert agent.store.get(CONFIGURATIONS, "nodeKey") == "node-key-1"
        assert (agent.store.get(CONFIGURATIONS, "nodeKeyTime") or "").isdigit()
    finally:
        agent.close()
    again = make_agent(server, tmp_path)  # same store file: a restart
    try:
        config_call(again)
    finally:
        again.close()
    assert server.enrollments() == 1
    configs = server.to(CONFIG)
    assert [r.body["node_key"] for r in configs] == ["node-key-1"] * 3
    assert all(r.headers["authorization"] == "NodeKey node-key-1" for r in configs)


def test_enroll_always_enrolls_once_per_process(server: TLSTestServer, tmp_path: Path) -> None:
    make_agent(server, tmp_path).close()
    first = make_agent(server, tmp_path)
    try:
        config_call(first)
    finally:
        first.close()
    agent = make_agent(server, tmp_path, enroll_always=True)
    try:
        config_call(agent)
        config_call(agent)
    finally:
        agent.close()
    assert server.enrollments() == 2
    assert [r.body["node_key"] for r in server.to(CONFIG)] == ["node-key-1", "node-key-2", "node-key-2"]


def test_disable_enrollment_sends_an_empty_key(server: TLSTestServer, tmp_path: Path) -> None:
    server.state.check_keys = False
    agent = make_agent(server, tmp_path, disable_enrollment=True)
    try:
        config_call(agent)
    finally:
        agent.close()
    assert server.enrollments() == 0
    (req,) = server.to(CONFIG)
    assert req.body == {"node_key": ""}
    assert "authorization" not in req.headers


def test_secret_from_environment(server: TLSTestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOSTQL_TEST_SECRET", server.state.secret)
    agent = make_agent(server, tmp_path, enroll_secret_path="", enroll_secret_env="HOSTQL_TEST_SECRET")
    try:
        assert agent.client.enrollment.node_key() == "node-key-1"
    finally:
        agent.close()
    assert server.to(ENROLL)[0].body["enroll_secret"] == server.state.secret


def test_enroll_retries_with_capped_waits_then_gives_up(server: TLSTestServer, tmp_path: Path) -> None:
    agent = make_agent(server, tmp_path, tls_enroll_max_attempts=5, tls_enroll_max_interval=5)
    server.state.secret = "the server now wants another secret"
    try:
        with pytest.raises(EnrollError, match="5 attempts"):
            config_call(agent)
        assert agent.sleeps == [1, 4, 5, 5]
        assert agent.store.get(CONFIGURATIONS, "nodeKey") is None
    finally:
        agent.close()
    assert server.enrollments() == 5
    assert server.to(CONFIG) == []


def test_enroll_succeeds_after_failures(server: TLSTestServer, tmp_path: Path) -> None:
    real = server.handlers[ENROLL]
    calls = []

    def handler(record: object) -> object:
        calls.append(1)
        return {"error": "busy"} if len(calls) < 3 else real(record)  # type: ignore[arg-type]

    server.handlers[ENROLL] = handler
    agent = make_agent(server, tmp_path)
    try:
        assert agent.client.enrollment.node_key() == "node-key-1"
        assert agent.sleeps == [1, 4]
    finally:
        agent.close()


def test_node_invalid_at_config_reenrolls_once(server: TLSTestServer, tmp_path: Path) -> None:
    agent = make_agent(server, tmp_path)
    try:
        source = TLSConfigSource(agent.flags, agent.client, agent.store)
        source.load()
        server.revoke_keys()
        assert source.load()
        assert server.enrollments() == 2
        assert [r.body["node_key"] for r in server.to(CONFIG)] == ["node-key-1", "node-key-1", "node-key-2"]
        assert agent.store.get(CONFIGURATIONS, "nodeKey") == "node-key-2"
    finally:
        agent.close()


def test_a_stale_refusal_does_not_drop_the_new_key(server: TLSTestServer, tmp_path: Path) -> None:
    agent = make_agent(server, tmp_path)
    try:
        enrollment = agent.client.enrollment
        old = enrollment.node_key()
        enrollment.invalidate(old)  # first thread to see node_invalid
        new = enrollment.node_key()
        enrollment.invalidate(old)  # a second thread, refused with the old key too
        assert enrollment.node_key() == new != old
    finally:
        agent.close()
    assert server.enrollments() == 2


def test_disable_reenrollment_keeps_the_key(server: TLSTestServer, tmp_path: Path) -> None:
    agent = make_agent(server, tmp_path, disable_reenrollment=True)
    try:
        config_call(agent)
        server.revoke_keys()
        with pytest.raises(Exception, match="Invalid node key"):
            agent.client.call(CONFIG, lambda key: {"node_key": key}, attempts=2)
        assert agent.store.get(CONFIGURATIONS, "nodeKey") == "node-key-1"
    finally:
        agent.close()
    assert server.enrollments() == 1


# host identifiers


def identity(tmp_path: Path, store: Store | None = None, **flags: object) -> HostIdentity:
    return HostIdentity(FlagValues(flags), store, hostname_fn=lambda: "box", uuid_fn=lambda: "HW-UUID")  # type: ignore[arg-type]


def test_identifier_modes(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    try:
        assert identity(tmp_path, store).host_identifier() == "box"
        assert identity(tmp_path, store, host_identifier="uuid").host_identifier() == "HW-UUID"
        assert identity(tmp_path, store, host_identifier="specified",
                        specified_identifier="web-7").host_identifier() == "web-7"
        assert identity(tmp_path, store, host_identifier="specified").host_identifier() == "box"
        assert identity(tmp_path, store, host_identifier="bogus").host_identifier() == "box"
        eph = identity(tmp_path, store, host_identifier="ephemeral").host_identifier()
        assert eph == identity(tmp_path, None, host_identifier="ephemeral").host_identifier() != "box"
        inst = identity(tmp_path, store, host_identifier="instance").host_identifier()
        assert inst == store.get(CONFIGURATIONS, INSTANCE_UUID_KEY)
        assert inst not in ("box", eph)
    finally:
        store.close()
    again = Store(tmp_path / "s.db")
    try:
        assert identity(tmp_path, again, host_identifier="instance").host_identifier() == inst
    finally:
        again.close()


def test_uuid_is_made_up_and_kept_without_hardware_uuid(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    try:
        flags = FlagValues({"host_identifier": "uuid"})
        first = HostIdentity(flags, store, uuid_fn=lambda: "").host_identifier()
        second = HostIdentity(flags, store, uuid_fn=lambda: "").host_identifier()
        assert first == second and len(first) == 36
    finally:
        store.close()
