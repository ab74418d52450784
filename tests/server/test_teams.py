"""Teams REST API, team enroll secrets, global enroll secrets, agent options, permissions."""

from __future__ import annotations

from fastapi.testclient import TestClient
from inventory_helpers import make_host
from server_helpers import assert_fleet_error, auth, make_team, make_user
from sqlalchemy import select

from hostql.server.storage.db import Database
from hostql.server.storage.models import Activity, EnrollSecret, Host

API = "/api/v1/fleet"


def activity_types(database: Database) -> list[str]:
    with database.session() as session:
        return [a.type for a in session.scalars(select(Activity).order_by(Activity.id))]


def test_team_lifecycle(client: TestClient, database: Database, admin_token: str) -> None:
    h = auth(admin_token)
    created = client.post(f"{API}/teams", json={"name": "Workstations", "description": "desks"}, headers=h)
    assert created.status_code == 200, created.text
    team = created.json()["team"]
    assert team["name"] == "Workstations" and team["description"] == "desks"
    assert team["host_count"] == 0 and team["user_count"] == 0
    assert len(team["secrets"]) == 1 and team["secrets"][0]["team_id"] == team["id"]  # one generated
    assert client.post(f"{API}/teams", json={"name": "Workstations"}, headers=h).status_code == 409

    host = make_host(database, "desk-1", team_id=team["id"])
    got = client.get(f"{API}/teams/{team['id']}", headers=h).json()["team"]
    assert got["host_count"] == 1
    renamed = client.patch(f"{API}/teams/{team['id']}", json={"name": "Desks",
                                                              "webhook_settings": {"x": 1}}, headers=h)
    assert renamed.json()["team"]["name"] == "Desks" and renamed.json()["team"]["webhook_settings"] == {"x": 1}
    options = {"config": {"options": {"distributed_interval": 10}}, "overrides": {}}
    set_opts = client.post(f"{API}/teams/{team['id']}/agent_options", json=options, headers=h)
    assert set_opts.status_code == 200 and set_opts.json()["team"]["agent_options"] == options
    bad = client.post(f"{API}/teams/{team['id']}/agent_options", json={"nonsense": 1}, headers=h)
    assert bad.status_code == 422
    listed = client.get(f"{API}/teams", headers=h).json()["teams"]
    assert [t["name"] for t in listed] == ["Desks"]

    assert client.delete(f"{API}/teams/{team['id']}", headers=h).json() == {}
    assert client.get(f"{API}/teams/{team['id']}", headers=h).status_code == 404
    with database.session() as session:
        moved = session.get(Host, host)
        assert moved is not None and moved.team_id is None  # the host stays, in no team
        assert session.scalars(select(EnrollSecret)).all() == []
    assert activity_types(database) == ["created_team", "edited_team", "edited_agent_options", "deleted_team"]


def test_team_secrets_replace_all(client: TestClient, database: Database, admin_token: str) -> None:
    h = auth(admin_token)
    team = client.post(f"{API}/teams", json={"name": "T", "secrets": [{"secret": "one"}]}, headers=h).json()["team"]
    assert [s["secret"] for s in team["secrets"]] == ["one"]
    first_created = team["secrets"][0]["created_at"]
    replaced = client.patch(f"{API}/teams/{team['id']}/secrets",
                            json={"secrets": [{"secret": "one"}, {"secret": "two"}]}, headers=h)
    assert replaced.status_code == 200
    secrets = replaced.json()["secrets"]
    assert [s["secret"] for s in secrets] == ["one", "two"] and secrets[0]["created_at"] == first_created
    got = client.get(f"{API}/teams/{team['id']}/secrets", headers=h).json()["secrets"]
    assert [s["secret"] for s in got] == ["one", "two"]
    only = client.patch(f"{API}/teams/{team['id']}/secrets", json={"secrets": [{"secret": "three"}]}, headers=h)
    assert [s["secret"] for s in only.json()["secrets"]] == ["three"]
    # A secret of another scope cannot be reused.
    client.post(f"{API}/spec/enroll_secret", json={"spec": {"secrets": [{"secret": "global"}]}}, headers=h)
    clash = client.patch(f"{API}/teams/{team['id']}/secrets", json={"secrets": [{"secret": "global"}]}, headers=h)
    assert clash.status_code == 409
    assert "edited_enroll_secrets" in activity_types(database)


def test_global_enroll_secret_spec(client: TestClient, admin_token: str) -> None:
    h = auth(admin_token)
    assert client.get(f"{API}/spec/enroll_secret", headers=h).json() == {"spec": {"secrets": []}}
    body = {"spec": {"secrets": [{"secret": "vhPzPOnCMOMoqSrLxKxzSADyqncayacB"}, {"secret": "b"}]}}
    assert client.post(f"{API}/spec/enroll_secret", json=body, headers=h).json() == {}
    got = client.get(f"{API}/spec/enroll_secret", headers=h).json()["spec"]["secrets"]
    assert [s["secret"] for s in got] == ["vhPzPOnCMOMoqSrLxKxzSADyqncayacB", "b"]
    assert set(got[0]) == {"secret", "created_at"} and got[0]["created_at"].endswith("Z")
    # Posting back what GET returned (with created_at) works; replacing drops the others.
    assert client.post(f"{API}/spec/enroll_secret", json={"spec": {"secrets": got[1:]}}, headers=h).status_code == 200
    assert [s["secret"] for s in client.get(f"{API}/spec/enroll_secret", headers=h).json()["spec"]["secrets"]] == ["b"]
    too_many = {"spec": {"secrets": [{"secret": f"s{i}"} for i in range(51)]}}
    response = client.post(f"{API}/spec/enroll_secret", json=too_many, headers=h)
    assert response.status_code == 422
    assert_fleet_error(response.json())
    fifty = {"spec": {"secrets": [{"secret": f"s{i}"} for i in range(50)]}}
    assert client.post(f"{API}/spec/enroll_secret", json=fifty, headers=h).status_code == 200


def test_maintainer_cannot_manage_teams(client: TestClient, database: Database) -> None:
    team = make_team(database, "Existing")
    h = auth(make_user(database, "m@example.com", "maintainer"))
    for method, url, body in (("POST", f"{API}/teams", {"name": "New"}),
                              ("PATCH", f"{API}/teams/{team}", {"name": "x"}),
                              ("DELETE", f"{API}/teams/{team}", None),
                              ("POST", f"{API}/teams/{team}/agent_options", {"config": {}}),
                              ("POST", f"{API}/spec/teams", {"specs": [{"name": "Z"}]})):
        response = client.request(method, url, json=body, headers=h)
        assert response.status_code == 403, (method, url, response.text)
        assert_fleet_error(response.json())
    # ...but may manage enroll secrets, and read teams.
    assert client.get(f"{API}/teams", headers=h).status_code == 200
    ok = client.patch(f"{API}/teams/{team}/secrets", json={"secrets": [{"secret": "m"}]}, headers=h)
    assert ok.status_code == 200


def test_observer_cannot_see_secrets(client: TestClient, database: Database) -> None:
    team = make_team(database, "T")
    h = auth(make_user(database, "o@example.com", "observer"))
    assert client.get(f"{API}/spec/enroll_secret", headers=h).status_code == 403
    assert client.get(f"{API}/teams/{team}/secrets", headers=h).status_code == 403
    assert client.get(f"{API}/teams/{team}", headers=h).status_code == 200


def test_team_user_sees_only_own_teams(client: TestClient, database: Database) -> None:
    mine = make_team(database, "Mine")
    other = make_team(database, "Other")
    h = auth(make_user(database, "t@example.com", None, teams={mine: "admin"}))
    assert [t["name"] for t in client.get(f"{API}/teams", headers=h).json()["teams"]] == ["Mine"]
    assert client.get(f"{API}/teams/{other}", headers=h).status_code == 403
    # A team admin may change their team's agent options, not another team's.
    assert client.post(f"{API}/teams/{mine}/agent_options", json={"config": {}}, headers=h).status_code == 200
    assert client.post(f"{API}/teams/{other}/agent_options", json={"config": {}}, headers=h).status_code == 403


def test_team_users_are_managed_by_global_and_team_admins(client: TestClient, database: Database,
                                                           admin_token: str) -> None:
    h = auth(admin_token)
    desks, laptops = make_team(database, "Desks"), make_team(database, "Laptops")
    make_user(database, "ann@example.com", None, teams={laptops: "observer"})
    make_user(database, "glob@example.com", "observer")
    with database.session() as session:
        from hostql.server.storage.models import User

        ann, glob = (session.scalars(select(User.id).where(User.email == email)).one()
                     for email in ("ann@example.com", "glob@example.com"))
    added = client.patch(f"{API}/teams/{desks}/users", json={"users": [{"id": ann, "role": "maintainer"}]},
                         headers=h)
    assert added.status_code == 200 and added.json()["team"]["user_count"] == 1, added.text
    members = client.get(f"{API}/teams/{desks}/users", headers=h).json()["users"]
    assert [(m["email"], m["role"]) for m in members] == [("ann@example.com", "maintainer")]
    ann_teams = client.get(f"{API}/users/{ann}", headers=h).json()["user"]["teams"]
    assert {(t["id"], t["role"]) for t in ann_teams} == {(desks, "maintainer"), (laptops, "observer")}
    assert "changed_user_team_role" in activity_types(database)

    # A team admin manages its own team's users, not another team's.
    team_admin = auth(make_user(database, "boss@example.com", None, teams={desks: "admin"}))
    promoted = client.patch(f"{API}/teams/{desks}/users", json={"users": [{"id": ann, "role": "admin"}]},
                            headers=team_admin)
    assert promoted.status_code == 200, promoted.text
    assert client.get(f"{API}/teams/{laptops}/users", headers=team_admin).status_code == 403
    assert client.patch(f"{API}/teams/{laptops}/users", json={"users": [{"id": ann, "role": "admin"}]},
                        headers=team_admin).status_code == 403
    maintainer = auth(make_user(database, "m@example.com", None, teams={desks: "maintainer"}))
    assert client.get(f"{API}/teams/{desks}/users", headers=maintainer).status_code == 403

    removed = client.request("DELETE", f"{API}/teams/{desks}/users", json={"users": [{"id": ann}]}, headers=h)
    assert removed.status_code == 200 and removed.json()["team"]["user_count"] == 2, removed.text
    assert [t["id"] for t in client.get(f"{API}/users/{ann}", headers=h).json()["user"]["teams"]] == [laptops]
    for method, team, body, field in (
            ("PATCH", desks, {"users": [{"id": glob, "role": "observer"}]}, "users"),  # has a global role
            ("PATCH", desks, {"users": [{"id": ann, "role": "owner"}]}, "teams"),  # no such role
            ("PATCH", desks, {"users": [{"id": 9999, "role": "observer"}]}, "id"),
            ("DELETE", desks, {"users": [{"id": ann}]}, "users"),  # not on the team (any more)
            ("PATCH", desks, {"users": [{"id": ann}]}, "users.0.role")):
        bad = client.request(method, f"{API}/teams/{team}/users", json=body, headers=h)
        assert bad.status_code in (404, 422), (body, bad.text)
        assert_fleet_error(bad.json())
        assert field in {e["name"] for e in bad.json()["errors"]}, (body, bad.json())
    # Laptops is Ann's last role: taking it away is refused, so she is never left without one.
    last = client.request("DELETE", f"{API}/teams/{laptops}/users", json={"users": [{"id": ann}]}, headers=h)
    assert last.status_code == 422 and "only role" in last.json()["errors"][0]["reason"], last.text
