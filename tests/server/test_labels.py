"""Labels REST API: builtins, dynamic and manual labels, counts, hosts of a label, summary."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from inventory_helpers import add_member, freeze, make_host
from server_helpers import assert_fleet_error, auth, make_user
from sqlalchemy import select

from hostql.server.services.labels import BUILTIN_LABELS, seed_builtin_labels
from hostql.server.state import ServerState
from hostql.server.storage.db import Database
from hostql.server.storage.models import Activity, Label

API = "/api/v1/fleet"


@pytest.fixture
def seeded(database: Database, state: ServerState) -> None:
    freeze(state)
    with database.session() as session:
        seed_builtin_labels(session)


def test_seeding_is_idempotent(database: Database) -> None:
    for _ in range(2):
        with database.session() as session:
            builtins = seed_builtin_labels(session)
    names = [label.name for label in builtins]
    assert names == [entry[0] for entry in BUILTIN_LABELS]
    assert {"All Hosts", "macOS", "MS Windows", "Ubuntu Linux", "CentOS Linux", "Red Hat Linux",
            "All Linux"} == set(names)
    with database.session() as session:
        all_hosts = session.scalars(select(Label).where(Label.name == "All Hosts")).one()
        assert all_hosts.query == "select 1;" and all_hosts.label_type == "builtin"
        assert len(session.scalars(select(Label)).all()) == len(BUILTIN_LABELS)


def test_create_dynamic_label_has_fleet_shape(client: TestClient, admin_token: str, seeded: None) -> None:
    body = {"name": "Ubuntu hosts", "description": "Filters ubuntu hosts",
            "query": "select 1 from os_version where platform = 'ubuntu';", "platform": ""}
    response = client.post(f"{API}/labels", json=body, headers=auth(admin_token))
    assert response.status_code == 200, response.text
    label = response.json()["label"]
    assert {k: label[k] for k in body} == body
    assert label["label_type"] == "regular" and label["label_membership_type"] == "dynamic"
    assert label["display_text"] == "Ubuntu hosts" and label["count"] == 0 and label["host_ids"] is None
    assert label["created_at"].endswith("Z")
    again = client.post(f"{API}/labels", json=body, headers=auth(admin_token))
    assert again.status_code == 409
    assert_fleet_error(again.json())
    no_query = client.post(f"{API}/labels", json={"name": "empty"}, headers=auth(admin_token))
    assert no_query.status_code == 422
    extra = client.post(f"{API}/labels", json={**body, "name": "x", "bogus": 1}, headers=auth(admin_token))
    assert extra.status_code == 422


def test_manual_label_by_hostnames_and_counts(client: TestClient, database: Database, admin_token: str,
                                              seeded: None) -> None:
    a = make_host(database, "alpha")
    b = make_host(database, "beta")
    h = auth(admin_token)
    created = client.post(f"{API}/labels", json={"name": "Manual", "hosts": ["alpha", "beta"]}, headers=h)
    assert created.status_code == 200, created.text
    label = created.json()["label"]
    assert label["label_membership_type"] == "manual" and label["count"] == 2 and label["host_ids"] == [a, b]
    unknown = client.post(f"{API}/labels", json={"name": "Other", "hosts": ["ghost"]}, headers=h)
    assert unknown.status_code == 422
    patched = client.patch(f"{API}/labels/{label['id']}", json={"host_ids": [b], "description": "d"}, headers=h)
    assert patched.json()["label"]["host_ids"] == [b] and patched.json()["label"]["description"] == "d"
    hosts = client.get(f"{API}/labels/{label['id']}/hosts", headers=h).json()["hosts"]
    assert [x["hostname"] for x in hosts] == ["beta"]
    listed = {x["name"]: x for x in client.get(f"{API}/labels", headers=h).json()["labels"]}
    assert listed["Manual"]["count"] == 1


def test_dynamic_label_counts_come_from_membership(client: TestClient, database: Database, admin_token: str,
                                                   seeded: None) -> None:
    hosts = [make_host(database, f"h{i}") for i in range(3)]
    with database.session() as session:
        all_hosts = session.scalars(select(Label).where(Label.name == "All Hosts")).one().id
    for host in hosts[:2]:
        add_member(database, all_hosts, host)
    label = client.get(f"{API}/labels/{all_hosts}", headers=auth(admin_token)).json()["label"]
    assert label["count"] == 2 and label["host_ids"] is None
    online = client.get(f"{API}/labels/{all_hosts}/hosts", params={"status": "online"},
                        headers=auth(admin_token)).json()["hosts"]
    assert sorted(x["id"] for x in online) == hosts[:2]


def test_patch_rules_and_builtins_are_protected(client: TestClient, admin_token: str, seeded: None) -> None:
    h = auth(admin_token)
    label = client.post(f"{API}/labels", json={"name": "L", "query": "select 1;"}, headers=h).json()["label"]
    changed_query = client.patch(f"{API}/labels/{label['id']}", json={"query": "select 2;"}, headers=h)
    assert changed_query.status_code == 422
    renamed = client.patch(f"{API}/labels/{label['id']}", json={"name": "L2"}, headers=h)
    assert renamed.json()["label"]["name"] == "L2"
    builtin = client.get(f"{API}/labels", params={"query": "All Hosts"}, headers=h).json()["labels"][0]
    assert client.patch(f"{API}/labels/{builtin['id']}", json={"name": "x"}, headers=h).status_code == 422
    assert client.delete(f"{API}/labels/id/{builtin['id']}", headers=h).status_code == 422
    assert client.delete(f"{API}/labels/All Hosts", headers=h).status_code == 422


def test_delete_by_name_and_id_with_activities(client: TestClient, database: Database, admin_token: str,
                                               seeded: None) -> None:
    h = auth(admin_token)
    one = client.post(f"{API}/labels", json={"name": "one", "query": "select 1;"}, headers=h).json()["label"]
    client.post(f"{API}/labels", json={"name": "two", "query": "select 1;"}, headers=h)
    assert client.delete(f"{API}/labels/id/{one['id']}", headers=h).json() == {}
    assert client.delete(f"{API}/labels/two", headers=h).json() == {}
    assert client.delete(f"{API}/labels/two", headers=h).status_code == 404
    with database.session() as session:
        types = [a.type for a in session.scalars(select(Activity).order_by(Activity.id))]
    assert types == ["created_label", "created_label", "deleted_label", "deleted_label"]


def test_summary_paging_and_order(client: TestClient, admin_token: str, seeded: None) -> None:
    h = auth(admin_token)
    summary = client.get(f"{API}/labels/summary", headers=h).json()["labels"]
    assert [x["name"] for x in summary][:2] == ["All Hosts", "macOS"]
    assert set(summary[0]) == {"id", "name", "description", "label_type"}
    page = client.get(f"{API}/labels", params={"order_key": "name", "per_page": 2, "page": 0}, headers=h)
    assert [x["name"] for x in page.json()["labels"]] == ["All Hosts", "All Linux"]


def test_observer_cannot_write_labels(client: TestClient, database: Database, seeded: None) -> None:
    h = auth(make_user(database, "o@example.com", "observer"))
    assert client.get(f"{API}/labels", headers=h).status_code == 200
    response = client.post(f"{API}/labels", json={"name": "x", "query": "select 1;"}, headers=h)
    assert response.status_code == 403
    assert_fleet_error(response.json())
