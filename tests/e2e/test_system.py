"""Whole system: the real ``hostql server`` and three real ``hostql agent`` processes over TLS.

The same scenario runs against SQLite (the dev default), and against a
throwaway PostgreSQL and MariaDB started by the test session:

* three agents enroll (``--host_identifier=specified``) and their vitals fill in;
* a live query over the three, as a campaign read through the results WebSocket
  and as the synchronous ``POST /queries/{id}/run``;
* a policy passing on the two agents started with ``ROLE=web`` and failing on the
  third, and a dynamic label holding exactly the two;
* a saved snapshot query scheduled every 2 s: its rows arrive in the query
  report and, with automations on, in the server's filesystem result log;
* deleting one host makes its agent enroll again (a new host id for the same
  identifier) and that host keeps answering.
"""

from __future__ import annotations

from typing import Any

import pytest
from dbservers import mariadb_server, postgres_server  # noqa: F401  (fixtures)
from system_helpers import (
    MY_ROLE,
    Api,
    Server,
    System,
    create_fixtures,
    host_ids,
    result_log_lines,
    role_by_host,
    system,  # noqa: F401  (fixture)
    vitals_filled,
    wait_until,
    websocket_campaign,
)

from hostql import OSQUERY_VERSION

pytestmark = pytest.mark.slow

ROLES = {"agent-0": "web", "agent-1": "web", "agent-2": "db"}


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Empty: the dev default (SQLite in the data directory); else a new database on the throwaway server."""
    if request.param == "sqlite":
        return ""
    server = request.getfixturevalue("postgres_server" if request.param == "postgresql" else "mariadb_server")
    return str(server.new_database())


def check_vitals(api: Api, ids: dict[str, int]) -> None:
    def filled() -> bool:
        return all(vitals_filled(api.get(f"/api/v1/fleet/hosts/{host_id}")["host"]) for host_id in ids.values())

    wait_until(filled, "host vitals (hostname, platform, os_version, osquery_version, memory, primary_ip)")
    for host_id in ids.values():
        host = api.get(f"/api/v1/fleet/hosts/{host_id}")["host"]
        assert host["osquery_version"] == OSQUERY_VERSION, host
        assert host["status"] == "online", host
        assert (host["distributed_interval"], host["config_tls_refresh"], host["logger_tls_period"]) == (1, 2, 1), host
    listed = api.hosts()
    assert sorted(h["id"] for h in listed) == sorted(ids.values()), listed


def check_campaign(api: Api, ids: dict[str, int]) -> None:
    campaign, messages = websocket_campaign(api, MY_ROLE, sorted(ids.values()))
    kinds = [m["type"] for m in messages]
    assert kinds[0] == "totals" and messages[0]["data"]["count"] == 3, messages
    results = [m["data"] for m in messages if m["type"] == "result"]
    assert len(results) == 3, messages
    assert all(r["distributed_query_execution_id"] == campaign["id"] for r in results), results
    assert role_by_host(results) == {ids[name]: role for name, role in ROLES.items()}
    final = messages[-1]["data"]
    assert final["status"] == "finished" and final["expected_results"] == 3 and final["actual_results"] == 3, final
    assert final["count_of_hosts_with_results"] == 3, final


def check_sync_run(api: Api, ids: dict[str, int], query_id: int, roles: dict[str, str]) -> None:
    body = api.post(f"/api/v1/fleet/queries/{query_id}/run", {"host_ids": sorted(ids.values())})
    assert body["query_id"] == query_id
    assert body["targeted_host_count"] == len(ids) and body["responded_host_count"] == len(ids), body
    got = {r["host_id"]: [row["role"] for row in r["rows"]] for r in body["results"] if not r["error"]}
    assert got == {ids[name]: [roles[name]] for name in ids}, body


def check_policy(api: Api, ids: dict[str, int], policy_id: int) -> None:
    def counted() -> dict[str, Any] | None:
        policy: dict[str, Any] = api.get(f"/api/v1/fleet/global/policies/{policy_id}")["policy"]
        return policy if policy["passing_host_count"] + policy["failing_host_count"] == 3 else None

    policy = wait_until(counted, "the policy's results from all three hosts")
    assert (policy["passing_host_count"], policy["failing_host_count"]) == (2, 1), policy
    for name, host_id in ids.items():
        host = api.get(f"/api/v1/fleet/hosts/{host_id}")["host"]
        responses = {p["id"]: p["response"] for p in host["policies"]}
        assert responses[policy_id] == ("pass" if ROLES[name] == "web" else "fail"), (name, host["policies"])
        assert host["issues"]["failing_policies_count"] == (0 if ROLES[name] == "web" else 1), host["issues"]


def check_label(api: Api, ids: dict[str, int], label_id: int) -> None:
    web = sorted(ids[name] for name, role in ROLES.items() if role == "web")

    def members() -> list[int]:
        return sorted(h["id"] for h in api.get(f"/api/v1/fleet/labels/{label_id}/hosts")["hosts"])

    wait_until(lambda: members() == web, f"label membership {web}")
    assert api.get(f"/api/v1/fleet/labels/{label_id}")["label"]["count"] == 2
    for name, host_id in ids.items():
        labels = {label["id"] for label in api.get(f"/api/v1/fleet/hosts/{host_id}")["host"]["labels"]}
        assert (label_id in labels) == (ROLES[name] == "web"), (name, labels)


def check_report_and_log(api: Api, servers: list[Server], ids: dict[str, int], query_id: int) -> None:
    def reported() -> dict[int, list[dict[str, Any]]] | None:
        report = api.get(f"/api/v1/fleet/queries/{query_id}/report")
        by_host: dict[int, list[dict[str, Any]]] = {}
        for row in report["results"]:
            by_host.setdefault(row["host_id"], []).append(row["columns"])
        return by_host if set(by_host) == set(ids.values()) else None

    by_host = wait_until(reported, "query report rows from all three hosts")
    for rows in by_host.values():
        assert len(rows) == 1, rows  # a snapshot replaces the host's rows
        assert rows[0]["version"] == OSQUERY_VERSION and int(rows[0]["pid"]) > 0, rows
    assert len({rows[0]["pid"] for rows in by_host.values()}) == 3, by_host  # three different agents

    def logged() -> set[str]:
        seen = set()
        for server in servers:
            for line in result_log_lines(server.result_log):
                if line.get("name", "").endswith("agent identity") and line.get("snapshot"):
                    seen.add(line["hostIdentifier"])
        return seen if seen == set(ids) else set()

    wait_until(logged, "result log lines of the scheduled query from all three agents")


def check_reenroll(api: Api, ids: dict[str, int], name: str, policy_id: int, role_query: int) -> dict[str, int]:
    """Delete ``name``'s host; its agent enrolls again as a new host which keeps working."""
    old = ids[name]
    api.delete(f"/api/v1/fleet/hosts/{old}")
    api.get(f"/api/v1/fleet/hosts/{old}", expect=404)

    def new_id() -> int:
        host_id = int(api.host_by_identifier(name)["id"])
        return host_id if host_id != old else 0

    fresh = wait_until(new_id, f"{name} to enroll again after its host was deleted")
    ids = {**ids, name: fresh}
    wait_until(lambda: vitals_filled(api.get(f"/api/v1/fleet/hosts/{fresh}")["host"]), "the new host's vitals")
    listed = sorted(h["id"] for h in api.hosts())
    assert listed == sorted(ids.values()), listed  # no duplicate, the old row stays gone

    def policy_answer() -> str:
        host = api.get(f"/api/v1/fleet/hosts/{fresh}")["host"]
        return str({p["id"]: p["response"] for p in host["policies"]}.get(policy_id, ""))

    assert wait_until(policy_answer, "the re-enrolled host's policy result") == "fail"
    check_sync_run(api, ids, role_query, ROLES)
    return ids


def assert_clean_stop(server: Server) -> None:
    code = server.process.stop()
    stderr = server.process.stderr()
    assert code == 0, stderr[-4000:]
    assert server.process.stop_seconds < 15, f"server took {server.process.stop_seconds:.1f} s to stop"
    assert "still busy" not in stderr, stderr[-4000:]
    assert "graceful shutdown exceeded" not in stderr, stderr[-4000:]
    assert "Traceback" not in stderr, stderr[-6000:]


def test_whole_system(system: System, database_url: str) -> None:  # noqa: F811
    server = system.start_server("server", db=database_url)
    api = system.login(server)
    fixtures = create_fixtures(api)
    for name, role in ROLES.items():
        system.start_agent(server, name, role)

    ids = host_ids(api, system.agents)
    assert len(set(ids.values())) == 3, ids
    check_vitals(api, ids)
    check_campaign(api, ids)
    check_sync_run(api, ids, fixtures["role"], ROLES)
    check_policy(api, ids, fixtures["policy"])
    check_label(api, ids, fixtures["label"])
    check_report_and_log(api, [server], ids, fixtures["scheduled"])
    ids = check_reenroll(api, ids, "agent-2", fixtures["policy"], fixtures["role"])
    check_campaign(api, ids)

    for agent in system.agents:
        assert agent.process.alive(), agent.process.stderr()[-3000:]
        assert agent.process.stop() == 0, agent.process.stderr()[-3000:]
    assert_clean_stop(server)

