"""Live queries through the ASGI app: campaigns, the results WebSocket, synchronous runs.

Agents are simulated through the real osquery API (enroll, distributed/read,
distributed/write with real node keys).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastapi.testclient import TestClient
from live_helpers import WS, Agent, add_offline_host, next_frame, receive, wait_for
from osquery_agent_helpers import add_secret, configure
from server_helpers import auth, make_team, make_user
from sqlalchemy import select

from hostql.server.services import campaigns, live_targets
from hostql.server.services.listing import CLOCK_KEY
from hostql.server.state import ServerState
from hostql.server.storage.db import Database
from hostql.server.storage.models import Activity, Campaign, Host, Label, LabelMembership, Query, User, utcnow

RUN = "/api/v1/fleet/queries/run"


@pytest.fixture(autouse=True)
def _settings(state: ServerState, database: Database, tmp_path: Path) -> None:
    configure(state, tmp_path, live_query_status_interval=30.0, live_query_rest_period=5.0)
    add_secret(database, "live-secret")


def saved_query(database: Database, sql: str = "SELECT 1 AS one", *, observer_can_run: bool = False) -> int:
    with database.session() as session:
        query = Query(name=f"q{time.time_ns()}", query=sql, observer_can_run=observer_can_run)
        session.add(query)
        session.flush()
        return query.id


def campaign_status(database: Database, campaign_id: int) -> int:
    with database.session() as session:
        return session.get_one(Campaign, campaign_id).status


def start(client: TestClient, token: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(RUN, json=body, headers=auth(token))
    assert response.status_code == 200, response.text
    campaign: dict[str, Any] = response.json()["campaign"]
    return campaign


# --------------------------------------------------------------------------- campaigns + WebSocket


def test_campaign_streams_results_over_the_websocket(client: TestClient, admin_token: str, database: Database,
                                                     state: ServerState) -> None:
    web1, web2 = Agent(client, "web1"), Agent(client, "web2")
    offline = add_offline_host(database, "old1")
    ids = [web1.host_id(database), web2.host_id(database), offline]
    campaign = start(client, admin_token, {"query": "SELECT 1 AS one", "selected": {"hosts": ids}})
    assert campaign["Metrics"] == {"TotalHosts": 3, "OnlineHosts": 2, "OfflineHosts": 1,
                                   "MissingInActionHosts": 0, "NewHosts": 3}
    assert campaign["status"] == 0 and campaign["user_id"] is not None
    with database.session() as session:
        adhoc = session.get_one(Query, campaign["query_id"])
        assert adhoc.saved is False and adhoc.name.startswith("distributed_admin@example.com_")
        assert adhoc.name.rsplit("_", 1)[1].isdigit()
        activity = session.scalars(select(Activity).where(Activity.type == "live_query")).one()
        assert activity.details["targets_count"] == 3
    name = f"fleet_distributed_query_{campaign['id']}"

    with client.websocket_connect(WS) as ws:
        ws.send_json({"type": "auth", "data": {"token": admin_token}})
        ws.send_json({"type": "select_campaign", "data": {"campaign_id": campaign["id"]}})
        assert receive(ws) == {"type": "totals",
                               "data": {"count": 3, "online": 2, "offline": 1, "missing_in_action": 0}}
        assert receive(ws) == {"type": "status", "data": {
            "expected_results": 2, "actual_results": 0, "count_of_hosts_with_results": 0,
            "count_of_hosts_with_no_results": 0, "status": "pending"}}
        assert campaign_status(database, campaign["id"]) == 1

        assert web1.live_queries() == {name: "SELECT 1 AS one"}
        web1.answer(name, [{"one": "1"}])
        result = receive(ws)
        assert result == {"type": "result", "data": {
            "distributed_query_execution_id": campaign["id"],
            "host": {"id": ids[0], "hostname": "web1", "display_name": "web1"},
            "rows": [{"one": "1", "host_hostname": "web1", "host_display_name": "web1"}], "error": None}}
        assert web1.live_queries() == {}  # answered: not asked again

        assert name in web2.live_queries()
        web2.answer(name, [], error="no such table: nope")
        failed = receive(ws)["data"]
        assert failed["host"]["id"] == ids[1] and failed["rows"] == [] and failed["error"] == "no such table: nope"
        # Reaching "finished" is reported at once (intermediate statuses wait for the interval).
        assert receive(ws) == {"type": "status", "data": {
            "expected_results": 2, "actual_results": 2, "count_of_hosts_with_results": 1,
            "count_of_hosts_with_no_results": 1, "status": "finished"}}
        assert campaigns.target_store(state).is_pending(campaign["id"], offline)

    # Closing the socket completes the campaign; no host is asked any more.
    wait_for(lambda: campaign_status(database, campaign["id"]) == 2)
    assert not campaigns.target_store(state).is_pending(campaign["id"], offline)
    assert campaign["id"] not in campaigns.target_store(state).active()


def test_status_is_resent_when_it_changes_after_the_interval(client: TestClient, admin_token: str,
                                                             database: Database, state: ServerState) -> None:
    state.settings.live_query_status_interval = 0.2
    agents = [Agent(client, f"h{i}") for i in range(2)]
    campaign = start(client, admin_token, {"query": "SELECT 2", "selected": {
        "hosts": [a.host_id(database) for a in agents]}})
    with client.websocket_connect(WS) as ws:
        ws.send_json({"type": "auth", "data": {"token": admin_token}})
        ws.send_json({"type": "select_campaign", "data": {"campaign_id": campaign["id"]}})
        assert receive(ws)["type"] == "totals"
        assert receive(ws)["data"]["actual_results"] == 0
        agents[0].answer(f"fleet_distributed_query_{campaign['id']}", [{"2": "2"}])
        assert receive(ws)["type"] == "result"
        status = receive(ws)
        assert status["type"] == "status"
        assert status["data"]["actual_results"] == 1 and status["data"]["status"] == "pending"


def test_results_arriving_before_the_listener_are_asked_again(client: TestClient, admin_token: str,
                                                              database: Database) -> None:
    agent = Agent(client, "early")
    campaign = start(client, admin_token, {"query": "SELECT 3", "selected": {"hosts": [agent.host_id(database)]}})
    name = f"fleet_distributed_query_{campaign['id']}"
    agent.answer(name, [{"3": "3"}])  # nobody listening yet: the host stays targeted
    assert name in agent.live_queries()
    with client.websocket_connect(WS) as ws:
        ws.send_json({"type": "auth", "data": {"token": admin_token}})
        ws.send_json({"type": "select_campaign", "data": {"campaign_id": campaign["id"]}})
        receive(ws), receive(ws)
        agent.answer(name, [{"3": "3"}])
        assert receive(ws)["data"]["rows"][0]["3"] == "3"


def test_orphaned_campaign_is_completed(client: TestClient, admin_token: str, database: Database,
                                        state: ServerState) -> None:
    agent = Agent(client, "lonely")
    campaign = start(client, admin_token, {"query": "SELECT 4", "selected": {"hosts": [agent.host_id(database)]}})
    state.extras[CLOCK_KEY] = lambda: utcnow() + timedelta(minutes=2)
    agent.answer(f"fleet_distributed_query_{campaign['id']}", [])
    assert campaign_status(database, campaign["id"]) == 2
    assert campaigns.target_store(state).active() == set()


def test_websocket_handshake_errors(client: TestClient, admin_token: str, database: Database) -> None:
    other = make_user(database, "other@example.com", "admin")
    agent = Agent(client, "ws1")
    campaign = start(client, admin_token, {"query": "SELECT 5", "selected": {"hosts": [agent.host_id(database)]}})
    cases: list[tuple[list[dict[str, Any]], str]] = [
        ([{"type": "auth", "data": {"token": "wrong"}}], "unauthorized"),
        ([{"type": "select_campaign", "data": {"campaign_id": 1}}], "auth"),
        ([{"type": "auth", "data": {"token": other}},
          {"type": "select_campaign", "data": {"campaign_id": campaign["id"]}}], "another user"),
        ([{"type": "auth", "data": {"token": admin_token}},
          {"type": "select_campaign", "data": {"campaign_id": 999}}], "not found"),
    ]
    for messages, reason in cases:
        with client.websocket_connect(WS) as ws:
            for message in messages:
                ws.send_json(message)
            error = receive(ws)
            assert error["type"] == "error" and reason in error["data"], error
            assert next_frame(ws)["type"] == "websocket.close"
    assert campaign_status(database, campaign["id"]) == 0  # failed attempts did not touch it


def test_no_hosts_targeted_and_bad_requests(client: TestClient, admin_token: str, database: Database) -> None:
    response = client.post(RUN, json={"query": "SELECT 1", "selected": {"hosts": [999]}}, headers=auth(admin_token))
    assert response.status_code == 400 and response.json()["message"] == "no hosts targeted"
    assert client.post(RUN, json={"selected": {"hosts": [1]}}, headers=auth(admin_token)).status_code == 400
    assert client.post(RUN, json={"query_id": 999, "selected": {}}, headers=auth(admin_token)).status_code == 404
    assert client.post(RUN, json={"query": "SELECT 1", "selected": {"pets": []}},
                       headers=auth(admin_token)).status_code == 422


def test_observers_run_only_observer_queries(client: TestClient, database: Database) -> None:
    host = Agent(client, "o1").host_id(database)
    observer = make_user(database, "obs@example.com", "observer")
    observer_plus = make_user(database, "plus@example.com", "observer_plus")
    allowed = saved_query(database, "SELECT 'ok'", observer_can_run=True)
    denied = saved_query(database, "SELECT 'no'")
    selected = {"hosts": [host]}
    assert client.post(RUN, json={"query_id": allowed, "selected": selected}, headers=auth(observer)).status_code == 200
    assert client.post(RUN, json={"query_id": denied, "selected": selected}, headers=auth(observer)).status_code == 403
    assert client.post(RUN, json={"query": "SELECT 'x'", "selected": selected},
                       headers=auth(observer)).status_code == 403
    assert client.post(RUN, json={"query_id": denied, "selected": selected},
                       headers=auth(observer_plus)).status_code == 200
    assert client.post(RUN, json={"query": "SELECT 'x'", "selected": selected},
                       headers=auth(observer_plus)).status_code == 200


# --------------------------------------------------------------------------- target selection


def test_target_selection_semantics(database: Database, state: ServerState) -> None:
    servers, laptops = make_team(database, "Servers"), make_team(database, "Laptops")
    hosts = {name: add_offline_host(database, name, team) for name, team in
             (("mac-srv", servers), ("mac-lap", laptops), ("lin-srv", servers), ("lin-none", None))}
    with database.session() as session:
        all_hosts = Label(name="All Hosts", label_type="builtin", query="select 1;")
        macos = Label(name="macOS", label_type="builtin", query="select 1")
        linux = Label(name="All Linux", label_type="builtin", query="select 1")
        prod = Label(name="prod", label_type="regular", query="select 1")
        session.add_all([all_hosts, macos, linux, prod])
        session.flush()
        members = [(macos, "mac-srv"), (macos, "mac-lap"), (linux, "lin-srv"), (linux, "lin-none"),
                   (prod, "mac-srv"), (prod, "lin-none")]
        session.add_all([LabelMembership(label_id=label.id, host_id=hosts[name]) for label, name in members])
        label_ids = {label.name: label.id for label in (all_hosts, macos, linux, prod)}
        admin = User(email="sel@example.com", global_role="admin")
        team_observer = User(email="tobs@example.com")
        session.add_all([admin, team_observer])
        session.flush()
        from hostql.server.storage.models import UserTeam

        session.add(UserTeam(user_id=team_observer.id, team_id=servers, role="observer"))
        session.flush()
        session.refresh(team_observer)

        def names(user: User = admin, **selected: list[int]) -> set[str]:
            found = campaigns.resolve_host_ids(session, user, campaigns.Selection(**selected))
            return {name for name, host_id in hosts.items() if host_id in found}

        assert names(labels=[label_ids["All Hosts"]]) == set(hosts)
        assert names(labels=[label_ids["macOS"], label_ids["All Linux"]]) == set(hosts)  # OR within builtins
        assert names(labels=[label_ids["macOS"], label_ids["prod"]]) == {"mac-srv"}  # AND across kinds
        assert names(labels=[label_ids["All Linux"]], teams=[servers]) == {"lin-srv"}
        assert names(teams=[servers, laptops]) == {"mac-srv", "mac-lap", "lin-srv"}
        assert names(teams=[0]) == {"lin-none"}  # team 0: no team
        # Explicit hosts are always included.
        assert names(hosts=[hosts["lin-none"]], labels=[label_ids["macOS"], label_ids["prod"]]) == {
            "mac-srv", "lin-none"}
        assert names() == set()
        # Team users only reach their teams' hosts, whatever they select.
        assert names(team_observer, labels=[label_ids["All Hosts"]]) == {"mac-srv", "lin-srv"}
        assert names(team_observer, hosts=[hosts["mac-lap"]]) == set()


# --------------------------------------------------------------------------- synchronous REST


def _in_thread(pool: ThreadPoolExecutor, client: TestClient, path: str, body: dict[str, Any], token: str) -> Any:
    return pool.submit(lambda: (time.monotonic(), client.post(path, json=body, headers=auth(token)),
                                time.monotonic()))


def test_sync_run_reports_offline_hosts_and_agent_errors(client: TestClient, admin_token: str,
                                                         database: Database, state: ServerState) -> None:
    agent = Agent(client, "db1")
    online = agent.host_id(database)
    offline = add_offline_host(database, "gone")
    query_id = saved_query(database, "SELECT * FROM os_version")
    with ThreadPoolExecutor(1) as pool:
        future = _in_thread(pool, client, f"/api/v1/fleet/queries/{query_id}/run",
                            {"host_ids": [online, offline]}, admin_token)
        pending = wait_for(agent.live_queries)
        assert list(pending.values()) == ["SELECT * FROM os_version"]
        agent.answer(next(iter(pending)), [], error="no such table: os_version")
        started, response, ended = future.result(timeout=30)
    assert response.status_code == 200, response.text
    assert ended - started < 4.0  # did not wait for the offline host until the 5 s period ended
    assert response.json() == {
        "query_id": query_id, "targeted_host_count": 2, "responded_host_count": 1,
        "results": [{"host_id": online, "rows": [], "error": "no such table: os_version"},
                    {"host_id": offline, "rows": [], "error": "host is offline"}]}
    assert campaigns.target_store(state).active() == set()  # the offline host will not run it later
    with database.session() as session:
        assert {c.status for c in session.scalars(select(Campaign))} == {2}


def test_sync_run_honours_the_rest_period(client: TestClient, admin_token: str, database: Database,
                                          state: ServerState) -> None:
    state.settings.live_query_rest_period = 0.5
    agent = Agent(client, "slow")
    rows_agent = Agent(client, "fast")
    query_id = saved_query(database)
    with ThreadPoolExecutor(1) as pool:
        future = _in_thread(pool, client, f"/api/v1/fleet/queries/{query_id}/run",
                            {"host_ids": [agent.host_id(database), rows_agent.host_id(database)]}, admin_token)
        pending = wait_for(rows_agent.live_queries)
        rows_agent.answer(next(iter(pending)), [{"one": "1"}])
        started, response, ended = future.result(timeout=30)
    assert 0.5 <= ended - started < 4.0
    body = response.json()
    assert body["targeted_host_count"] == 2 and body["responded_host_count"] == 1
    by_host = {r["host_id"]: r for r in body["results"]}
    assert by_host[rows_agent.host_id(database)] == {"host_id": rows_agent.host_id(database),
                                                     "rows": [{"one": "1"}], "error": None}
    assert "no response" in by_host[agent.host_id(database)]["error"]
    assert agent.live_queries() == {}


def test_sync_run_permissions_and_empty_targets(client: TestClient, admin_token: str, database: Database) -> None:
    host = Agent(client, "p1").host_id(database)
    observer = make_user(database, "o@example.com", "observer")
    query_id = saved_query(database)
    path = f"/api/v1/fleet/queries/{query_id}/run"
    assert client.post(path, json={"host_ids": [host]}, headers=auth(observer)).status_code == 403
    empty = client.post(path, json={"host_ids": []}, headers=auth(admin_token))
    assert empty.status_code == 400 and empty.json()["message"] == "no hosts targeted"
    assert client.post("/api/v1/fleet/queries/999/run", json={"host_ids": [host]},
                       headers=auth(admin_token)).status_code == 404


def test_query_one_host(client: TestClient, admin_token: str, database: Database) -> None:
    agent = Agent(client, "one")
    host = agent.host_id(database)
    offline = add_offline_host(database, "off")
    response = client.post(f"/api/v1/fleet/hosts/{offline}/query", json={"query": "SELECT 1"},
                           headers=auth(admin_token))
    assert response.json() == {"host_id": offline, "query": "SELECT 1", "status": "offline",
                                "error": "host is offline", "rows": []}
    with ThreadPoolExecutor(1) as pool:
        future = _in_thread(pool, client, "/api/v1/fleet/hosts/identifier/one/query",
                            {"query": "SELECT 'a' AS x"}, admin_token)
        pending = wait_for(agent.live_queries)
        agent.answer(next(iter(pending)), [{"x": "a"}])
        _, answered, _ = future.result(timeout=30)
    assert answered.json() == {"host_id": host, "query": "SELECT 'a' AS x", "status": "online",
                               "error": None, "rows": [{"x": "a"}]}
    assert client.post("/api/v1/fleet/hosts/999/query", json={"query": "SELECT 1"},
                       headers=auth(admin_token)).status_code == 404


def test_record_result_from_another_event_loop(state: ServerState, database: Database) -> None:
    """The in-process backend delivers across threads/loops (sync handlers, other servers' loops)."""
    host_id = add_offline_host(database, "x")

    async def listen_and_publish() -> dict[str, Any] | None:
        subscription = await state.pubsub.subscribe("results_77")
        campaigns.target_store(state).add(77, "SELECT 7", [host_id])
        with database.session() as session:
            host = session.get_one(Host, host_id)
            session.expunge(host)

        def other_loop() -> None:
            anyio.run(live_targets.record_result, state, host, 77, [{"a": "1"}], None)

        await anyio.to_thread.run_sync(other_loop)
        try:
            return await subscription.get(timeout=5)
        finally:
            await subscription.close()

    message = anyio.run(listen_and_publish)
    assert message is not None and message["rows"] == [{"a": "1"}] and message["host"]["id"] == host_id
    assert not campaigns.target_store(state).is_pending(77, host_id)


def test_run_by_names(client: TestClient, admin_token: str, database: Database) -> None:
    agent = Agent(client, "named")
    with database.session() as session:
        label = Label(name="named hosts", query="select 1")
        session.add(label)
        session.flush()
        session.add(LabelMembership(label_id=label.id, host_id=agent.host_id(database)))
    response = client.post("/api/v1/fleet/queries/run_by_names",
                           json={"query": "SELECT 6", "selected": {"labels": ["named hosts"]}},
                           headers=auth(admin_token))
    assert response.status_code == 200, response.text
    assert response.json()["campaign"]["Metrics"]["TotalHosts"] == 1
    assert list(agent.live_queries().values()) == ["SELECT 6"]
    by_host = client.post("/api/v1/fleet/queries/run_by_names",
                          json={"query": "SELECT 7", "selected": {"hosts": ["named"]}}, headers=auth(admin_token))
    assert by_host.json()["campaign"]["Metrics"]["TotalHosts"] == 1
    unknown = client.post("/api/v1/fleet/queries/run_by_names",
                          json={"query": "SELECT 8", "selected": {"labels": ["nope"]}}, headers=auth(admin_token))
    assert unknown.status_code == 400 and "nope" in unknown.json()["errors"][0]["reason"]


def test_a_write_of_live_results_only_is_recognised() -> None:
    from hostql.server.services.distributed import CampaignAnswer, live_only_write

    live = {"queries": {"fleet_distributed_query_7": [{"one": "1"}], "fleet_distributed_query_8": ""},
            "statuses": {"fleet_distributed_query_7": 0, "fleet_distributed_query_8": 1},
            "messages": {"fleet_distributed_query_8": "no such table: nope"}}
    assert live_only_write(live) == [CampaignAnswer(7, [{"one": "1"}], None),
                                     CampaignAnswer(8, [], "no such table: nope")]
    mixed = {"queries": {"fleet_distributed_query_7": [], "fleet_label_query_3": [{"1": "1"}]}}
    assert live_only_write(mixed) is None  # a label result must reach the database
    assert live_only_write({"queries": {"fleet_distributed_query_x": []}}) is None
    assert live_only_write({"queries": {}}) is None
