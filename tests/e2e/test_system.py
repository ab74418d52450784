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

import pytest
from dbservers import mariadb_server, postgres_server  # noqa: F401  (fixtures)
from system_helpers import (
    ROLES,
    System,
    assert_clean_stop,
    check_campaign,
    check_label,
    check_policy,
    check_reenroll,
    check_report_and_log,
    check_sync_run,
    check_vitals,
    create_fixtures,
    host_ids,
    system,  # noqa: F401  (fixture)
)

pytestmark = pytest.mark.slow


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Empty: the dev default (SQLite in the data directory); else a new database on the throwaway server."""
    if request.param == "sqlite":
        return ""
    server = request.getfixturevalue("postgres_server" if request.param == "postgresql" else "mariadb_server")
    return str(server.new_database())


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

