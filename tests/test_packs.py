"""osquery's shipped packs run here: every Linux query whose tables we have."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from hostql.sql.connection import Connection, QueryError
from osquery_data import OSQUERY_PACKS

LINUX_WORDS = ("all", "any", "posix", "linux", "ubuntu", "centos")


def load_pack(path: Path) -> dict[str, Any]:
    # osquery deletes backslash-newlines and drops comment lines before parsing.
    text = path.read_text().replace("\\\n", "")
    lines = [ln for ln in text.splitlines() if not ln.strip().startswith(("#", "//"))]
    pack: dict[str, Any] = json.loads("\n".join(lines))
    return pack


def runs_on_linux(platform: str | None) -> bool:
    return not platform or any(word in platform for word in LINUX_WORDS)


def linux_queries() -> list[tuple[str, str]]:
    found = []
    for path in sorted(OSQUERY_PACKS.glob("*.conf")):
        pack = load_pack(path)
        if not runs_on_linux(pack.get("platform")):
            continue
        for name, query in pack["queries"].items():
            if runs_on_linux(query.get("platform")):
                found.append((f"{path.stem}/{name}", query["query"]))
    return found


QUERIES = linux_queries()


def test_every_linux_pack_query_with_known_tables_runs(db: Connection, capsys: pytest.CaptureFixture[str]) -> None:
    ran, missing_tables, failures = 0, {}, {}
    for name, sql in QUERIES:
        try:
            db.execute(sql)
            ran += 1
        except QueryError as exc:
            match = re.fullmatch(r"no such table: (\w+)", str(exc))
            if match and match.group(1) not in db.tables:
                missing_tables.setdefault(match.group(1), []).append(name)
            else:
                failures[name] = str(exc)
    with capsys.disabled():
        print(f"\nosquery packs: {ran} of {len(QUERIES)} Linux queries ran; "
              f"{len(QUERIES) - ran} use tables hostql does not have: {sorted(missing_tables)}")
    assert failures == {}
    assert ran > 0
