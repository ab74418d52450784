"""``/os_versions`` and the hosts filters by OS version."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from inventory_helpers import make_host
from server_helpers import assert_fleet_error, auth, make_team, make_user

from hostql.server.services.os_versions import os_version_id, split_name
from hostql.server.storage.db import Database

API = "/api/v1/fleet"


def test_names_split_before_the_first_number() -> None:
    assert split_name("Ubuntu 22.04.3 LTS") == ("Ubuntu", "22.04.3 LTS")
    assert split_name("Debian GNU/Linux 12.0.0") == ("Debian GNU/Linux", "12.0.0")
    assert split_name("Arch Linux") == ("Arch Linux", "")
    assert os_version_id("ubuntu", "Ubuntu 22.04.3 LTS") == os_version_id("ubuntu", "Ubuntu 22.04.3 LTS") > 0
    assert os_version_id("ubuntu", "Ubuntu 22.04.3 LTS") != os_version_id("ubuntu", "Ubuntu 24.04.1 LTS")


def test_os_versions_count_hosts_and_filter_the_host_list(client: TestClient, database: Database,
                                                          admin_token: str) -> None:
    team = make_team(database, "Servers")
    for index, (platform, name, team_id) in enumerate((
            ("ubuntu", "Ubuntu 22.04.3 LTS", None), ("ubuntu", "Ubuntu 22.04.3 LTS", team),
            ("darwin", "macOS 14.1.0", None), ("ubuntu", "", None))):
        make_host(database, f"h{index}", platform=platform, os_version=name, team_id=team_id)
    h = auth(admin_token)

    def get(path: str, headers: dict[str, str] = h, **params: Any) -> Any:
        reply = client.get(f"{API}{path}", params=params, headers=headers)
        assert reply.status_code == 200, reply.text
        return reply.json()

    body = get("/os_versions")
    assert body["count"] == 2 and body["counts_updated_at"]
    ubuntu, mac = body["os_versions"]  # the most common first; a host without one is not counted
    assert ubuntu == {"os_version_id": os_version_id("ubuntu", "Ubuntu 22.04.3 LTS"), "hosts_count": 2,
                      "name": "Ubuntu 22.04.3 LTS", "name_only": "Ubuntu", "version": "22.04.3 LTS",
                      "platform": "ubuntu", "generated_cpes": [], "vulnerabilities": []}
    assert (mac["name_only"], mac["version"], mac["hosts_count"]) == ("macOS", "14.1.0", 1)
    assert [v["name"] for v in get("/os_versions", platform="darwin")["os_versions"]] == ["macOS 14.1.0"]
    assert get("/os_versions", team_id=team)["os_versions"][0]["hosts_count"] == 1
    assert get(f"/os_versions/{mac['os_version_id']}")["os_version"] == mac
    missing = client.get(f"{API}/os_versions/12345", headers=h)
    assert missing.status_code == 404
    assert_fleet_error(missing.json())

    def hostnames(**params: Any) -> list[str]:
        return sorted(host["hostname"] for host in get("/hosts", **params)["hosts"])

    assert hostnames(os_version_id=ubuntu["os_version_id"]) == ["h0", "h1"]
    assert hostnames(os_name="macOS", os_version="14.1.0") == ["h2"]
    assert hostnames(os_version_id=12345) == []
    alone = client.get(f"{API}/hosts", params={"os_name": "macOS"}, headers=h)
    assert alone.status_code == 422 and alone.json()["errors"][0]["name"] == "os_version"
    team_user = auth(make_user(database, "t@example.com", None, teams={team: "observer"}))
    assert [(v["name"], v["hosts_count"]) for v in get("/os_versions", team_user)["os_versions"]] == [
        ("Ubuntu 22.04.3 LTS", 1)]
