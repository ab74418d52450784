"""Hosts REST API: filters, paging, ordering, summary, detail, delete, refetch, manual labels."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from inventory_helpers import NOW, add_member, freeze, make_host, make_policy, set_result
from osquery_agent_helpers import add_secret, configure, enroll
from server_helpers import assert_fleet_error, auth, make_team, make_user
from sqlalchemy import select

from hostql.server.services.labels import seed_builtin_labels
from hostql.server.state import ServerState
from hostql.server.storage.db import Database
from hostql.server.storage.models import Activity, Host, HostSoftware, HostUser, Label, Software

API = "/api/v1/fleet"


@pytest.fixture
def fleet(database: Database, state: ServerState) -> dict[str, int]:
    """Five hosts around :data:`NOW`: online, offline, missing, new+online, team host (online, darwin)."""
    freeze(state)
    with database.session() as session:
        seed_builtin_labels(session)
    team = make_team(database, "Servers")
    return {
        "team": team,
        "online": make_host(database, "web-01", primary_ip="10.0.0.1", hardware_serial="SER-A",
                            uptime=3600, gigs_disk_space_available=100.0),
        "offline": make_host(database, "web-02", seen_ago=timedelta(minutes=10), gigs_disk_space_available=10.0),
        "missing": make_host(database, "db-01", seen_ago=timedelta(days=40), created_ago=timedelta(days=90),
                             platform="windows"),
        "new": make_host(database, "db-02", created_ago=timedelta(hours=2), platform="centos"),
        "team_host": make_host(database, "mac-01", platform="darwin", team_id=team),
    }


def names(response: object) -> list[str]:
    assert hasattr(response, "json")
    body = response.json()
    return [h["hostname"] for h in body["hosts"]]


def test_list_has_fleet_shape_and_status(client: TestClient, admin_token: str, fleet: dict[str, int]) -> None:
    response = client.get(f"{API}/hosts", headers=auth(admin_token))
    assert response.status_code == 200
    hosts = {h["hostname"]: h for h in response.json()["hosts"]}
    assert set(hosts) == {"web-01", "web-02", "db-01", "db-02", "mac-01"}
    web = hosts["web-01"]
    for key in ("id", "created_at", "updated_at", "detail_updated_at", "label_updated_at", "last_enrolled_at",
                "seen_time", "refetch_requested", "hostname", "display_name", "uuid", "platform",
                "osquery_version", "os_version", "build", "platform_like", "code_name", "uptime", "memory",
                "cpu_type", "cpu_brand", "hardware_serial", "computer_name", "primary_ip", "primary_mac",
                "public_ip", "distributed_interval", "config_tls_refresh", "logger_tls_period",
                "gigs_disk_space_available", "percent_disk_space_available", "team_id", "team_name",
                "status", "issues", "additional"):
        assert key in web, key
    assert web["uptime"] == 3600 * 1_000_000_000
    assert web["seen_time"] == (NOW - timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert web["status"] == "online"
    assert web["issues"] == {"failing_policies_count": 0, "total_issues_count": 0}
    assert hosts["web-02"]["status"] == "offline"
    assert hosts["db-01"]["status"] == "missing"
    assert hosts["mac-01"]["team_id"] == fleet["team"] and hosts["mac-01"]["team_name"] == "Servers"
    assert web["team_id"] is None and web["team_name"] is None


def test_status_depends_on_the_clock(client: TestClient, state: ServerState, admin_token: str,
                                     fleet: dict[str, int]) -> None:
    # 10 s intervals: online while seen within 70 s.
    freeze(state, NOW + timedelta(seconds=64))
    assert client.get(f"{API}/hosts/{fleet['online']}", headers=auth(admin_token)).json()["host"]["status"] == "online"
    freeze(state, NOW + timedelta(seconds=70))
    assert client.get(f"{API}/hosts/{fleet['online']}", headers=auth(admin_token)).json()["host"]["status"] == "offline"


@pytest.mark.parametrize(("status", "expected"), [
    ("online", {"web-01", "db-02", "mac-01"}),
    ("offline", {"web-02", "db-01"}),
    ("missing", {"db-01"}),
    ("mia", {"db-01"}),
    ("new", {"db-02"}),
])
def test_status_filter(client: TestClient, admin_token: str, fleet: dict[str, int], status: str,
                       expected: set[str]) -> None:
    response = client.get(f"{API}/hosts", params={"status": status}, headers=auth(admin_token))
    assert set(names(response)) == expected
    count = client.get(f"{API}/hosts/count", params={"status": status}, headers=auth(admin_token))
    assert count.json() == {"count": len(expected)}


def test_bad_status_and_order_key_are_422(client: TestClient, admin_token: str, fleet: dict[str, int]) -> None:
    for params in ({"status": "sleepy"}, {"order_key": "nope"}, {"order_direction": "sideways"},
                   {"policy_response": "passing"}):
        response = client.get(f"{API}/hosts", params=params, headers=auth(admin_token))
        assert response.status_code == 422, params
        assert_fleet_error(response.json())


@pytest.mark.parametrize(("query", "expected"), [
    ("web", {"web-01", "web-02"}),
    ("WEB-0", {"web-01", "web-02"}),
    ("ser-a", {"web-01"}),
    ("10.0.0", {"web-01"}),
    ("uuid-db-01", {"db-01"}),
    ("%", set()),
])
def test_query_filter(client: TestClient, admin_token: str, fleet: dict[str, int], query: str,
                      expected: set[str]) -> None:
    assert set(names(client.get(f"{API}/hosts", params={"query": query}, headers=auth(admin_token)))) == expected


def test_team_filter(client: TestClient, admin_token: str, fleet: dict[str, int]) -> None:
    in_team = client.get(f"{API}/hosts", params={"team_id": fleet["team"]}, headers=auth(admin_token))
    assert names(in_team) == ["mac-01"]
    no_team = client.get(f"{API}/hosts", params={"team_id": 0}, headers=auth(admin_token))
    assert set(names(no_team)) == {"web-01", "web-02", "db-01", "db-02"}


def test_label_and_policy_filters(client: TestClient, database: Database, admin_token: str,
                                  fleet: dict[str, int]) -> None:
    with database.session() as session:
        macos = session.scalars(select(Label).where(Label.name == "macOS")).one().id
    add_member(database, macos, fleet["team_host"])
    response = client.get(f"{API}/hosts", params={"label_id": macos}, headers=auth(admin_token))
    assert names(response) == ["mac-01"]

    policy = make_policy(database, "firewall")
    set_result(database, policy, fleet["online"], True)
    set_result(database, policy, fleet["offline"], False)
    set_result(database, policy, fleet["new"], None)
    h = auth(admin_token)
    assert names(client.get(f"{API}/hosts", params={"policy_id": policy, "policy_response": "passing"},
                            headers=h)) == ["web-01"]
    assert names(client.get(f"{API}/hosts", params={"policy_id": policy, "policy_response": "failing"},
                            headers=h)) == ["web-02"]
    assert client.get(f"{API}/hosts/count", params={"policy_id": policy, "policy_response": "failing"},
                      headers=h).json() == {"count": 1}
    listed = {x["hostname"]: x for x in client.get(f"{API}/hosts", headers=h).json()["hosts"]}
    assert listed["web-02"]["issues"] == {"failing_policies_count": 1, "total_issues_count": 1}


def test_paging_and_ordering(client: TestClient, admin_token: str, fleet: dict[str, int]) -> None:
    h = auth(admin_token)
    ordered = names(client.get(f"{API}/hosts", params={"order_key": "hostname"}, headers=h))
    assert ordered == ["db-01", "db-02", "mac-01", "web-01", "web-02"]
    desc = names(client.get(f"{API}/hosts", params={"order_key": "hostname", "order_direction": "desc"}, headers=h))
    assert desc == list(reversed(ordered))
    pages = [names(client.get(f"{API}/hosts", params={"order_key": "hostname", "page": p, "per_page": 2},
                              headers=h)) for p in range(4)]
    assert pages == [["db-01", "db-02"], ["mac-01", "web-01"], ["web-02"], []]
    by_seen = names(client.get(f"{API}/hosts", params={"order_key": "seen_time", "order_direction": "desc",
                                                       "per_page": 1}, headers=h))
    assert by_seen in (["web-01"], ["db-02"], ["mac-01"])  # the three seen 5 s ago tie on seen_time
    oldest = names(client.get(f"{API}/hosts", params={"order_key": "seen_time", "per_page": 1}, headers=h))
    assert oldest == ["db-01"]


def test_host_summary(client: TestClient, admin_token: str, fleet: dict[str, int]) -> None:
    body = client.get(f"{API}/host_summary", headers=auth(admin_token)).json()
    assert body["totals_hosts_count"] == 5
    assert body["online_count"] == 3
    assert body["offline_count"] == 2
    assert body["mia_count"] == 1 and body["missing_30_days_count"] == 1
    assert body["new_count"] == 1
    assert body["all_linux_count"] == 3  # ubuntu x2 + centos
    assert body["low_disk_space_count"] == 4  # only web-01 has 100 GB free (others 0 or 10)
    assert {p["platform"]: p["hosts_count"] for p in body["platforms"]} == {
        "ubuntu": 2, "windows": 1, "centos": 1, "darwin": 1}
    assert {label["name"] for label in body["builtin_labels"]} >= {"All Hosts", "macOS", "MS Windows", "All Linux"}
    assert all(label["label_type"] == "builtin" for label in body["builtin_labels"])
    team = client.get(f"{API}/host_summary", params={"team_id": fleet["team"]}, headers=auth(admin_token)).json()
    assert team["team_id"] == fleet["team"]
    assert team["totals_hosts_count"] == 1 and team["online_count"] == 1 and team["all_linux_count"] == 0


def test_host_detail(client: TestClient, database: Database, admin_token: str, fleet: dict[str, int]) -> None:
    host_id = fleet["online"]
    passing = make_policy(database, "passing one")
    failing = make_policy(database, "failing one")
    unanswered = make_policy(database, "not yet")
    make_policy(database, "mac only", platform="darwin")
    set_result(database, passing, host_id, True)
    set_result(database, failing, host_id, False)
    with database.session() as session:
        software = Software(name="osquery", version="5.10.2", source="deb_packages")
        session.add(software)
        session.flush()
        session.add(HostSoftware(host_id=host_id, software_id=software.id, installed_path="/opt/osquery"))
        session.add(HostUser(host_id=host_id, uid=0, username="root", groupname="root", shell="/bin/bash"))
        all_hosts = session.scalars(select(Label).where(Label.name == "All Hosts")).one().id
    add_member(database, all_hosts, host_id)

    host = client.get(f"{API}/hosts/{host_id}", headers=auth(admin_token)).json()["host"]
    assert host["hostname"] == "web-01"
    responses = {p["name"]: p["response"] for p in host["policies"]}
    assert responses == {"passing one": "pass", "failing one": "fail", "not yet": ""}  # darwin policy left out
    assert unanswered in [p["id"] for p in host["policies"]]
    assert [label["name"] for label in host["labels"]] == ["All Hosts"]
    assert host["software"][0]["name"] == "osquery" and host["software"][0]["source"] == "deb_packages"
    assert host["users"] == [{"uid": 0, "username": "root", "type": "", "groupname": "root", "shell": "/bin/bash"}]
    assert host["issues"]["failing_policies_count"] == 1

    sw = client.get(f"{API}/hosts/{host_id}/software", headers=auth(admin_token)).json()
    assert sw["count"] == 1 and sw["software"][0]["installed_paths"] == ["/opt/osquery"]

    for identifier in ("uuid-web-01", "web-01", "SER-A"):
        found = client.get(f"{API}/hosts/identifier/{identifier}", headers=auth(admin_token))
        assert found.status_code == 200 and found.json()["host"]["id"] == host_id
    missing = client.get(f"{API}/hosts/identifier/nobody", headers=auth(admin_token))
    assert missing.status_code == 404
    assert_fleet_error(missing.json())
    assert client.get(f"{API}/hosts/999", headers=auth(admin_token)).status_code == 404


def test_refetch_sets_the_flag(client: TestClient, database: Database, admin_token: str,
                               fleet: dict[str, int]) -> None:
    response = client.post(f"{API}/hosts/{fleet['online']}/refetch", headers=auth(admin_token))
    assert response.status_code == 200 and response.json() == {}
    with database.session() as session:
        assert session.get(Host, fleet["online"]).refetch_requested is True  # type: ignore[union-attr]


def test_delete_host_and_bulk_delete(client: TestClient, database: Database, admin_token: str,
                                     fleet: dict[str, int]) -> None:
    h = auth(admin_token)
    assert client.delete(f"{API}/hosts/{fleet['offline']}", headers=h).json() == {}
    assert client.get(f"{API}/hosts/{fleet['offline']}", headers=h).status_code == 404
    assert client.post(f"{API}/hosts/delete", json={"ids": [fleet["online"], fleet["new"]]}, headers=h).json() == {}
    assert client.post(f"{API}/hosts/delete", json={"filters": {"status": "missing"}}, headers=h).status_code == 200
    assert names(client.get(f"{API}/hosts", headers=h)) == ["mac-01"]
    refused = client.post(f"{API}/hosts/delete", json={"filters": {}}, headers=h)
    assert refused.status_code == 422
    with database.session() as session:
        deleted = session.scalars(select(Activity).where(Activity.type == "deleted_host")).all()
        assert sorted(a.details["host_display_name"] for a in deleted) == ["db-01", "db-02", "web-01", "web-02"]
        assert all(a.details["triggered_by"] == "manual" for a in deleted)


def test_deleted_host_must_re_enroll(client: TestClient, state: ServerState, database: Database,
                                     admin_token: str, tmp_path: Path) -> None:
    configure(state, tmp_path)
    add_secret(database, "s3cret")
    key = enroll(client, "s3cret", "agent-1")
    first = client.post("/api/osquery/config", json={"node_key": key})
    assert first.status_code == 200 and not first.json().get("node_invalid")
    with database.session() as session:
        host_id = session.scalars(select(Host.id).where(Host.node_key == key)).one()
    assert client.delete(f"{API}/hosts/{host_id}", headers=auth(admin_token)).status_code == 200
    again = client.post("/api/osquery/config", json={"node_key": key})
    assert again.json().get("node_invalid") is True
    new_key = enroll(client, "s3cret", "agent-1")
    assert new_key != key
    assert client.post("/api/osquery/config", json={"node_key": new_key}).status_code == 200


def test_manual_labels_on_a_host(client: TestClient, admin_token: str, fleet: dict[str, int]) -> None:
    h = auth(admin_token)
    created = client.post(f"{API}/labels", json={"name": "Pets", "host_ids": []}, headers=h)
    assert created.status_code == 200, created.text
    label_id = created.json()["label"]["id"]
    host = fleet["online"]
    assert client.post(f"{API}/hosts/{host}/labels", json={"labels": ["Pets"]}, headers=h).status_code == 200
    assert client.get(f"{API}/labels/{label_id}", headers=h).json()["label"]["host_ids"] == [host]
    assert names(client.get(f"{API}/hosts", params={"label_id": label_id}, headers=h)) == ["web-01"]
    dynamic = client.post(f"{API}/hosts/{host}/labels", json={"labels": ["macOS"]}, headers=h)
    assert dynamic.status_code == 422
    unknown = client.post(f"{API}/hosts/{host}/labels", json={"labels": ["Nope"]}, headers=h)
    assert unknown.status_code == 404
    removed = client.request("DELETE", f"{API}/hosts/{host}/labels", json={"labels": ["Pets"]}, headers=h)
    assert removed.status_code == 200
    assert client.get(f"{API}/labels/{label_id}", headers=h).json()["label"]["count"] == 0


def test_observer_reads_but_cannot_write(client: TestClient, database: Database, fleet: dict[str, int]) -> None:
    observer = make_user(database, "obs@example.com", "observer")
    h = auth(observer)
    assert client.get(f"{API}/hosts", headers=h).status_code == 200
    assert client.get(f"{API}/host_summary", headers=h).status_code == 200
    for method, url, body in (("DELETE", f"{API}/hosts/{fleet['online']}", None),
                              ("POST", f"{API}/hosts/delete", {"ids": [fleet["online"]]}),
                              ("POST", f"{API}/hosts/{fleet['online']}/labels", {"labels": ["x"]})):
        response = client.request(method, url, json=body, headers=h)
        assert response.status_code == 403, url
        assert_fleet_error(response.json())
    assert client.get(f"{API}/hosts/{fleet['online']}", headers=h).status_code == 200


def test_team_user_sees_only_team_hosts(client: TestClient, database: Database, fleet: dict[str, int]) -> None:
    token = make_user(database, "teamobs@example.com", None, teams={fleet["team"]: "observer"})
    h = auth(token)
    assert names(client.get(f"{API}/hosts", headers=h)) == ["mac-01"]
    assert client.get(f"{API}/hosts/count", headers=h).json() == {"count": 1}
    assert client.get(f"{API}/host_summary", headers=h).json()["totals_hosts_count"] == 1
    assert client.get(f"{API}/hosts/{fleet['online']}", headers=h).status_code == 403
    assert client.get(f"{API}/hosts/{fleet['team_host']}", headers=h).status_code == 200


def test_transfer_hosts_by_id_and_by_filter(client: TestClient, database: Database, admin_token: str,
                                            fleet: dict[str, int]) -> None:
    h = auth(admin_token)
    team, online, offline = fleet["team"], fleet["online"], fleet["offline"]
    team_policy = make_policy(database, "team check", team_id=team)
    global_policy = make_policy(database, "global check")
    for policy in (team_policy, global_policy):
        set_result(database, policy, fleet["team_host"], True)
    reply = client.post(f"{API}/hosts/transfer", json={"team_id": team, "hosts": [online, offline]}, headers=h)
    assert (reply.status_code, reply.json()) == (200, {})
    assert sorted(names(client.get(f"{API}/hosts", params={"team_id": team}, headers=h))) == [
        "mac-01", "web-01", "web-02"]
    # To no team: the old team's policy results go, global ones stay.
    reply = client.post(f"{API}/hosts/transfer", json={"team_id": None, "hosts": [fleet["team_host"]]}, headers=h)
    assert reply.status_code == 200, reply.text
    with database.session() as session:
        from hostql.server.storage.models import PolicyMembership

        kept = session.scalars(select(PolicyMembership.policy_id)
                               .where(PolicyMembership.host_id == fleet["team_host"])).all()
        assert kept == [global_policy]
        activity = session.scalars(select(Activity).where(Activity.type == "transferred_hosts")
                                   .order_by(Activity.id)).all()
    assert [(a.details["team_id"], a.details["team_name"]) for a in activity] == [(team, "Servers"), (None, None)]
    assert activity[0].details["host_display_names"] == ["web-01", "web-02"]
    by_filter = client.post(f"{API}/hosts/transfer/filter",
                            json={"team_id": team, "filters": {"query": "db-"}}, headers=h)
    assert by_filter.status_code == 200, by_filter.text
    assert sorted(names(client.get(f"{API}/hosts", params={"team_id": team}, headers=h))) == [
        "db-01", "db-02", "web-01", "web-02"]
    for body, status, field in (({"team_id": 999, "hosts": [online]}, 404, "team_id"),
                                ({"team_id": team, "hosts": [999]}, 404, "id"),
                                ({"hosts": [online]}, 422, "team_id"),
                                ({"team_id": team, "hosts": "all"}, 422, "hosts")):
        reply = client.post(f"{API}/hosts/transfer", json=body, headers=h)
        assert reply.status_code == status, (body, reply.text)
        assert_fleet_error(reply.json())
        assert field in {error["name"] for error in reply.json()["errors"]}, reply.json()


def test_a_team_maintainer_transfers_only_between_its_teams(client: TestClient, database: Database,
                                                            fleet: dict[str, int]) -> None:
    other = make_team(database, "Laptops")
    token = make_user(database, "tm@example.com", None, teams={fleet["team"]: "maintainer", other: "maintainer"})
    h = auth(token)
    ok = client.post(f"{API}/hosts/transfer", json={"team_id": other, "hosts": [fleet["team_host"]]}, headers=h)
    assert ok.status_code == 200, ok.text
    for body in ({"team_id": None, "hosts": [fleet["team_host"]]},  # out of its teams
                 {"team_id": other, "hosts": [fleet["online"]]}):  # a host of no team
        assert client.post(f"{API}/hosts/transfer", json=body, headers=h).status_code == 403


def test_hosts_report_is_csv_with_the_list_filters(client: TestClient, database: Database, admin_token: str,
                                                   fleet: dict[str, int]) -> None:
    import csv
    import io

    from hostql.server.services.hosts import REPORT_COLUMNS

    h = auth(admin_token)
    reply = client.get(f"{API}/hosts/report", params={"format": "csv"}, headers=h)
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/csv")
    assert reply.headers["content-disposition"].startswith('attachment; filename="Hosts ')
    rows = list(csv.DictReader(io.StringIO(reply.text)))
    assert sorted(row["hostname"] for row in rows) == ["db-01", "db-02", "mac-01", "web-01", "web-02"]
    # Every column of a host object (flattened) and nothing else.
    listed = client.get(f"{API}/hosts", headers=h).json()["hosts"][0]
    flat = set(listed) - {"issues", "additional"} | set(listed["issues"])
    assert set(REPORT_COLUMNS) == flat and list(rows[0]) == list(REPORT_COLUMNS)
    mac = next(row for row in rows if row["hostname"] == "mac-01")
    assert (mac["team_name"], mac["refetch_requested"], mac["status"]) == ("Servers", "false", "online")
    assert next(row for row in rows if row["hostname"] == "web-01")["team_name"] == ""
    picked = client.get(f"{API}/hosts/report", params={"columns": "hostname,status", "status": "online",
                                                       "order_key": "hostname"}, headers=h)
    assert picked.text.splitlines() == ["hostname,status", "db-02,online", "mac-01,online", "web-01,online"]
    for params, field in (({"columns": "hostname,nope"}, "columns"), ({"format": "xlsx"}, "format")):
        bad = client.get(f"{API}/hosts/report", params=params, headers=h)
        assert bad.status_code == 422 and bad.json()["errors"][0]["name"] == field, bad.text
    team_user = auth(make_user(database, "tr@example.com", None, teams={fleet["team"]: "observer"}))
    only_team = client.get(f"{API}/hosts/report", params={"columns": "hostname"}, headers=team_user)
    assert only_team.text.splitlines() == ["hostname", "mac-01"]


def test_target_search_and_counts(client: TestClient, database: Database, admin_token: str,
                                  fleet: dict[str, int]) -> None:
    h = auth(admin_token)
    found = client.post(f"{API}/hosts/search", json={"query": "web", "excluded_host_ids": [fleet["offline"]]},
                        headers=h)
    assert found.status_code == 200 and names(found) == ["web-01"]
    with database.session() as session:
        all_hosts = session.scalars(select(Label.id).where(Label.name == "All Hosts")).one()
    targets = client.post(f"{API}/targets", json={"query": "", "selected": {"hosts": [fleet["online"]]}}, headers=h)
    assert targets.status_code == 200, targets.text
    body = targets.json()
    assert fleet["online"] not in {host["id"] for host in body["targets"]["hosts"]}
    assert all_hosts in {label["id"] for label in body["targets"]["labels"]}
    assert [team["name"] for team in body["targets"]["teams"]] == ["Servers"]
    assert (body["targets_count"], body["targets_online"], body["targets_offline"],
            body["targets_missing_in_action"]) == (1, 1, 0, 0)
    counted = client.post(f"{API}/targets/count", json={"selected": {"labels": [all_hosts]}}, headers=h)
    # All Hosts: web-01, db-02 and mac-01 online, web-02 offline, db-01 missing in action.
    assert counted.json() == {"targets_count": 5, "targets_online": 3, "targets_offline": 1,
                              "targets_missing_in_action": 1}
    team_user = auth(make_user(database, "ts@example.com", None, teams={fleet["team"]: "observer"}))
    seen = client.post(f"{API}/targets", json={"query": "", "selected": {"labels": [all_hosts]}}, headers=team_user)
    assert [host["hostname"] for host in seen.json()["targets"]["hosts"]] == ["mac-01"]
    assert seen.json()["targets_count"] == 1
    assert client.post(f"{API}/targets", json={"selected": {"hosts": "x"}}, headers=h).status_code == 422
