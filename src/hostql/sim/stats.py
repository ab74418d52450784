"""Counters and latencies the simulator keeps, per osquery endpoint.

Latency is measured from the moment a request holds one of the simulator's
connection slots (so time queued behind the simulator's own pool does not
count) to the moment the whole response body is read.  Samples are kept in
full up to :data:`MAX_SAMPLES` per endpoint, then reservoir-sampled, so the
percentiles stay meaningful on long runs without unbounded memory.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from typing import Any

ENDPOINTS = ("enroll", "config", "log", "distributed_read", "distributed_write")
MAX_SAMPLES = 500_000
MAX_ERROR_KINDS = 20


def percentile(sorted_values: list[float], fraction: float) -> float:
    """The nearest-rank percentile of an already sorted list (0.0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(0, min(len(sorted_values) - 1, math.ceil(fraction * len(sorted_values)) - 1))
    return sorted_values[rank]


@dataclass
class EndpointStats:
    requests: int = 0
    errors: int = 0
    samples: list[float] = field(default_factory=list)
    _seen: int = 0
    _rng: random.Random = field(default_factory=lambda: random.Random(7))

    def record(self, seconds: float, ok: bool) -> None:
        self.requests += 1
        if not ok:
            self.errors += 1
        self._seen += 1
        if len(self.samples) < MAX_SAMPLES:
            self.samples.append(seconds)
        else:  # reservoir sampling keeps a uniform sample of every request
            slot = self._rng.randrange(self._seen)
            if slot < MAX_SAMPLES:
                self.samples[slot] = seconds

    def summary(self, elapsed: float) -> dict[str, Any]:
        ordered = sorted(self.samples)
        return {
            "requests": self.requests,
            "errors": self.errors,
            "per_second": round(self.requests / elapsed, 1) if elapsed > 0 else 0.0,
            "p50_ms": round(percentile(ordered, 0.50) * 1000, 2),
            "p95_ms": round(percentile(ordered, 0.95) * 1000, 2),
            "p99_ms": round(percentile(ordered, 0.99) * 1000, 2),
            "max_ms": round((ordered[-1] if ordered else 0.0) * 1000, 2),
        }


@dataclass
class SimStats:
    """Everything one simulation run counts; shared by all agents on the loop."""

    started: float = field(default_factory=time.monotonic)
    endpoints: dict[str, EndpointStats] = field(default_factory=lambda: {name: EndpointStats() for name in ENDPOINTS})
    error_kinds: dict[str, int] = field(default_factory=dict)
    error_examples: list[str] = field(default_factory=list)
    enrolled: int = 0
    reenrolls: int = 0
    node_invalid: int = 0
    empty_reads: int = 0
    queries_answered: int = 0
    live_queries_answered: int = 0
    log_lines_sent: int = 0
    log_rows_sent: int = 0
    loop_lag_max: float = 0.0

    def record(self, endpoint: str, seconds: float, ok: bool) -> None:
        self.endpoints[endpoint].record(seconds, ok)

    def error(self, endpoint: str, kind: str, detail: str) -> None:
        key = f"{endpoint}: {kind}"
        self.error_kinds[key] = self.error_kinds.get(key, 0) + 1
        if len(self.error_examples) < MAX_ERROR_KINDS:
            self.error_examples.append(f"{key}: {detail[:300]}")

    @property
    def errors(self) -> int:
        return sum(stats.errors for stats in self.endpoints.values())

    @property
    def requests(self) -> int:
        return sum(stats.requests for stats in self.endpoints.values())

    def counters(self) -> dict[str, int]:
        """A cheap snapshot of the monotonic counters (for rates over a window)."""
        snapshot = {f"{name}_requests": stats.requests for name, stats in self.endpoints.items()}
        snapshot.update({
            "errors": self.errors, "enrolled": self.enrolled, "empty_reads": self.empty_reads,
            "queries_answered": self.queries_answered, "live_queries_answered": self.live_queries_answered,
            "log_lines_sent": self.log_lines_sent, "log_rows_sent": self.log_rows_sent,
        })
        return snapshot

    def report(self, hosts: int) -> dict[str, Any]:
        elapsed = time.monotonic() - self.started
        return {
            "hosts": hosts,
            "elapsed_s": round(elapsed, 2),
            "requests": self.requests,
            "errors": self.errors,
            "error_kinds": dict(self.error_kinds),
            "error_examples": list(self.error_examples),
            "enrolled": self.enrolled,
            "reenrolls": self.reenrolls,
            "node_invalid": self.node_invalid,
            "empty_reads": self.empty_reads,
            "queries_answered": self.queries_answered,
            "live_queries_answered": self.live_queries_answered,
            "log_lines_sent": self.log_lines_sent,
            "log_rows_sent": self.log_rows_sent,
            "loop_lag_max_ms": round(self.loop_lag_max * 1000, 1),
            "endpoints": {name: stats.summary(elapsed) for name, stats in self.endpoints.items()},
        }


def format_report(report: dict[str, Any]) -> str:
    """The human summary printed at the end of ``hostql sim``."""
    lines = [
        f"hostql sim: {report['hosts']} hosts, {report['elapsed_s']:g} s, {report['requests']} requests, "
        f"{report['errors']} errors",
        f"  enrolled {report['enrolled']} (re-enrolls {report['reenrolls']}, node_invalid {report['node_invalid']}); "
        f"distributed queries answered {report['queries_answered']} (live {report['live_queries_answered']}); "
        f"log lines {report['log_lines_sent']} ({report['log_rows_sent']} rows); "
        f"empty reads {report['empty_reads']}; event-loop lag max {report['loop_lag_max_ms']:g} ms",
        f"  {'endpoint':<18} {'requests':>9} {'errors':>7} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'p99 ms':>8} {'max ms':>8}",
    ]
    for name, row in report["endpoints"].items():
        lines.append(f"  {name:<18} {row['requests']:>9} {row['errors']:>7} {row['per_second']:>8.1f} "
                     f"{row['p50_ms']:>8.2f} {row['p95_ms']:>8.2f} {row['p99_ms']:>8.2f} {row['max_ms']:>8.2f}")
    if report["error_kinds"]:
        lines.append("  errors by kind:")
        lines.extend(f"    {kind}: {count}" for kind, count in sorted(report["error_kinds"].items()))
        lines.append("  first errors:")
        lines.extend(f"    {example}" for example in report["error_examples"][:10])
    return "\n".join(lines)
