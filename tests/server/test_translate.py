"""``POST /translate``: names to ids for fleetctl, within what the caller may see."""

from __future__ import annotations

from fastapi.testclient import TestClient
from inventory_helpers import make_host
from server_helpers import assert_fleet_error, auth, make_team, make_user

from hostql.server.services.labels import seed_builtin_labels
from hostql.server.storage.db import Database

API = "/api/v1/fleet"


def test_names_become_ids_and_unknown_ones_are_named(client: TestClient, database: Database,
                                                     admin_token: str) -> None:
    with database.session() as session:
        [all_hosts, *_] = seed_builtin_labels(session)
        all_hosts_id = all_hosts.id
    team = make_team(database, "Servers")
    host = make_host(database, "web-01", team_id=team)
    items = [{"type": "label", "payload": {"identifier": "All Hosts"}},
             {"type": "team", "payload": {"identifier": "Servers"}},
             {"type": "host", "payload": {"identifier": "web-01"}},
             {"type": "user", "payload": {"identifier": "ADMIN@example.com"}}]
    reply = client.post(f"{API}/translate", json={"list": items}, headers=auth(admin_token))
    assert reply.status_code == 200, reply.text
    ids = [item["payload"]["id"] for item in reply.json()["list"]]
    assert ids[:3] == [all_hosts_id, team, host] and isinstance(ids[3], int)
    assert reply.json()["list"][0] == {"type": "label", "payload": {"identifier": "All Hosts", "id": all_hosts_id}}
    for item, status, field in (({"type": "host", "payload": {"identifier": "nope"}}, 404, "list.0.payload.identifier"),
                                ({"type": "query", "payload": {"identifier": "x"}}, 400, "list.0.type"),
                                ({"type": "host"}, 422, "list.0.payload")):
        bad = client.post(f"{API}/translate", json={"list": [item]}, headers=auth(admin_token))
        assert bad.status_code == status, bad.text
        assert_fleet_error(bad.json())
        assert bad.json()["errors"][0]["name"] == field, bad.json()
    # A team observer of another team sees neither the host nor the team; other users' emails are admins' only.
    other = make_team(database, "Laptops")
    observer = auth(make_user(database, "obs@example.com", None, teams={other: "observer"}))
    for item in items[1:]:
        assert client.post(f"{API}/translate", json={"list": [item]}, headers=observer).status_code == 404, item
    mine = {"type": "user", "payload": {"identifier": "obs@example.com"}}
    own = client.post(f"{API}/translate", json={"list": [mine]}, headers=observer)
    assert own.status_code == 200 and own.json()["list"][0]["payload"]["id"] > 0
