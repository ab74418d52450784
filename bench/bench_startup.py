"""Start-up benchmark: ``hostql shell --json "SELECT 1"`` against ``python3 -c pass``.

Both commands run alternately the same number of times in one process so
that machine load affects them alike; the medians and their ratio are printed.
Byte-code caching is left on for the children (a ``PYTHONDONTWRITEBYTECODE``
in the caller's environment would otherwise make every run recompile hostql's
sources, which no installed copy does), and one untimed warm-up run of each
fills the caches.

    .venv/bin/python bench/bench_startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOSTQL = Path(sys.executable).parent / "hostql"


def timed(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, timeout=60)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    options = parser.parse_args()

    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    hostql = [str(HOSTQL), "shell", "--json", "SELECT 1"]
    baseline = [sys.executable, "-c", "pass"]
    timed(hostql, env)
    timed(baseline, env)

    hostql_times: list[float] = []
    baseline_times: list[float] = []
    for _ in range(options.runs):
        hostql_times.append(timed(hostql, env))
        baseline_times.append(timed(baseline, env))
    shell_ms = statistics.median(hostql_times) * 1000
    python_ms = statistics.median(baseline_times) * 1000
    print(f"hostql shell --json 'SELECT 1': median {shell_ms:.1f} ms over {options.runs} runs")
    print(f"python3 -c pass:               median {python_ms:.1f} ms over {options.runs} runs")
    print(f"ratio: {shell_ms / python_ms:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
