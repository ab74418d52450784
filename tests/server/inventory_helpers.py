"""Helpers for the hosts/labels/policies/teams tests: hosts made directly in the DB, a frozen clock."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

from hostql.server.state import ServerState
from hostql.server.storage.db import Database
from hostql.server.storage.models import Host, LabelMembership, Policy, PolicyMembership

NOW = datetime(2024, 5, 1, 12, 0, 0)
_counter = itertools.count(1)


def freeze(state: ServerState, at: datetime = NOW) -> None:
    state.extras["clock"] = lambda: at


def make_host(database: Database, hostname: str, *, seen_ago: timedelta = timedelta(seconds=5),
              created_ago: timedelta = timedelta(days=10), **fields: Any) -> int:
    """A host seen ``seen_ago`` before :data:`NOW`, with 10 s intervals unless overridden."""
    n = next(_counter)
    values: dict[str, Any] = {
        "osquery_host_id": f"id-{hostname}-{n}", "node_key": f"key-{hostname}-{n}", "hostname": hostname,
        "uuid": f"uuid-{hostname}", "platform": "ubuntu", "distributed_interval": 10, "config_tls_refresh": 10,
        "seen_time": NOW - seen_ago, "created_at": NOW - created_ago, "updated_at": NOW - created_ago,
        "last_enrolled_at": NOW - created_ago,
    }
    values.update(fields)
    with database.session() as session:
        host = Host(**values)
        session.add(host)
        session.flush()
        return host.id


def make_policy(database: Database, name: str, query: str = "select 1;", team_id: int | None = None,
                platform: str = "") -> int:
    with database.session() as session:
        policy = Policy(name=name, query=query, team_id=team_id, platform=platform)
        session.add(policy)
        session.flush()
        return policy.id


def set_result(database: Database, policy_id: int, host_id: int, passes: bool | None) -> None:
    with database.session() as session:
        row = session.get(PolicyMembership, (policy_id, host_id))
        if row is None:
            session.add(PolicyMembership(policy_id=policy_id, host_id=host_id, passes=passes, updated_at=NOW))
        else:
            row.passes = passes


def add_member(database: Database, label_id: int, host_id: int) -> None:
    with database.session() as session:
        session.add(LabelMembership(label_id=label_id, host_id=host_id))
