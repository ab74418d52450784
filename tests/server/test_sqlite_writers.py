"""SQLite allows one writer at a time: concurrent writers of one server process must queue, not fail.

Before writes were serialised in-process, a writer waiting behind a long write
transaction polled in SQLite's busy handler and failed with "database is locked"
once ``busy_timeout`` passed: HTTP 500s on enroll/config/write under an enroll
storm.  The busy timeout is made tiny here so the failure is deterministic.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from osquery_agent_helpers import add_secret, configure, enroll_body

from hostql.server.services import agent_api
from hostql.server.state import ServerState
from hostql.server.storage.db import Database
from hostql.server.storage.models import Label


def test_a_writer_waits_for_a_long_write_transaction_instead_of_failing(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path}/server.db", sqlite_busy_timeout=0.05)
    database.create_all()
    holding = threading.Event()

    def long_writer() -> None:
        with database.session() as session:
            session.add(Label(name="first", query="SELECT 1"))
            session.flush()  # the write transaction (and SQLite's write lock) starts here
            holding.set()
            time.sleep(0.5)

    thread = threading.Thread(target=long_writer)
    thread.start()
    try:
        assert holding.wait(5)
        with database.session() as session:  # failed with "database is locked" after 50 ms
            session.add(Label(name="second", query="SELECT 2"))
    finally:
        thread.join()
    with database.session() as session:
        assert sorted(label.name for label in session.query(Label)) == ["first", "second"]
    database.dispose()


def test_concurrent_enrolls_and_checkins_all_succeed(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path}/server.db", sqlite_busy_timeout=0.01)
    database.create_all()
    state = ServerState(database)
    configure(state, tmp_path)
    add_secret(database, "secret")

    def agent(index: int) -> str:
        key = agent_api.enroll_agent(state, enroll_body("secret", f"host-{index}"))["node_key"]
        host = agent_api.authenticate(state, key)
        assert host is not None
        assert agent_api.host_config(state, host) is not None
        agent_api.host_log(state, host, {"log_type": "status", "data": [{"line": 1, "message": "hi"}]})
        return str(key)

    with ThreadPoolExecutor(16) as pool:
        keys = list(pool.map(agent, range(64)))
    assert len(set(keys)) == 64
    database.dispose()


def test_only_sqlite_serialises_writes_in_process(tmp_path: Path) -> None:
    sqlite = Database(f"sqlite:///{tmp_path}/server.db")
    postgres = Database("postgresql://hostql@127.0.0.1:9/hostql")  # never connected
    assert sqlite.write_lock is not None
    assert postgres.write_lock is None
    sqlite.dispose()
    postgres.dispose()
