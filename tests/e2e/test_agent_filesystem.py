"""The real ``hostql agent`` with a filesystem config and the filesystem logger."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from hostql.agent.logformat import calendar_time

SEED_CONFIG = Path(__file__).resolve().parent.parent / "data" / "agent-linux.conf"

EVENT_KEYS = [
    "name",
    "hostIdentifier",
    "calendarTime",
    "unixTime",
    "epoch",
    "counter",
    "numerics",
    "decorations",
    "columns",
    "action",
]
SNAPSHOT_KEYS = [
    "snapshot",
    "action",
    "name",
    "hostIdentifier",
    "calendarTime",
    "unixTime",
    "epoch",
    "counter",
    "numerics",
    "decorations",
]
CALENDAR = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
                      r"[ 1-3][0-9] [0-2][0-9]:[0-5][0-9]:[0-6][0-9] [0-9]{4} UTC$")


def shell_uuid() -> str:
    out = subprocess.run(
        [sys.executable, "-m", "hostql", "shell", "--json", "SELECT uuid FROM system_info"],
        capture_output=True, text=True, timeout=60, check=True, stdin=subprocess.DEVNULL,
    ).stdout
    (row,) = json.loads(out)
    return str(row["uuid"])


def files_config(watch: Path, **extra: Any) -> dict[str, Any]:
    sql = f"SELECT path FROM file WHERE directory = '{watch}'"
    config: dict[str, Any] = {
        "options": {"schedule_splay_percent": 10},
        "schedule": {
            "files": {"query": sql, "interval": 1},
            "numbers": {"query": "SELECT 1 AS one, 'x' AS letter", "interval": 1, "snapshot": True},
        },
        "decorators": {"load": ["SELECT uuid AS host_uuid FROM system_info;"]},
        "packs": {"e2e": {"queries": {"pfiles": {"query": sql, "interval": 1}}}},
    }
    config.update(extra)
    return config


def by_name(objects: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["name"] == name]


def counters_seen(objects: list[dict[str, Any]], name: str) -> list[int]:
    seen: list[int] = []
    for obj in by_name(objects, name):
        if not seen or seen[-1] != obj["counter"]:
            seen.append(obj["counter"])
    return seen


def test_results_snapshots_decorations_and_glog(agents: Any, tmp_path: Path, watch_dir: Path) -> None:
    for name in ("one", "two"):
        (watch_dir / name).write_text(name)
    config = agents.write_json(tmp_path / "osquery.conf", files_config(watch_dir))
    logs = tmp_path / "logs"
    agent = agents.start(
        f"--config_path={config}", f"--logger_path={logs}", f"--database_path={tmp_path / 'state.db'}"
    )
    agent.wait_worker()  # the watchdog is on: watcher plus worker
    results = agents.log_file(logs / "osqueryd.results.log")

    def has_counter(name: str, counter: int) -> bool:
        return counter in counters_seen([json.loads(x) for x in results.lines()], name)

    agents.wait_for(lambda: has_counter("files", 0) and has_counter("pack_e2e_pfiles", 0), 15, what="first runs")
    # A rename is one change seen by one run: "one" removed and "three" added together.
    (watch_dir / "one").rename(watch_dir / "three")
    agents.wait_for(lambda: has_counter("files", 1) and has_counter("pack_e2e_pfiles", 1), 10, what="second change")
    (watch_dir / "four").write_text("4")
    agents.wait_for(lambda: has_counter("files", 2) and has_counter("pack_e2e_pfiles", 2), 10, what="third change")
    time.sleep(1.5)  # runs with nothing changed write nothing
    assert agent.alive()
    assert agent.stop() == 0

    uuid = shell_uuid()
    lines = results.lines()
    objects = [json.loads(line) for line in lines]
    w = str(watch_dir)
    for line, obj in zip(lines, objects, strict=True):
        assert list(obj) == EVENT_KEYS, line
        assert list(obj["columns"]) == ["path"]
        assert CALENDAR.match(obj["calendarTime"]), obj["calendarTime"]
        assert obj["calendarTime"] == calendar_time(obj["unixTime"])
        assert obj["epoch"] == 0 and obj["numerics"] is False
        assert obj["decorations"] == {"host_uuid": uuid}
        assert obj["hostIdentifier"] == objects[0]["hostIdentifier"] != ""
        assert obj["name"] in ("files", "pack_e2e_pfiles")
    for name in ("files", "pack_e2e_pfiles"):
        mine = by_name(objects, name)
        runs: dict[int, list[tuple[str, str]]] = {}
        for obj in mine:
            runs.setdefault(obj["counter"], []).append((obj["action"], obj["columns"]["path"]))
        assert list(runs) == [0, 1, 2], name
        assert sorted(runs[0]) == [("added", f"{w}/one"), ("added", f"{w}/two")]
        assert runs[1] == [("removed", f"{w}/one"), ("added", f"{w}/three")]  # removed before added
        assert runs[2] == [("added", f"{w}/four")]
        # One run's lines share one time; the runs follow each other in time.
        times = [{o["unixTime"] for o in mine if o["counter"] == c} for c in (0, 1, 2)]
        assert all(len(t) == 1 for t in times)
        assert times[0].pop() < times[1].pop() < times[2].pop()

    snapshots = [json.loads(line) for line in agents.log_file(logs / "osqueryd.snapshots.log").lines()]
    assert len(snapshots) >= 3
    for snap in snapshots:
        assert list(snap) == SNAPSHOT_KEYS
        assert snap["name"] == "numbers" and snap["action"] == "snapshot" and snap["counter"] == 0
        assert snap["snapshot"] == [{"letter": "x", "one": "1"}]
        assert snap["decorations"] == {"host_uuid": uuid}
        assert CALENDAR.match(snap["calendarTime"])
    assert [s["unixTime"] for s in snapshots] == sorted({s["unixTime"] for s in snapshots})

    info = logs / "osqueryd.INFO"
    assert info.is_symlink() and re.fullmatch(r"osqueryd\.INFO\.\d{8}-\d{6}\.\d+", info.readlink().name)
    text = info.read_text()
    assert "Log line format: [IWEF]mmdd hh:mm:ss.uuuuuu threadid file:line] msg" in text
    assert re.search(r"^I\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ \S+:\d+\] Config loaded: 3 scheduled queries", text, re.M)


def test_seed_config_passes_config_check_with_a_pack_warning(agents: Any) -> None:
    done = agents.run("--config_check", f"--config_path={SEED_CONFIG}")
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if "osquery-monitoring" in line]
    assert len(warnings) == 1
    assert "/usr/share/osquery/packs/osquery-monitoring.conf" in warnings[0]
    assert "does not exist" in warnings[0]
    assert warnings[0].startswith("Warning:")


def test_broken_config_fails_config_check_with_file_line_and_column(agents: Any, tmp_path: Path) -> None:
    path = tmp_path / "broken.conf"
    bad_line = '    "a": {"query": "SELECT 1" "interval": 10}'
    path.write_text('{\n  "schedule": {\n' + bad_line + "\n  }\n}\n")
    column = bad_line.index('"interval"') + 1
    done = agents.run("--config_check", f"--config_path={path}")
    assert done.returncode != 0
    assert f"{path}:3:{column}" in done.stderr, done.stderr


def test_invalid_config_on_refresh_keeps_the_last_good_schedule(agents: Any, tmp_path: Path,
                                                                   watch_dir: Path) -> None:
    config = agents.write_json(tmp_path / "osquery.conf", files_config(watch_dir))
    logs = tmp_path / "logs"
    agent = agents.start(
        f"--config_path={config}", f"--logger_path={logs}", f"--database_path={tmp_path / 'state.db'}",
        "--config_refresh=1",
    )
    results = agents.log_file(logs / "osqueryd.results.log")

    def paths_added() -> set[str]:
        return {o["columns"]["path"] for o in results.objects() if o["name"] == "files" and o["action"] == "added"}

    (watch_dir / "before").write_text("")
    agents.wait_for(lambda: str(watch_dir / "before") in paths_added(), 15, what="the first result")
    # A valid change is applied: a new query starts running.
    updated = files_config(watch_dir)
    updated["schedule"]["extra"] = {"query": "SELECT 'e' AS e", "interval": 1}
    agents.write_json(config, updated)
    agents.wait_for(lambda: any(o["name"] == "extra" for o in results.objects()), 10, what="the added query")
    config.write_text('{"schedule": {"files": {"query": "SELECT 1", "interval": 1}')  # not JSON any more
    error_log = logs / "osqueryd.ERROR"
    agents.wait_for(lambda: error_log.exists() and "Config load failed" in error_log.read_text(), 10,
                    what="the config error in osqueryd.ERROR")
    assert str(config) in error_log.read_text()
    (watch_dir / "after").write_text("")
    agents.wait_for(lambda: str(watch_dir / "after") in paths_added(), 10, what="a result from the old schedule")
    assert agent.alive()
    assert agent.stop() == 0
    info = (logs / "osqueryd.INFO").read_text()
    assert info.count("Config loaded: 3 scheduled queries") == 1
    assert info.count("Config updated: 4 scheduled queries") == 1
    # Refreshing every second must not run a query twice in one second.
    snapshots = agents.log_file(logs / "osqueryd.snapshots.log").objects()
    assert len(snapshots) >= 4
    times = [s["unixTime"] for s in snapshots]
    assert len(times) == len(set(times)), times


def test_clean_stop_ends_watcher_and_worker(agents: Any, tmp_path: Path, watch_dir: Path) -> None:
    config = agents.write_json(tmp_path / "osquery.conf", files_config(watch_dir))
    agent = agents.start(f"--config_path={config}", f"--logger_path={tmp_path / 'logs'}",
                         f"--database_path={tmp_path / 'state.db'}")
    worker = agent.wait_worker()
    assert agent.stop() == 0
    agents.wait_for(lambda: not agents.pid_alive(worker), 5, what="the worker to end")
