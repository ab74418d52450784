"""kill -9 the agent's worker (and the whole agent) while a directory changes under it.

The results log, replayed, must describe the directory exactly: per path the
actions alternate added/removed starting with added (no line lost or doubled),
and the replayed set is the directory's final content.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from pathlib import Path
from typing import Any


def replay(objects: list[dict[str, Any]], name: str) -> tuple[set[str], list[str]]:
    """The set of paths the log says exist, and every inconsistency found on the way."""
    present: set[str] = set()
    problems: list[str] = []
    last_counter: int | None = None
    for obj in objects:
        if obj["name"] != name:
            continue
        path = obj["columns"]["path"]
        if obj["action"] == "added":
            if path in present:
                problems.append(f"{path} added twice (counter {obj['counter']})")
            present.add(path)
        elif obj["action"] == "removed":
            if path not in present:
                problems.append(f"{path} removed while absent (counter {obj['counter']})")
            present.discard(path)
        else:
            problems.append(f"unexpected action {obj['action']}")
        if last_counter is not None and obj["counter"] not in (last_counter, last_counter + 1):
            problems.append(f"counter jumped from {last_counter} to {obj['counter']}")
        last_counter = obj["counter"]
    return present, problems


class Churn(threading.Thread):
    """Creates and deletes files in ``directory`` until stopped."""

    def __init__(self, directory: Path, seed: int) -> None:
        super().__init__(daemon=True)
        self.directory = directory
        self.rng = random.Random(seed)
        self.halt = threading.Event()
        self.changes = 0

    def run(self) -> None:
        while not self.halt.wait(self.rng.uniform(0.1, 0.6)):
            name = self.directory / f"f{self.rng.randrange(12)}"
            if name.exists():
                name.unlink()
            else:
                name.write_text("x")
            self.changes += 1


def content(directory: Path) -> set[str]:
    return {str(p) for p in directory.iterdir()}


def test_kill_9_worker_and_agent_loses_and_doubles_nothing(agents: Any, tmp_path: Path, watch_dir: Path) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    print(f"random seed {seed}")
    for i in range(3):
        (watch_dir / f"f{i}").write_text("x")
    sql = f"SELECT path FROM file WHERE directory = '{watch_dir}'"
    # "denylist": false, or a kill during the query would denylist it for a day.
    config = agents.write_json(
        tmp_path / "osquery.conf",
        {"schedule": {"files": {"query": sql, "interval": 1, "denylist": False}}},
    )
    logs = tmp_path / "logs"
    args = (f"--config_path={config}", f"--logger_path={logs}", f"--database_path={tmp_path / 'state.db'}")
    results = agents.log_file(logs / "osqueryd.results.log")

    agent = agents.start(*args)
    worker = agent.wait_worker()
    agents.wait_for(lambda: results.lines(), 15, what="the first result lines")
    churn = Churn(watch_dir, seed)
    churn.start()
    kills = 0
    try:
        deadline = time.monotonic() + 15
        # A worker that lived 4 s or more is respawned at once; one that died
        # sooner is delayed by seconds.  So each worker lives 4-6.5 s; every
        # other kill takes the whole agent down and starts it again instead.
        while time.monotonic() < deadline:
            time.sleep(rng.uniform(4.1, 6.5))
            if kills % 2 == 0:
                os.kill(worker, signal.SIGKILL)
                worker = agent.wait_worker(timeout=10, not_pid=worker)
            else:
                agent.kill()
                agent = agents.start(*args)
                worker = agent.wait_worker()
            kills += 1
    finally:
        churn.halt.set()
        churn.join(5)
    assert kills >= 3 and churn.changes > 20
    final = content(watch_dir)
    agents.wait_for(lambda: replay(results.objects(), "files")[0] == final, 10, what="a run after the last change")
    assert agent.stop() == 0

    objects = results.objects()
    present, problems = replay(objects, "files")
    assert problems == [], f"seed {seed}: {problems}"
    assert present == final
    assert len(set(results.lines())) == len(results.lines())

    # The diff state survived: a clean restart with nothing changed writes nothing.
    count = len(results.lines())
    agent = agents.start(*args)
    new_worker = agent.wait_worker()
    info = logs / "osqueryd.INFO"

    def restarted() -> bool:
        return info.readlink().name.endswith(f".{new_worker}") and "Config loaded" in info.read_text()

    agents.wait_for(restarted, 10, what="the restarted worker's config")
    time.sleep(2.5)
    assert agent.stop() == 0
    assert len(results.lines()) == count
    assert json.loads(results.lines()[-1])["name"] == "files"


def test_worker_ends_when_its_watcher_is_killed(agents: Any, tmp_path: Path, watch_dir: Path) -> None:
    config = agents.write_json(
        tmp_path / "osquery.conf",
        {"schedule": {"files": {"query": f"SELECT path FROM file WHERE directory = '{watch_dir}'", "interval": 1}}},
    )
    agent = agents.start(f"--config_path={config}", f"--logger_path={tmp_path / 'logs'}",
                         f"--database_path={tmp_path / 'state.db'}")
    worker = agent.wait_worker()
    os.kill(agent.pid, signal.SIGKILL)
    assert agent.proc is not None
    agent.proc.wait(timeout=5)
    agents.wait_for(lambda: not agents.pid_alive(worker), 8, what="the orphaned worker to stop")
    info = (tmp_path / "logs" / "osqueryd.ERROR").read_text()
    assert "The watcher process is gone; the worker stops" in info
