"""Software inventory endpoints: versions with host counts, filters, paging, team scoping."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from inventory_helpers import make_host
from server_helpers import assert_fleet_error, auth, make_user

from hostql.server.storage.db import Database
from hostql.server.storage.models import HostSoftware, Software, Team

API = "/api/v1/fleet"


@pytest.fixture
def inventory(database: Database) -> dict[str, int]:
    """Hosts one and two (no team) have curl 7.88; host three (team "web") has nginx 1.22; zsh is on no host."""
    with database.session() as session:
        team = Team(name="web")
        session.add(team)
        session.flush()
        team_id = team.id
    hosts = [make_host(database, "one"), make_host(database, "two"), make_host(database, "three", team_id=team_id)]
    with database.session() as session:
        curl = Software(name="curl", version="7.88.1", source="deb_packages", arch="amd64")
        nginx = Software(name="nginx", version="1.22.1", source="deb_packages", arch="amd64", vendor="Debian")
        zsh = Software(name="zsh", version="5.9", source="deb_packages")
        session.add_all([curl, nginx, zsh])
        session.flush()
        session.add_all([HostSoftware(host_id=hosts[0], software_id=curl.id),
                         HostSoftware(host_id=hosts[1], software_id=curl.id),
                         HostSoftware(host_id=hosts[2], software_id=nginx.id)])
        return {"curl": curl.id, "nginx": nginx.id, "zsh": zsh.id, "team": team_id}


def _get(client: TestClient, token: str, path: str, **params: Any) -> Any:
    response = client.get(f"{API}{path}", params=params, headers=auth(token))
    assert response.status_code == 200, response.text
    return response.json()


def test_versions_list_software_on_hosts_with_counts(client: TestClient, admin_token: str,
                                                     inventory: dict[str, int]) -> None:
    body = _get(client, admin_token, "/software")
    assert body["counts_updated_at"].endswith("Z")
    assert [(s["name"], s["version"], s["hosts_count"]) for s in body["software"]] == [
        ("curl", "7.88.1", 2), ("nginx", "1.22.1", 1)]  # zsh is on no host
    assert body["software"][0] == {"id": inventory["curl"], "name": "curl", "version": "7.88.1",
                                   "source": "deb_packages", "arch": "amd64", "vendor": "", "generated_cpe": "",
                                   "vulnerabilities": None, "hosts_count": 2}
    ordered = _get(client, admin_token, "/software/versions", order_key="hosts_count", order_direction="asc")
    assert [s["name"] for s in ordered["software"]] == ["nginx", "curl"] and ordered["count"] == 2
    page = _get(client, admin_token, "/software/versions", page=0, per_page=1, order_key="name")
    assert [s["name"] for s in page["software"]] == ["curl"]
    assert page["meta"] == {"has_next_results": True, "has_previous_results": False}
    last = _get(client, admin_token, "/software/versions", page=1, per_page=1, order_key="name")
    assert [s["name"] for s in last["software"]] == ["nginx"]
    assert last["meta"] == {"has_next_results": False, "has_previous_results": True}


def test_search_team_filter_vulnerable_and_count(client: TestClient, admin_token: str,
                                                 inventory: dict[str, int]) -> None:
    assert [s["name"] for s in _get(client, admin_token, "/software", query="NGI")["software"]] == ["nginx"]
    assert [s["name"] for s in _get(client, admin_token, "/software", query="7.88")["software"]] == ["curl"]
    assert [s["name"] for s in _get(client, admin_token, "/software", team_id=inventory["team"])["software"]] == [
        "nginx"]
    # No vulnerability feeds are matched, so nothing is known to be vulnerable.
    assert _get(client, admin_token, "/software", vulnerable="true")["software"] == []
    assert _get(client, admin_token, "/software/count") == {"count": 2}
    assert _get(client, admin_token, "/software/count", query="curl") == {"count": 1}


def test_one_version_and_unknown_ids(client: TestClient, admin_token: str, inventory: dict[str, int]) -> None:
    for path in (f"/software/versions/{inventory['curl']}", f"/software/{inventory['curl']}"):
        assert _get(client, admin_token, path)["software"]["hosts_count"] == 2
    for missing in (inventory["zsh"], 999_999):  # zsh exists but no host has it
        response = client.get(f"{API}/software/versions/{missing}", headers=auth(admin_token))
        assert response.status_code == 404, response.text
        assert_fleet_error(response.json())
    response = client.get(f"{API}/software", params={"order_key": "bogus"}, headers=auth(admin_token))
    assert response.status_code == 422 and response.json()["errors"][0]["name"] == "order_key"


def test_team_users_see_their_teams_hosts_software_only(client: TestClient, database: Database,
                                                        inventory: dict[str, int]) -> None:
    token = make_user(database, "web-observer@example.com", None, teams={inventory["team"]: "observer"})
    body = _get(client, token, "/software")
    assert [(s["name"], s["hosts_count"]) for s in body["software"]] == [("nginx", 1)]
    assert _get(client, token, "/software/count") == {"count": 1}
    assert client.get(f"{API}/software/versions/{inventory['curl']}", headers=auth(token)).status_code == 404
    with database.session() as session:
        other = Team(name="db")
        session.add(other)
        session.flush()
        other_id = other.id
    refused = client.get(f"{API}/software", params={"team_id": other_id}, headers=auth(token))
    assert refused.status_code == 403, refused.text
    assert_fleet_error(refused.json())
