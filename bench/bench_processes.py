"""The process table against ps, and the cost of wide queries and joins.

1. ``SELECT pid, name, cmdline FROM processes`` on a warm connection vs
   ``ps -eo pid,comm,args`` (a subprocess: its exec cost is part of what ps costs).
   Goal: at most 1.5x.
2. ``SELECT * FROM processes`` and a JOIN of processes with listening_ports:
   wall time against ``ps -eo`` of every field ps has, and peak memory of a child
   process running the query against the same child running ``SELECT 1``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import median_seconds, report
from hostql.sql.connection import Connection

PS_NARROW = ["ps", "-eo", "pid,comm,args"]
PS_WIDE = ["ps", "-eo", "pid,ppid,pgid,uid,gid,euid,egid,stat,ni,nlwp,rss,vsz,time,lstart,comm,args"]
JOIN = "SELECT p.name, l.port, l.address FROM listening_ports l JOIN processes p USING (pid)"

MEMORY_PROBE = """
import resource, sys, tracemalloc
from hostql.sql.connection import Connection
db = Connection()
tracemalloc.start()
rows = db.execute(sys.argv[1]).rows
peak = tracemalloc.get_traced_memory()[1]
print(len(rows), peak, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def run_ps(argv: list[str]) -> None:
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)


def memory_of(sql: str) -> tuple[int, int, int]:
    out = subprocess.run([sys.executable, "-c", MEMORY_PROBE, sql], check=True, capture_output=True,
                         text=True, timeout=60).stdout.split()
    return int(out[0]), int(out[1]), int(out[2])


def main() -> None:
    db = Connection()
    count = len(db.query("SELECT pid FROM processes"))
    print(f"{count} processes on this host")

    def narrow() -> None:
        db.execute("SELECT pid, name, cmdline FROM processes")

    def wide() -> None:
        db.execute("SELECT * FROM processes")

    def join() -> None:
        db.execute(JOIN)

    t_ps = median_seconds(lambda: run_ps(PS_NARROW), runs=30)
    t_ours = median_seconds(narrow, runs=30)
    report("SELECT pid, name, cmdline FROM processes", t_ours, t_ps, "ps -eo pid,comm,args", goal=1.5)
    print(f"  per process: {t_ours / max(count, 1) * 1e6:.1f} us")

    t_ps_wide = median_seconds(lambda: run_ps(PS_WIDE), runs=20)
    report("SELECT * FROM processes", median_seconds(wide, runs=20), t_ps_wide, "ps -eo <16 fields>")
    report("processes JOIN listening_ports", median_seconds(join, runs=20), t_ps_wide, "ps -eo <16 fields>")

    _, base_peak, base_rss = memory_of("SELECT 1")
    for sql in ("SELECT * FROM processes", JOIN):
        rows, peak, rss = memory_of(sql)
        print(json.dumps({"query": sql, "rows": rows, "python_peak_kib": peak // 1024,
                          "max_rss_kib": rss, "max_rss_over_select_1_kib": rss - base_rss,
                          "select_1_peak_kib": base_peak // 1024}))


if __name__ == "__main__":
    main()
