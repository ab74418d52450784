"""Distributed read/write: vitals from real rows, labels, policies, refetch, status, the hot path."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from osquery_agent_helpers import add_secret, answer_all, configure, enroll, real_host_details, real_rows
from server_helpers import recorded_statements
from sqlalchemy import func, select

import hostql
from hostql.server.services import checkin, host_status
from hostql.server.services.detail_queries import DETAIL_QUERIES, platform_family, queries_for
from hostql.server.state import ServerState
from hostql.server.storage.db import Database
from hostql.server.storage.models import (
    Host,
    HostSoftware,
    HostUser,
    Label,
    LabelMembership,
    Policy,
    PolicyMembership,
    Software,
)

THIS_PLATFORM = str(hostql.query("SELECT platform FROM os_version")[0]["platform"])


@pytest.fixture(autouse=True)
def _settings(state: ServerState, tmp_path: Path) -> None:
    configure(state, tmp_path)


def _read(client: TestClient, key: str) -> dict[str, Any]:
    body: dict[str, Any] = client.post("/api/osquery/distributed/read", json={"node_key": key}).json()
    assert "error" not in body, body
    return body


def _write(client: TestClient, key: str, body: dict[str, Any]) -> None:
    reply = client.post("/api/osquery/distributed/write", json={"node_key": key, **body})
    assert reply.status_code == 200 and reply.json() == {}, reply.text


def _host(database: Database) -> Host:
    with database.session() as session:
        return session.scalars(select(Host)).one()


def test_platform_families() -> None:
    assert platform_family("ubuntu") == platform_family("rhel") == "linux"
    assert platform_family("darwin") == "darwin" and platform_family("windows") == "windows"
    assert platform_family("") == ""
    assert platform_family(THIS_PLATFORM) == "linux"


@pytest.mark.parametrize("query", [q for q in DETAIL_QUERIES if q.applies_to("linux")], ids=lambda q: q.name)
def test_linux_detail_sql_runs_here(query: Any) -> None:
    rows = hostql.query(query.sql)
    if query.name in ("system_info", "os_version", "osquery_info", "uptime", "disk_space_unix", "kernel_info"):
        assert len(rows) == 1, query.name
    if query.name in ("users", "software_linux", "osquery_flags"):
        assert rows, query.name
    hostql.query(query.discovery)


def test_new_host_gets_detail_queries_and_accelerate_then_vitals_fill(client: TestClient,
                                                                      database: Database) -> None:
    add_secret(database, "s")
    key = enroll(client, "s", "bare-host")  # no host_details: nothing known yet
    first = _read(client, key)
    assert first["accelerate"] == 10
    # platform unknown: the cross-platform queries only
    assert set(first["queries"]) == {"fleet_detail_query_" + q.name for q in queries_for("")}
    assert set(first["discovery"]) == set(first["queries"])
    _write(client, key, answer_all(first["queries"]))
    host = _host(database)
    assert host.platform == THIS_PLATFORM and host.hostname
    assert host.detail_updated_at.year == 1970  # full set still to come

    second = _read(client, key)
    assert "accelerate" not in second
    assert set(second["queries"]) == {"fleet_detail_query_" + q.name for q in queries_for(THIS_PLATFORM)}
    write = answer_all(second["queries"])
    assert all(status == 0 for status in write["statuses"].values()), write["messages"]
    _write(client, key, write)

    system = real_rows("SELECT * FROM system_info")[0]
    osquery = real_rows("SELECT version FROM osquery_info")[0]
    host = _host(database)
    assert host.hostname == system["hostname"]
    assert host.uuid == system["uuid"]
    assert host.memory == int(system["physical_memory"]) > 0
    assert host.cpu_brand == system["cpu_brand"] and host.cpu_logical_cores == int(system["cpu_logical_cores"])
    assert host.osquery_version == osquery["version"]
    assert host.os_version.startswith(str(hostql.query("SELECT name FROM os_version")[0]["name"]))
    assert host.uptime > 0
    assert "." in host.primary_ip or ":" in host.primary_ip
    assert len(host.primary_mac) == 17
    assert 0 < host.gigs_disk_space_available <= host.gigs_total_disk_space
    assert 0 < host.percent_disk_space_available <= 100
    assert host.distributed_interval > 0
    assert host.kernel_version
    assert host.detail_updated_at.year > 2000 and not host.refetch_requested
    with database.session() as session:
        users = list(session.scalars(select(HostUser).where(HostUser.host_id == host.id)))
        assert "root" in {u.username for u in users}
        assert not any(u.shell.endswith("nologin") for u in users)
        software = session.execute(select(Software.name, Software.source).join(
            HostSoftware, HostSoftware.software_id == Software.id).where(HostSoftware.host_id == host.id)).all()
    expected = len(real_rows("SELECT 1 FROM deb_packages WHERE status LIKE '% ok installed'"))
    assert len([s for s in software if s.source == "deb_packages"]) == expected > 0
    assert {s.source for s in software} >= {"deb_packages", "python_packages"}

    # everything is fresh: nothing to do
    third = _read(client, key)
    assert third["queries"] == {} and "accelerate" not in third

    # a refetch brings the detail queries back; answering clears the flag
    with database.session() as session:
        session.scalars(select(Host)).one().refetch_requested = True
    fourth = _read(client, key)
    assert "fleet_detail_query_system_info" in fourth["queries"]
    _write(client, key, answer_all(fourth["queries"]))
    assert not _host(database).refetch_requested
    assert _read(client, key)["queries"] == {}
    # the same software list again adds no duplicate rows
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(HostSoftware)) == len(software)


def test_software_list_changes_are_applied(client: TestClient, database: Database) -> None:
    add_secret(database, "s")
    key = enroll(client, "s", "sw", real_host_details())
    rows = [{"name": "a", "version": "1", "source": "deb_packages", "arch": "amd64", "vendor": "",
             "installed_path": ""},
            {"name": "b", "version": "2", "source": "python_packages", "arch": "", "vendor": "",
             "installed_path": "/p"}]
    _write(client, key, {"queries": {"fleet_detail_query_software_linux": rows},
                         "statuses": {"fleet_detail_query_software_linux": 0}})
    rows[0]["version"] = "1.1"
    _write(client, key, {"queries": {"fleet_detail_query_software_linux": rows},
                         "statuses": {"fleet_detail_query_software_linux": 0}})
    with database.session() as session:
        installed = session.execute(select(Software.name, Software.version, HostSoftware.installed_path).join(
            HostSoftware, HostSoftware.software_id == Software.id)).all()
        assert sorted(installed) == [("a", "1.1", ""), ("b", "2", "/p")]
        assert session.scalar(select(func.count()).select_from(Software)) == 3  # the old version row stays


def test_failed_detail_query_is_skipped(client: TestClient, database: Database) -> None:
    add_secret(database, "s")
    key = enroll(client, "s", "f", real_host_details())
    before = _host(database).hostname
    _write(client, key, {"queries": {"fleet_detail_query_system_info": ""},
                         "statuses": {"fleet_detail_query_system_info": 1},
                         "messages": {"fleet_detail_query_system_info": "no such table"}})
    assert _host(database).hostname == before


def _labels_and_policies(database: Database) -> tuple[int, int, int, int]:
    with database.session() as session:
        yes = Label(name="All", query="SELECT 1;", label_type="builtin")
        no = Label(name="macOS", query="SELECT 1 FROM os_version WHERE platform = 'darwin';", platform="darwin")
        manual = Label(name="Manual", query="", label_membership_type="manual")
        linux = Label(name="Linux", query="SELECT 1 FROM os_version WHERE platform != 'darwin';", platform="linux")
        session.add_all([yes, no, manual, linux])
        passing = Policy(name="pass", query="SELECT 1;")
        failing = Policy(name="fail", query="SELECT 1 WHERE 0;", platform="linux,darwin")
        session.add_all([passing, failing, Policy(name="win", query="SELECT 1;", platform="windows")])
        session.flush()
        return yes.id, linux.id, passing.id, failing.id


def test_label_and_policy_queries(client: TestClient, database: Database) -> None:
    label_all, label_linux, passing, failing = _labels_and_policies(database)
    add_secret(database, "s")
    key = enroll(client, "s", "lp", real_host_details())
    read = _read(client, key)
    labels = {n for n in read["queries"] if n.startswith("fleet_label_query_")}
    policies = {n for n in read["queries"] if n.startswith("fleet_policy_query_")}
    assert labels == {f"fleet_label_query_{label_all}", f"fleet_label_query_{label_linux}"}
    assert policies == {f"fleet_policy_query_{passing}", f"fleet_policy_query_{failing}"}
    answer = answer_all({n: read["queries"][n] for n in labels | policies})
    _write(client, key, answer)
    host = _host(database)
    with database.session() as session:
        members = set(session.scalars(select(LabelMembership.label_id).where(LabelMembership.host_id == host.id)))
        assert members == {label_all, label_linux}
        passes = dict(session.execute(select(PolicyMembership.policy_id, PolicyMembership.passes)).all())
        assert passes == {passing: True, failing: False}
    assert host.label_updated_at.year > 2000 and host.policy_updated_at.year > 2000
    assert not any(n.startswith(("fleet_label", "fleet_policy")) for n in _read(client, key)["queries"])

    # an errored policy is "no decision"; a label that stops matching drops the membership
    _write(client, key, {"queries": {f"fleet_policy_query_{passing}": "", f"fleet_label_query_{label_linux}": []},
                         "statuses": {f"fleet_policy_query_{passing}": 1, f"fleet_label_query_{label_linux}": 0},
                         "messages": {f"fleet_policy_query_{passing}": "boom"}})
    with database.session() as session:
        assert session.get(PolicyMembership, (passing, host.id)).passes is None  # type: ignore[union-attr]
        assert session.get(LabelMembership, (label_linux, host.id)) is None
        assert session.get(LabelMembership, (label_all, host.id)) is not None
    # a failed label query makes no decision
    _write(client, key, {"queries": {f"fleet_label_query_{label_all}": ""},
                         "statuses": {f"fleet_label_query_{label_all}": 1}})
    with database.session() as session:
        assert session.get(LabelMembership, (label_all, host.id)) is not None


def test_labels_due_again_after_interval(client: TestClient, database: Database, state: ServerState) -> None:
    label_all, _, _, _ = _labels_and_policies(database)
    add_secret(database, "s")
    key = enroll(client, "s", "again", real_host_details())
    _write(client, key, answer_all(_read(client, key)["queries"]))
    assert _read(client, key)["queries"] == {}
    later = datetime.utcnow() + timedelta(hours=1, minutes=7)  # past interval + the 10 % jitter
    state.extras["clock"] = lambda: later
    assert f"fleet_label_query_{label_all}" in _read(client, key)["queries"]


def test_live_query_results_are_routed_to_campaigns(client: TestClient, database: Database,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from hostql.server.services import live_targets

    seen: list[tuple[int, list[dict[str, Any]], str | None]] = []

    async def record(state: Any, host: Host, campaign_id: int, rows: list[dict[str, Any]], error: str | None) -> None:
        seen.append((campaign_id, rows, error))

    monkeypatch.setattr(live_targets, "pending_for_host",
                        lambda s, session, h: {"fleet_distributed_query_7": "SELECT 7"})
    monkeypatch.setattr(live_targets, "record_result", record)
    add_secret(database, "s")
    key = enroll(client, "s", "live", real_host_details())
    read = _read(client, key)
    assert read["queries"]["fleet_distributed_query_7"] == "SELECT 7"
    assert read["discovery"]["fleet_distributed_query_7"] == "SELECT 1"
    _write(client, key, {"queries": {"fleet_distributed_query_7": [{"7": "7"}], "fleet_distributed_query_8": ""},
                         "statuses": {"fleet_distributed_query_7": 0, "fleet_distributed_query_8": 1},
                         "messages": {"fleet_distributed_query_8": "no such table: x"}})
    assert sorted(seen) == [(7, [{"7": "7"}], None), (8, [], "no such table: x")]


def test_idle_read_does_no_database_write_and_uses_the_cache(client: TestClient, database: Database,
                                                             state: ServerState) -> None:
    add_secret(database, "s")
    key = enroll(client, "s", "idle", real_host_details())
    _write(client, key, answer_all(_read(client, key)["queries"]))
    assert _read(client, key)["queries"] == {}  # reloads the host once after the write
    helper = checkin.checkin_for(state)
    hits = helper.cache.hits
    with recorded_statements(database) as statements:
        for _ in range(5):
            assert _read(client, key) == {"queries": {}, "discovery": {}}
    writes = [s for s in statements if s.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))]
    assert writes == []
    assert not [s for s in statements if "FROM hosts" in s]
    assert helper.cache.hits - hits == 5
    # seen times were batched: one flush writes them
    seen = helper.seen.pending(_host(database).id)
    assert seen is not None
    assert checkin.flush(state) == 1
    assert _host(database).seen_time == seen
    assert checkin.flush(state) == 0


def _status_host(now: datetime, seen_ago: timedelta, created_ago: timedelta, di: int = 10, ctr: int = 30) -> Host:
    return Host(osquery_host_id="x", seen_time=now - seen_ago, created_at=now - created_ago,
                distributed_interval=di, config_tls_refresh=ctr)


def test_host_status_rules() -> None:
    now = datetime(2026, 1, 10, 12, 0, 0)
    assert host_status.online_window(10, 30) == 70
    assert host_status.online_window(0, 0) == 60
    assert host_status.online_window(0, 45) == 105
    host = _status_host(now, timedelta(seconds=69), timedelta(days=3))
    assert host_status.host_status(host, now) == "online"
    assert host_status.host_status(host, now + timedelta(seconds=2)) == "offline"
    assert host_status.host_status(host, now + timedelta(days=30)) == "missing"
    assert not host_status.is_new(host, now)
    fresh = _status_host(now, timedelta(0), timedelta(hours=23))
    assert host_status.is_new(fresh, now) and not host_status.is_new(fresh, now + timedelta(hours=2))
    # a fresher in-memory seen time wins over the stored one
    assert host_status.host_status(host, now + timedelta(minutes=5), now + timedelta(minutes=5)) == "online"


def test_host_status_sql_filters_match_python(database: Database) -> None:
    now = datetime(2026, 1, 10, 12, 0, 0)
    cases = {
        "a": _status_host(now, timedelta(seconds=5), timedelta(hours=1)),
        "b": _status_host(now, timedelta(seconds=71), timedelta(days=2)),
        "c": _status_host(now, timedelta(seconds=100), timedelta(days=2), di=60, ctr=0),
        "d": _status_host(now, timedelta(days=31), timedelta(days=60)),
        "e": _status_host(now, timedelta(seconds=59), timedelta(days=2), di=0, ctr=0),
    }
    with database.session() as session:
        for name, host in cases.items():
            host.osquery_host_id = host.hostname = name
            session.add(host)
    expected = {
        "online": {"a", "c", "e"}, "offline": {"b", "d"}, "missing": {"d"}, "mia": {"d"}, "new": {"a"},
    }
    with database.session() as session:
        for status, names in expected.items():
            got = set(session.scalars(select(Host.hostname).where(host_status.status_filter(status, now))))
            assert got == names, status
        for host in session.scalars(select(Host)):
            python = host_status.host_status(host, now)
            assert (python == "online") == (host.hostname in expected["online"])
            assert (python == "missing") == (host.hostname in expected["missing"])
    with pytest.raises(ValueError):
        host_status.status_filter("sleepy", now)


def test_users_are_replaced_only_when_they_changed(client: TestClient, database: Database) -> None:
    add_secret(database, "s")
    key = enroll(client, "s", "people", real_host_details())
    users_query = "fleet_detail_query_users"

    def write_users(rows: list[dict[str, str]]) -> None:
        reply = client.post("/api/osquery/distributed/write",
                            json={"node_key": key, "queries": {users_query: rows}, "statuses": {users_query: 0}})
        assert reply.status_code == 200 and reply.json() == {}

    alice = {"uid": "1000", "username": "alice", "type": "", "groupname": "alice", "shell": "/bin/bash"}
    bob = {"uid": "1001", "username": "bob", "type": "", "groupname": "bob", "shell": "/bin/zsh"}
    write_users([alice, bob])
    with recorded_statements(database) as statements:
        write_users([bob, alice])  # the same users: nothing written to host_users
    assert not [sql for sql in statements if "host_users" in sql and not sql.lstrip().upper().startswith("SELECT")]
    write_users([dict(alice, shell="/bin/fish")])
    with database.session() as session:
        stored = [(u.username, u.shell) for u in session.scalars(select(HostUser).order_by(HostUser.uid))]
    assert stored == [("alice", "/bin/fish")]
