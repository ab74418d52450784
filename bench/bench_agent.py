"""The agent's footprint and its result-line throughput.

1. Footprint: ``hostql agent`` (watcher + worker) for 65 s with the schedule of
   the seed config ``agent-linux.conf`` (processes every 60 s, system_info
   hourly), filesystem logger.  Resident memory and CPU share of both
   processes, against a bare Python with apsw idling for the same time, and
   against osquery's watchdog budget (200 MB growth, 10 % CPU).
   Goals: under 50 MB resident, under 1 % CPU on average.
2. Throughput: result lines per second through the differ, the store and the
   filesystem logger, against writing the same lines with json.dumps to a file.

Set HOSTQL_BENCH_SECONDS to shorten part 1 (default 65).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import report
from hostql.agent.config import ScheduledQuery
from hostql.agent.decorators import Decorations
from hostql.agent.flags import FlagValues
from hostql.agent.loggers import build_loggers
from hostql.agent.runner import Runner
from hostql.agent.store import Store
from hostql.sql.connection import Connection

SEED = Path(__file__).resolve().parent.parent / "tests" / "data" / "agent-linux.conf"
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def usage(pid: int) -> tuple[int, float] | None:
    """(resident bytes, user+system CPU seconds) of ``pid``."""
    try:
        with open(f"/proc/{pid}/statm") as fh:
            rss = int(fh.read().split()[1]) * PAGE
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return rss, (int(fields[11]) + int(fields[12])) / TICKS
    except (OSError, IndexError, ValueError):
        return None


def children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                found += [int(c) for c in fh.read().split()]
    except OSError:
        pass
    return found


def watch(proc: subprocess.Popen[bytes], seconds: float) -> dict[str, float]:
    """Sample a process tree once a second; peak and mean RSS, CPU share."""
    start = time.monotonic()
    peak = 0
    samples: list[int] = []
    cpu_end = 0.0
    while time.monotonic() - start < seconds and proc.poll() is None:
        pids = [proc.pid, *children(proc.pid)]
        figures = [u for u in (usage(p) for p in pids) if u is not None]
        total_rss = sum(r for r, _ in figures)
        cpu_end = sum(c for _, c in figures)
        peak = max(peak, total_rss)
        samples.append(total_rss)
        time.sleep(1.0)
    elapsed = time.monotonic() - start
    return {"peak_mb": peak / 2**20, "mean_mb": sum(samples) / max(len(samples), 1) / 2**20,
            "cpu_percent": 100.0 * cpu_end / elapsed, "seconds": elapsed}


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def footprint(seconds: float) -> None:
    seed = json.loads(SEED.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "osquery.conf"
        config.write_text(json.dumps({"schedule": seed["schedule"], "decorators": seed["decorators"]}))
        agent = subprocess.Popen(
            [sys.executable, "-m", "hostql", "agent", f"--config_path={config}", f"--logger_path={tmp}/logs",
             f"--database_path={tmp}/state.db", "--logger_plugin=filesystem"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        bare = subprocess.Popen(
            [sys.executable, "-c", "import apsw, time; db = apsw.Connection(':memory:'); time.sleep(3600)"])
        try:
            ours = watch(agent, seconds)
            base = watch(bare, 3)
        finally:
            stop(agent)
            stop(bare)
        results = Path(tmp) / "logs" / "osqueryd.results.log"
        lines = len(results.read_text().splitlines()) if results.exists() else 0
    print(f"agent (watcher + worker) over {ours['seconds']:.0f} s: peak {ours['peak_mb']:.1f} MB, "
          f"mean {ours['mean_mb']:.1f} MB, CPU {ours['cpu_percent']:.2f} %, {lines} result lines")
    print(f"bare python + apsw: {base['peak_mb']:.1f} MB")
    print(f"resident memory ratio vs bare python+apsw: {ours['peak_mb'] / base['peak_mb']:.2f}x; "
          f"goal < 50 MB: {'met' if ours['peak_mb'] < 50 else 'NOT met'}; "
          f"CPU goal < 1 %: {'met' if ours['cpu_percent'] < 1 else 'NOT met'} "
          f"(osquery's watchdog allows 200 MB growth and 10 % CPU)")


def throughput() -> None:
    rows_per_run, runs = 2000, 10
    with tempfile.TemporaryDirectory() as tmp:
        flags = FlagValues({"logger_path": f"{tmp}/logs"})
        conn = Connection()
        conn.execute("CREATE TEMP TABLE bench_rows(id INTEGER, name TEXT, value TEXT)")
        store = Store(f"{tmp}/state.db")
        loggers = build_loggers(["filesystem"], flags, {"store": store})
        runner = Runner(conn, store, flags, Decorations(conn, _no_decorators()), "bench-host", ["filesystem"])
        query = ScheduledQuery(name="bench", query="SELECT * FROM bench_rows", interval=1)
        lines = 0
        start = time.perf_counter()
        for run in range(runs):
            # Every row changes each run: rows_per_run removed + rows_per_run added lines.
            conn.execute("DELETE FROM bench_rows")
            conn.db.executemany("INSERT INTO bench_rows VALUES (?, ?, ?)",
                                [(i, f"name{i}", f"value-{run}-{i}") for i in range(rows_per_run)])
            lines += runner.run(query, now=1_700_000_000 + run)
            batch = store.pending("filesystem", limit=1_000_000)
            loggers[0].deliver(batch)
            store.delivered([row_id for row_id, _, _ in batch])
        ours = time.perf_counter() - start
        store.close()
        for logger in loggers:
            logger.close()

        sample = [{"id": str(i), "name": f"name{i}", "value": f"v{i}"} for i in range(rows_per_run)]
        start = time.perf_counter()
        with open(f"{tmp}/plain.log", "w") as fh:
            for _ in range(runs):
                for row in sample + sample:
                    fh.write(json.dumps({"name": "bench", "columns": row, "action": "added"}) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        plain = time.perf_counter() - start
    print(f"result lines: {lines / ours:,.0f} lines/s through differ + store + filesystem logger "
          f"({lines} lines); json.dumps to a file: {2 * rows_per_run * runs / plain:,.0f} lines/s")
    report("result lines per run of 4000", ours / runs, plain / runs, "json.dumps + write")


def _no_decorators() -> object:
    from hostql.agent.config import Decorators

    return Decorators()


def main() -> None:
    throughput()
    footprint(float(os.environ.get("HOSTQL_BENCH_SECONDS", "65")))


if __name__ == "__main__":
    main()
