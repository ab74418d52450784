"""Helpers for the osquery API tests: secrets, enrollment, real detail rows."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from fastapi.testclient import TestClient

import hostql
from hostql.server.state import ServerState
from hostql.server.storage.db import Database
from hostql.server.storage.models import EnrollSecret, Team


def agent_settings(tmp_path: Path, **overrides: Any) -> SimpleNamespace:
    values: dict[str, Any] = {
        "result_log_plugin": ["filesystem"],
        "status_log_plugin": ["filesystem"],
        "filesystem_result_log_file": str(tmp_path / "logs" / "result.log"),
        "filesystem_status_log_file": str(tmp_path / "logs" / "status.log"),
        "host_identifier": "provided",
        "seen_time_flush_interval": 0,  # tests flush explicitly
    }
    values.update(overrides)
    return SimpleNamespace(**values)


def configure(state: ServerState, tmp_path: Path, **overrides: Any) -> None:
    state.settings = agent_settings(tmp_path, **overrides)
    state.extras.pop("checkin", None)
    state.extras.pop("log_router", None)


def add_secret(database: Database, secret: str, team_name: str | None = None) -> int | None:
    with database.session() as session:
        team_id = None
        if team_name is not None:
            team = Team(name=team_name)
            session.add(team)
            session.flush()
            team_id = team.id
        session.add(EnrollSecret(secret=secret, team_id=team_id))
    return team_id


def enroll_body(secret: str, identifier: str, details: dict[str, dict[str, str]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"enroll_secret": secret, "host_identifier": identifier, "platform_type": "9"}
    if details is not None:
        body["host_details"] = details
    return body


def enroll(client: TestClient, secret: str, identifier: str, details: dict[str, dict[str, str]] | None = None,
           prefix: str = "/api/osquery") -> str:
    reply = client.post(f"{prefix}/enroll", json=enroll_body(secret, identifier, details))
    assert reply.status_code == 200, reply.text
    key = reply.json()["node_key"]
    assert isinstance(key, str) and key
    return key


def as_osquery(value: Any) -> str:
    """A value the way osquery puts it in a JSON result row: always a string."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def real_rows(sql: str) -> list[dict[str, str]]:
    """Run ``sql`` on this machine with hostql and stringify like osquery's distributed write."""
    return [{key: as_osquery(value) for key, value in row.items()} for row in hostql.query(sql)]


def answer_all(queries: dict[str, str]) -> dict[str, Any]:
    """A distributed/write body answering every query by running it here."""
    results: dict[str, Any] = {}
    statuses: dict[str, int] = {}
    messages: dict[str, str] = {}
    for name, sql in queries.items():
        try:
            results[name] = real_rows(sql)
            statuses[name] = 0
            messages[name] = ""
        except Exception as exc:  # reported like osquery does, status 1
            results[name] = []
            statuses[name] = 1
            messages[name] = str(exc)
    return {"queries": results, "statuses": statuses, "messages": messages}


def real_host_details() -> dict[str, dict[str, str]]:
    details: dict[str, dict[str, str]] = {}
    for table in ("os_version", "osquery_info", "platform_info", "system_info"):
        try:
            rows = real_rows(f"SELECT * FROM {table}")
        except Exception:
            continue
        if rows:
            details[table] = dict(sorted(rows[0].items()))
    return details
