"""Whole system with two server instances sharing one PostgreSQL and one Redis.

Instance A runs ``--dev`` (it migrates the shared database and makes the CA, the
certificate, the admin and the enroll secret); instance B serves the same
database with A's certificate.  One agent enrolls at A and two at B.  A campaign
created through A's REST API and read through A's WebSocket gets the answers of
the agents checking in at B (targets and results travel through Redis); the
synchronous run on B reaches the agent at A; policy, label, query report and the
result logs (each instance writes its own) cover all three hosts; a host deleted
through A re-enrolls at B.
"""

from __future__ import annotations

import pytest
from dbservers import DbServer, postgres_server, redis_server  # noqa: F401  (fixtures)
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
    result_log_lines,
    system,  # noqa: F401  (fixture)
    wait_until,
)

pytestmark = pytest.mark.slow

AT_A = ("agent-0",)  # the other agents enroll at instance B


def test_two_instances_with_redis(system: System, postgres_server: DbServer,  # noqa: F811
                                  redis_server: DbServer) -> None:  # noqa: F811
    db, redis = postgres_server.new_database(), redis_server.url()
    server_a = system.start_server("server-a", db=db, redis=redis)
    server_b = system.start_server("server-b", db=db, redis=redis, dev=False, ca=server_a.ca,
                                   tls=(server_a.data_dir / "server.pem", server_a.data_dir / "server-key.pem"))
    api_a = system.login(server_a)
    api_b = system.login(server_b, credentials_from=server_a.data_dir)
    assert api_b.get("/api/v1/fleet/me")["user"]["email"] == "admin@hostql.local"
    fixtures = create_fixtures(api_a)
    for name, role in ROLES.items():
        system.start_agent(server_a if name in AT_A else server_b, name, role, ca=server_a.ca,
                           secret_file=server_a.enroll_secret_file)

    ids = host_ids(api_a, system.agents)
    assert host_ids(api_b, system.agents) == ids  # one database behind both
    check_vitals(api_a, ids)

    # A campaign on A (REST + WebSocket) answered by agents checking in at A and at B.
    check_campaign(api_a, ids)
    # The synchronous run on B waits for the agent checking in at A.
    check_sync_run(api_b, ids, fixtures["role"], ROLES)
    check_policy(api_b, ids, fixtures["policy"])
    check_label(api_a, ids, fixtures["label"])
    check_report_and_log(api_a, [server_a, server_b], ids, fixtures["scheduled"])

    # Each instance logs the results of the agents that send their logs to it.
    def log_identifiers(server_log: list[dict[str, str]]) -> set[str]:
        return {line["hostIdentifier"] for line in server_log if line.get("name", "").endswith("agent identity")}

    assert log_identifiers(result_log_lines(server_a.result_log)) == set(AT_A)
    assert log_identifiers(result_log_lines(server_b.result_log)) == set(ROLES) - set(AT_A)

    # Deleted through A, the host of an agent at B: that agent enrolls again at B.
    ids = check_reenroll(api_a, ids, "agent-2", fixtures["policy"], fixtures["role"])
    wait_until(lambda: api_b.get(f"/api/v1/fleet/hosts/{ids['agent-2']}")["host"]["status"] == "online",
               "the re-enrolled host online at B")
    check_campaign(api_a, ids)

    for agent in system.agents:
        assert agent.process.alive(), agent.process.stderr()[-3000:]
        assert agent.process.stop() == 0, agent.process.stderr()[-3000:]
    assert_clean_stop(server_b)
    assert_clean_stop(server_a)
