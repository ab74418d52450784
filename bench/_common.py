"""Helpers shared by the benchmarks: timing and a consistent report line."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_seconds(func: Callable[[], object], runs: int, warmup: int = 1) -> float:
    """Median wall time of ``func`` over ``runs`` calls, after ``warmup`` calls."""
    for _ in range(warmup):
        func()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        func()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def report(name: str, ours: float, baseline: float, baseline_name: str, unit: str = "ms",
           goal: float | None = None) -> None:
    """Print one line: our figure, the baseline's, and the ratio ours/baseline."""
    scale = 1000.0 if unit == "ms" else 1.0
    ratio = ours / baseline if baseline else float("inf")
    verdict = ""
    if goal is not None:
        verdict = f"  goal <= {goal:.2f}x: {'met' if ratio <= goal else 'NOT met'}"
    print(f"{name}: {ours * scale:.2f} {unit} vs {baseline_name} {baseline * scale:.2f} {unit}"
          f"  ratio {ratio:.2f}x{verdict}")
