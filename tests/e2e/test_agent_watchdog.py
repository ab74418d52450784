"""The watchdog stops a real agent's runaway query and denylists it.

A real ``hostql agent`` (watcher + worker) runs a schedule with one query that
burns CPU (or memory) far past small limits.  The watcher must kill the worker,
start a new one, and the new worker must denylist the query and say so.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

CPU_HOG = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000000) "
    "SELECT count(*) FROM c;"
)
# Grows steadily (about 80 MB/s here) to 900 MB, below SQLite's 1 GB string
# limit: the query is still running, its memory still growing, for ten
# seconds or more, whenever the watcher looks and wherever its baseline.
MEMORY_HOG = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 9000000) "
    "SELECT length(group_concat(printf('%050d', x) || hex(randomblob(25)))) FROM c;"
)


def _start(tmp_path: Path, query: str, *limits: str) -> subprocess.Popen[bytes]:
    config = tmp_path / "osquery.conf"
    config.write_text(json.dumps({"schedule": {
        "runaway": {"query": query, "interval": 1},
        "quiet": {"query": "SELECT 1 AS one;", "interval": 1},
    }}))
    argv = [sys.executable, "-m", "hostql", "agent", f"--config_path={config}",
            f"--logger_path={tmp_path}/logs", f"--database_path={tmp_path}/state.db",
            "--watchdog_delay=1", *limits]
    with open(tmp_path / "stderr.txt", "wb") as err:
        return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)


def _stop(agent: subprocess.Popen[bytes]) -> None:
    if agent.poll() is None:
        os.killpg(agent.pid, signal.SIGTERM)
        try:
            agent.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(agent.pid, signal.SIGKILL)
            agent.wait()


def _wait_for_line(pattern: Path, text: str, timeout: float) -> str:
    """The first line containing ``text`` in any file matching ``pattern``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in sorted(pattern.parent.glob(pattern.name)):
            for line in path.read_text(errors="replace").splitlines():
                if text in line:
                    return line
        time.sleep(0.2)
    content = "\n".join(p.read_text(errors="replace") for p in sorted(pattern.parent.glob(pattern.name)))
    raise AssertionError(f"{text!r} did not appear in {pattern} within {timeout} s:\n{content}")


@pytest.mark.parametrize(
    ("query", "limits", "reason"),
    [
        (CPU_HOG, ("--watchdog_utilization_limit=20", "--watchdog_latency_limit=2"), "CPU limits exceeded"),
        # A CPU limit no single-threaded query can reach, so only memory counts.
        (MEMORY_HOG, ("--watchdog_memory_limit=60", "--watchdog_utilization_limit=100"), "Memory limits exceeded"),
    ],
    ids=["cpu", "memory"],
)
def test_runaway_query_is_killed_and_denylisted(tmp_path: Path, query: str, limits: tuple[str, ...],
                                                 reason: str) -> None:
    agent = _start(tmp_path, query, *limits)
    # The watcher and each worker write glog files of their own pid.
    info = tmp_path / "logs" / "osqueryd.INFO.*"
    try:
        _wait_for_line(info, reason, timeout=30)
        line = _wait_for_line(info, "Scheduled query may have failed: runaway", timeout=30)
        assert line.startswith("W")
        # The new worker keeps running the rest of the schedule, without the runaway query.
        results = tmp_path / "logs" / "osqueryd.results.log"
        _wait_for_line(results, '"name":"quiet"', timeout=20)
        assert agent.poll() is None, "the agent must keep running"
    finally:
        _stop(agent)
    denylist = subprocess.run(
        [sys.executable, "-c",
         "import sqlite3,sys; db=sqlite3.connect(sys.argv[1]);"
         "print(db.execute(\"SELECT value FROM kv WHERE domain='configurations' AND key='failed_queries'\")"
         ".fetchone()[0])", f"{tmp_path}/state.db"],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout.strip()
    name, expiry = denylist.split(":")[:2]
    assert name == "runaway"
    assert abs(int(expiry) - (time.time() + 86400)) < 120
