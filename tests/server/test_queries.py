"""Saved queries: CRUD with schedule fields, reports, activities, permissions."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

from fastapi.testclient import TestClient
from server_helpers import assert_fleet_error, auth, make_team, make_user
from sqlalchemy import select

from hostql.server.state import ServerState
from hostql.server.storage.db import Database
from hostql.server.storage.models import Activity, Host, Query, QueryReport, ScheduledQueryStats

Q = "/api/v1/fleet/queries"

NEW_QUERY = {
    "name": "new_query", "description": "This is a new query.", "query": "SELECT * FROM osquery_info",
    "interval": 3600, "platform": "darwin,windows,linux", "min_osquery_version": "",
    "automations_enabled": True, "logging": "snapshot", "discard_data": False, "observer_can_run": True,
}


def create(client: TestClient, token: str, **overrides: Any) -> dict[str, Any]:
    response = client.post(Q, json={**NEW_QUERY, **overrides}, headers=auth(token))
    assert response.status_code == 200, response.text
    query: dict[str, Any] = response.json()["query"]
    return query


def activities(database: Database) -> list[tuple[str, dict[str, Any]]]:
    with database.session() as session:
        return [(a.type, a.details) for a in session.scalars(select(Activity).order_by(Activity.id))]


def add_host(database: Database, hostname: str, team_id: int | None = None) -> int:
    with database.session() as session:
        host = Host(osquery_host_id=hostname, node_key=f"key-{hostname}", hostname=hostname, team_id=team_id)
        session.add(host)
        session.flush()
        return host.id


def test_create_returns_fleet_shape_and_records_activity(client: TestClient, admin_token: str,
                                                         database: Database) -> None:
    query = create(client, admin_token)
    expected_keys = {"id", "name", "query", "description", "team_id", "interval", "platform",
                     "min_osquery_version", "automations_enabled", "logging", "saved", "observer_can_run",
                     "discard_data", "author_id", "author_name", "author_email", "packs", "stats",
                     "created_at", "updated_at"}
    assert set(query) == expected_keys
    assert query["name"] == "new_query" and query["interval"] == 3600 and query["logging"] == "snapshot"
    assert query["platform"] == "darwin,windows,linux" and query["saved"] is True
    assert query["team_id"] is None and query["author_email"] == "admin@example.com"
    assert query["created_at"].endswith("Z")
    assert activities(database)[-1] == ("created_saved_query", {
        "query_id": query["id"], "query_name": "new_query", "team_id": None, "team_name": None})

    got = client.get(f"{Q}/{query['id']}", headers=auth(admin_token))
    assert got.status_code == 200 and got.json()["query"] == query


def test_validation_and_conflicts(client: TestClient, admin_token: str) -> None:
    create(client, admin_token)
    dup = client.post(Q, json=NEW_QUERY, headers=auth(admin_token))
    assert dup.status_code == 409
    assert_fleet_error(dup.json())
    for bad in ({"logging": "sometimes"}, {"platform": "amiga"}, {"interval": -1}, {"name": "  "},
                {"query": ""}, {"bogus": 1}):
        response = client.post(Q, json={**NEW_QUERY, "name": "other", **bad}, headers=auth(admin_token))
        assert response.status_code == 422, (bad, response.text)
        assert_fleet_error(response.json())
    missing = client.post(Q, json={"name": "no sql"}, headers=auth(admin_token))
    assert missing.status_code == 422


def test_list_shows_saved_queries_only_with_stats(client: TestClient, admin_token: str, database: Database) -> None:
    first = create(client, admin_token, name="a")
    create(client, admin_token, name="b")
    host_ids = [add_host(database, f"h{i}") for i in range(3)]
    with database.session() as session:
        session.add(Query(name="distributed_admin@example.com_1", query="select 1", saved=False))
        for host_id, user_time in zip(host_ids, (10, 20, 30)):
            session.add(ScheduledQueryStats(host_id=host_id, query_id=first["id"], executions=2,
                                            user_time=user_time, system_time=4))
    response = client.get(Q, headers=auth(admin_token))
    assert response.status_code == 200
    listed = response.json()["queries"]
    assert [q["name"] for q in listed] == ["a", "b"]
    stats = listed[0]["stats"]
    assert stats["total_executions"] == 6
    assert stats["user_time_p50"] == 10.0 and stats["user_time_p95"] == 15.0 and stats["system_time_p50"] == 2.0
    assert listed[1]["stats"]["total_executions"] is None

    paged = client.get(Q, params={"per_page": 1, "page": 1, "order_key": "name", "order_direction": "desc"},
                       headers=auth(admin_token))
    assert [q["name"] for q in paged.json()["queries"]] == ["a"]
    searched = client.get(Q, params={"query": "b"}, headers=auth(admin_token))
    assert [q["name"] for q in searched.json()["queries"]] == ["b"]
    assert client.get(Q, params={"order_key": "nope"}, headers=auth(admin_token)).status_code == 422


def report_of(query_id: int, host_id: int, rows: list[dict[str, str]]) -> QueryReport:
    return QueryReport(query_id=query_id, host_id=host_id, rows=json.dumps(rows), row_count=len(rows))


def test_modify_clears_report_when_sql_changes(client: TestClient, admin_token: str, database: Database) -> None:
    query = create(client, admin_token)
    other = create(client, admin_token, name="other")
    host_id = add_host(database, "web1")
    with database.session() as session:
        session.add(report_of(query["id"], host_id, [{"version": "5.0"}]))

    unchanged = client.patch(f"{Q}/{query['id']}", json={"description": "d", "interval": 60},
                             headers=auth(admin_token))
    assert unchanged.status_code == 200
    body = unchanged.json()["query"]
    assert body["description"] == "d" and body["interval"] == 60 and body["query"] == NEW_QUERY["query"]
    assert len(client.get(f"{Q}/{query['id']}/report", headers=auth(admin_token)).json()["results"]) == 1

    changed = client.patch(f"{Q}/{query['id']}", json={"query": "SELECT version FROM osquery_info"},
                           headers=auth(admin_token))
    assert changed.status_code == 200
    assert client.get(f"{Q}/{query['id']}/report", headers=auth(admin_token)).json()["results"] == []
    assert activities(database)[-1][0] == "edited_saved_query"

    clash = client.patch(f"{Q}/{query['id']}", json={"name": other["name"]}, headers=auth(admin_token))
    assert clash.status_code == 409
    assert client.patch(f"{Q}/{query['id']}", json={"team_id": 3}, headers=auth(admin_token)).status_code == 422
    assert client.patch(f"{Q}/999", json={"name": "x"}, headers=auth(admin_token)).status_code == 404


def test_delete_by_name_by_id_and_in_bulk(client: TestClient, admin_token: str, database: Database) -> None:
    _, b, c, d = (create(client, admin_token, name=name) for name in "abcd")
    assert client.delete(f"{Q}/a", headers=auth(admin_token)).json() == {}
    assert client.delete(f"{Q}/a", headers=auth(admin_token)).status_code == 404
    assert client.delete(f"{Q}/id/{b['id']}", headers=auth(admin_token)).status_code == 200
    assert client.get(f"{Q}/{b['id']}", headers=auth(admin_token)).status_code == 404
    # All or nothing: one unknown id deletes none.
    assert client.post(f"{Q}/delete", json={"ids": [c["id"], 999]}, headers=auth(admin_token)).status_code == 404
    bulk = client.post(f"{Q}/delete", json={"ids": [c["id"], d["id"]]}, headers=auth(admin_token))
    assert bulk.status_code == 200 and bulk.json() == {"deleted": 2}
    assert client.get(Q, headers=auth(admin_token)).json()["queries"] == []
    kinds = [kind for kind, _ in activities(database)]
    assert kinds[-3:] == ["deleted_saved_query", "deleted_saved_query", "deleted_multiple_saved_query"]
    assert activities(database)[-1][1]["query_ids"] == [c["id"], d["id"]]


def test_roles(client: TestClient, admin_token: str, database: Database) -> None:
    query = create(client, admin_token)
    observer = make_user(database, "obs@example.com", "observer")
    maintainer = make_user(database, "maint@example.com", "maintainer")
    assert client.get(Q, headers=auth(observer)).status_code == 200
    assert client.get(f"{Q}/{query['id']}/report", headers=auth(observer)).status_code == 200
    assert client.post(Q, json={**NEW_QUERY, "name": "x"}, headers=auth(observer)).status_code == 403
    assert client.patch(f"{Q}/{query['id']}", json={"name": "y"}, headers=auth(observer)).status_code == 403
    assert client.delete(f"{Q}/id/{query['id']}", headers=auth(observer)).status_code == 403
    assert client.post(Q, json={**NEW_QUERY, "name": "m"}, headers=auth(maintainer)).status_code == 200
    assert client.get(Q).status_code == 401


def test_team_queries(client: TestClient, admin_token: str, database: Database) -> None:
    team = make_team(database, "Servers")
    other_team = make_team(database, "Laptops")
    team_maintainer = make_user(database, "tm@example.com", None, teams={team: "maintainer"})
    create(client, admin_token, name="global")
    # A team maintainer writes their team's queries, not global ones or another team's.
    assert client.post(Q, json={**NEW_QUERY, "name": "g2"}, headers=auth(team_maintainer)).status_code == 403
    assert client.post(Q, json={**NEW_QUERY, "name": "t", "team_id": other_team},
                       headers=auth(team_maintainer)).status_code == 403
    own = client.post(Q, json={**NEW_QUERY, "name": "global", "team_id": team}, headers=auth(team_maintainer))
    assert own.status_code == 200 and own.json()["query"]["team_id"] == team  # names are unique per team
    listed = client.get(Q, params={"team_id": team}, headers=auth(admin_token)).json()["queries"]
    assert [q["name"] for q in listed] == ["global"] and listed[0]["team_id"] == team
    merged = client.get(Q, params={"team_id": team, "merge_inherited": "true"}, headers=auth(team_maintainer))
    assert sorted(q["team_id"] or 0 for q in merged.json()["queries"]) == [0, team]
    assert client.get(Q, params={"team_id": other_team}, headers=auth(team_maintainer)).status_code == 404
    assert client.delete(f"{Q}/global", params={"team_id": team}, headers=auth(team_maintainer)).status_code == 200
    assert client.delete(f"{Q}/global", headers=auth(team_maintainer)).status_code == 403


def test_reports(client: TestClient, admin_token: str, database: Database, state: ServerState) -> None:
    query = create(client, admin_token)
    web = add_host(database, "web1")
    db = add_host(database, "db1")
    with database.session() as session:
        session.get_one(Host, db).display_name = "Database"
        session.add(report_of(query["id"], web, [{"model": "USB 2.0 Hub", "vendor": "VIA"},
                                                  {"model": "Keyboard", "vendor": "Apple"}]))
        session.add(report_of(query["id"], db, [{"model": "Disk", "vendor": "WD"}]))
    report = client.get(f"{Q}/{query['id']}/report", headers=auth(admin_token)).json()
    assert report["query_id"] == query["id"] and report["report_clipped"] is False
    assert [(r["host_id"], r["host_name"], r["columns"]["model"]) for r in report["results"]] == [
        (web, "web1", "USB 2.0 Hub"), (web, "web1", "Keyboard"), (db, "Database", "Disk")]
    assert report["results"][0]["last_fetched"].endswith("Z")

    per_host = client.get(f"/api/v1/fleet/hosts/{db}/queries/{query['id']}", headers=auth(admin_token)).json()
    assert per_host["host_id"] == db and per_host["host_name"] == "Database" and per_host["query_id"] == query["id"]
    assert per_host["results"] == [{"columns": {"model": "Disk", "vendor": "WD"}}]
    assert per_host["last_fetched"] is not None and per_host["report_clipped"] is False
    empty_host = add_host(database, "new1")
    empty = client.get(f"/api/v1/fleet/hosts/{empty_host}/queries/{query['id']}", headers=auth(admin_token)).json()
    assert empty["results"] == [] and empty["last_fetched"] is None
    assert client.get(f"/api/v1/fleet/hosts/999/queries/{query['id']}", headers=auth(admin_token)).status_code == 404
    assert client.get(f"/api/v1/fleet/hosts/{db}/queries/999", headers=auth(admin_token)).status_code == 404

    state.settings = SimpleNamespace(query_report_cap=2)
    clipped = client.get(f"{Q}/{query['id']}/report", headers=auth(admin_token)).json()
    assert clipped["report_clipped"] is True and len(clipped["results"]) == 2


def test_team_user_sees_only_team_hosts_in_report(client: TestClient, admin_token: str, database: Database) -> None:
    team = make_team(database, "Servers")
    observer = make_user(database, "to@example.com", None, teams={team: "observer"})
    query = create(client, admin_token)
    inside, outside = add_host(database, "in", team), add_host(database, "out")
    with database.session() as session:
        for host_id in (inside, outside):
            session.add(report_of(query["id"], host_id, [{"x": str(host_id)}]))
    report = client.get(f"{Q}/{query['id']}/report", headers=auth(observer)).json()
    assert [r["host_id"] for r in report["results"]] == [inside]
    assert client.get(f"/api/v1/fleet/hosts/{outside}/queries/{query['id']}",
                      headers=auth(observer)).status_code == 404
