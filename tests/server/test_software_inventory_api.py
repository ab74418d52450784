"""Software inventory endpoints: versions with host counts, filters, paging, team scoping."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from inventory_helpers import make_host
from server_helpers import assert_fleet_error, auth, make_user
from sqlalchemy import select

from hostql.server.storage.db import Database
from hostql.server.storage.models import Host, HostSoftware, Software, Team

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


def test_titles_group_versions_by_name_and_source(client: TestClient, database: Database, admin_token: str,
                                                  inventory: dict[str, int]) -> None:
    with database.session() as session:  # a second curl version, on the team's host
        newer = Software(name="curl", version="8.5.0", source="deb_packages", arch="amd64")
        python_curl = Software(name="curl", version="0.1", source="python_packages")  # another title
        session.add_all([newer, python_curl])
        session.flush()
        three = session.scalars(select(Host.id).where(Host.hostname == "three")).one()
        one = session.scalars(select(Host.id).where(Host.hostname == "one")).one()
        session.add_all([HostSoftware(host_id=three, software_id=newer.id),
                         HostSoftware(host_id=one, software_id=python_curl.id)])
        newer_id, python_id = newer.id, python_curl.id
    body = _get(client, admin_token, "/software/titles", order_key="name")
    assert body["count"] == 3 and body["meta"] == {"has_next_results": False, "has_previous_results": False}
    titles = {(t["name"], t["source"]): t for t in body["software_titles"]}
    assert set(titles) == {("curl", "deb_packages"), ("curl", "python_packages"), ("nginx", "deb_packages")}
    curl = titles[("curl", "deb_packages")]
    assert curl["id"] == inventory["curl"]  # the title's id: its oldest version's
    assert (curl["hosts_count"], curl["versions_count"]) == (3, 2)
    assert [(v["id"], v["version"]) for v in curl["versions"]] == [(inventory["curl"], "7.88.1"),
                                                                  (newer_id, "8.5.0")]
    by_hosts = _get(client, admin_token, "/software/titles", order_key="hosts_count", order_direction="desc",
                    per_page=1)
    assert [t["name"] for t in by_hosts["software_titles"]] == ["curl"] and by_hosts["meta"]["has_next_results"]
    assert [t["source"] for t in _get(client, admin_token, "/software/titles", query="CURL")["software_titles"]] \
        == ["deb_packages", "python_packages"]
    assert _get(client, admin_token, "/software/titles", vulnerable="true")["software_titles"] == []
    one_title = _get(client, admin_token, f"/software/titles/{inventory['curl']}")["software_title"]
    assert [(v["version"], v["hosts_count"]) for v in one_title["versions"]] == [("7.88.1", 2), ("8.5.0", 1)]
    team = _get(client, admin_token, "/software/titles", team_id=inventory["team"])["software_titles"]
    assert [(t["name"], t["hosts_count"], [v["version"] for v in t["versions"]]) for t in team] == [
        ("curl", 1, ["8.5.0"]), ("nginx", 1, ["1.22.1"])]
    # A version's id that is not the title's, a title on no host, an unknown id: 404.
    for missing in (newer_id, inventory["zsh"], 99999):
        reply = client.get(f"{API}/software/titles/{missing}", headers=auth(admin_token))
        assert reply.status_code == 404, (missing, reply.text)
        assert_fleet_error(reply.json())
    team_user = make_user(database, "tt@example.com", None, teams={inventory["team"]: "observer"})
    seen = _get(client, team_user, "/software/titles")["software_titles"]
    assert sorted(t["name"] for t in seen) == ["curl", "nginx"] and python_id not in {t["id"] for t in seen}
    assert client.get(f"{API}/software/titles/{python_id}", headers=auth(team_user)).status_code == 404


def test_hosts_filtered_by_software_version_and_title(client: TestClient, database: Database, admin_token: str,
                                                      inventory: dict[str, int]) -> None:
    with database.session() as session:
        newer = Software(name="curl", version="8.5.0", source="deb_packages")
        session.add(newer)
        session.flush()
        three = session.scalars(select(Host.id).where(Host.hostname == "three")).one()
        session.add(HostSoftware(host_id=three, software_id=newer.id))
        newer_id = newer.id

    def hostnames(**params: Any) -> list[str]:
        return sorted(h["hostname"] for h in _get(client, admin_token, "/hosts", **params)["hosts"])

    assert hostnames(software_version_id=inventory["curl"]) == ["one", "two"]
    assert hostnames(software_id=newer_id) == ["three"]  # the older parameter name
    assert hostnames(software_title_id=inventory["curl"]) == ["one", "three", "two"]
    assert hostnames(software_title_id=newer_id) == []  # a version's id, not the title's
    assert hostnames(software_title_id=inventory["curl"], team_id=inventory["team"]) == ["three"]
    assert _get(client, admin_token, "/hosts/count", software_title_id=inventory["nginx"]) == {"count": 1}
