"""The watcher keeps a real worker process within its limits.

Workers are tiny Python programs written into tmp_path; the watcher runs with
0.2 s checks and tiny limits so each test takes a few seconds.  Every test
bounds the watcher's run with a timer that asks it to stop, and the watcher
itself never leaves its worker running.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from hostql.agent.denylist import FAILED_QUERIES
from hostql.agent.flags import FlagValue, FlagValues
from hostql.agent.store import CONFIGURATIONS, Store
from hostql.agent.watchdog import (
    EXIT_FAILURE,
    LimitMonitor,
    Usage,
    Watchdog,
    WatchdogEvent,
    WatchdogSettings,
    _read_proc,
    _read_psutil,
    cpu_budget_ms,
    read_usage,
    respawn_delay,
    settings_from_flags,
)

MB = 1024 * 1024
INTERVAL = 0.2
DEADLINE = 15.0  # no watcher run in these tests may take longer

# One worker program, several behaviours.  argv: <dir> <mode>.  Each start
# appends "pid HOSTQL_WORKER HOSTQL_WATCHER_PID" to <dir>/runs.
WORKER = r"""
import os, signal, sys, time
from pathlib import Path

here, mode = Path(sys.argv[1]), sys.argv[2]
if mode == "sleep":
    def on_term(signum, frame):
        (here / "terminated").write_text(str(signum))
        sys.exit(0)
    signal.signal(signal.SIGTERM, on_term)
with (here / "runs").open("a") as f:
    f.write(f"{os.getpid()} {os.environ.get('HOSTQL_WORKER')} {os.environ.get('HOSTQL_WATCHER_PID')}\n")
run = len((here / "runs").read_text().splitlines())

def hog_memory():
    block = b"\x01" * (80 * 1024 * 1024)
    time.sleep(60)
    return block

if mode == "memory":
    from hostql.agent.denylist import ExecutingQuery, check_crashed_query
    from hostql.agent.store import Store
    store = Store(here / "state.db")
    if run == 1:
        with ExecutingQuery(store, "pack_test_hog"):
            time.sleep(2.0)  # past the 1 s grace delay, so the baseline is small
            hog_memory()
    else:
        name = check_crashed_query(store, int(time.time()), os.environ.get("HOSTQL_WORKER") == "1")
        (here / "crashed_query").write_text(str(name))
        sys.exit(0)
elif mode == "cpu":
    if run == 1:
        while True:
            pass
    sys.exit(0)
elif mode == "crash":
    sys.exit(3)
elif mode == "exit0":
    time.sleep(0.3)
    sys.exit(0)
elif mode == "sleep":
    time.sleep(60)
elif mode == "heavy":
    block = b"\x01" * (80 * 1024 * 1024)
    end = time.monotonic() + 1.5
    while time.monotonic() < end:
        pass
    sys.exit(0)
"""

# Runs a watcher as its own process, for signal tests.
WATCHER = r"""
import logging, sys
from dataclasses import replace
from hostql.agent.flags import FlagValues
from hostql.agent.watchdog import Watchdog, settings_from_flags

logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")
flags = FlagValues({"watchdog_forced_shutdown_delay": 3})
settings = settings_from_flags(flags, interval_s=0.2)
sys.exit(Watchdog(sys.argv[1:], flags, settings=settings).run())
"""


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[Path]:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    yield script
    # Belt and braces: no worker outlives its test.
    for pid in _worker_pids(tmp_path):
        _kill(pid)


def _worker_pids(directory: Path) -> list[int]:
    runs = directory / "runs"
    if not runs.exists():
        return []
    return [int(line.split()[0]) for line in runs.read_text().splitlines()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return True
    return state != "Z"


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _settings(overrides: dict[str, FlagValue]) -> WatchdogSettings:
    """Limits from real flags, with test-sized times (one core keeps the CPU budget fixed)."""
    flags = FlagValues({"watchdog_delay": 0, "watchdog_max_delay": 0, "watchdog_forced_shutdown_delay": 2, **overrides})
    return replace(settings_from_flags(flags, interval_s=INTERVAL), cores=1)


def _run(watchdog: Watchdog) -> tuple[int, float]:
    """Run the watcher in this process, bounded by DEADLINE; (exit code, seconds)."""
    timer = threading.Timer(DEADLINE, watchdog.request_stop)
    timer.start()
    start = time.monotonic()
    try:
        code = watchdog.run()
    finally:
        timer.cancel()
        if watchdog.proc is not None and watchdog.proc.poll() is None:
            watchdog.proc.kill()
            watchdog.proc.wait()
    return code, time.monotonic() - start


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "hostql.agent.watchdog"]


# --- real processes ----------------------------------------------------------


def test_memory_hog_is_killed_respawned_and_its_query_denylisted(
    worker: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hostql.agent.watchdog")
    events: list[WatchdogEvent] = []
    settings = _settings({"watchdog_memory_limit": 20, "watchdog_delay": 1})
    assert settings.memory_mb == 20 and settings.grace_s == 1
    watchdog = Watchdog(
        [sys.executable, str(worker), str(tmp_path), "memory"], FlagValues(), settings=settings, on_event=events.append
    )
    started = time.time()
    code, took = _run(watchdog)
    assert took < DEADLINE - 1, "the watcher did not end on its own"
    assert code == 0
    runs = (tmp_path / "runs").read_text().splitlines()
    assert len(runs) == 2
    assert all(line.split()[1:] == ["1", str(os.getpid())] for line in runs)
    limits = [e for e in events if e.kind == "limit"]
    assert len(limits) == 1 and limits[0].pid == int(runs[0].split()[0])
    assert any(m.startswith("Worker (pid") and "Memory limits exceeded: " in m for m in _messages(caplog))
    # The killed worker was inside "pack_test_hog": the next one denylisted it.
    assert (tmp_path / "crashed_query").read_text() == "pack_test_hog"
    failed = Store(tmp_path / "state.db").get(CONFIGURATIONS, FAILED_QUERIES) or ""
    name, expiry = failed.split(":")
    assert name == "pack_test_hog"
    assert started + 86400 <= int(expiry) <= time.time() + 86400


def test_cpu_hog_is_killed_after_the_latency(worker: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hostql.agent.watchdog")
    settings = _settings({"watchdog_utilization_limit": 5, "watchdog_latency_limit": 1})
    assert cpu_budget_ms(settings.utilization_pct, INTERVAL, settings.cores) == pytest.approx(10.0)
    watchdog = Watchdog([sys.executable, str(worker), str(tmp_path), "cpu"], FlagValues(), settings=settings)
    code, took = _run(watchdog)
    assert took < DEADLINE - 1
    assert code == 0
    assert len(_worker_pids(tmp_path)) == 2
    cpu = [m for m in _messages(caplog) if "CPU limits exceeded for " in m]
    assert len(cpu) == 1
    seconds = int(cpu[0].split("CPU limits exceeded for ")[1].split()[0])
    assert seconds >= 1
    assert not any("Memory limits" in m for m in _messages(caplog))


def test_worker_exit_0_ends_the_watcher_with_0(worker: Path, tmp_path: Path) -> None:
    events: list[WatchdogEvent] = []
    watchdog = Watchdog(
        [sys.executable, str(worker), str(tmp_path), "exit0"],
        FlagValues(),
        settings=_settings({}),
        on_event=events.append,
    )
    code, took = _run(watchdog)
    assert code == 0
    assert took < 5
    assert [e.kind for e in events] == ["start", "exit"]
    assert len(_worker_pids(tmp_path)) == 1


def test_quick_crashes_end_with_too_many_worker_restarts(
    worker: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hostql.agent.watchdog")
    events: list[WatchdogEvent] = []
    settings = replace(_settings({}), max_delay_s=0.05)
    assert settings.respawn_window_s == 4 and settings.max_restarts == 4
    watchdog = Watchdog(
        [sys.executable, str(worker), str(tmp_path), "crash"], FlagValues(), settings=settings, on_event=events.append
    )
    code, took = _run(watchdog)
    assert took < DEADLINE - 1
    assert code == EXIT_FAILURE
    # The first start plus four quick restarts; the fifth quick death gives up.
    assert len(_worker_pids(tmp_path)) == 5
    assert [e.kind for e in events].count("respawn") == 4
    assert events[-1].kind == "give_up"
    messages = _messages(caplog)
    assert any(m.startswith("Too many worker restarts") for m in messages)
    assert any("exited with code 3" in m for m in messages)
    assert any("Worker respawning too quickly: 4 times" in m for m in messages)


def test_level_off_never_kills(worker: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hostql.agent.watchdog")
    events: list[WatchdogEvent] = []
    settings = _settings({"watchdog_level": -1})
    assert (settings.memory_mb, settings.utilization_pct, settings.latency_s) == (10000, 100, 1000)
    watchdog = Watchdog(
        [sys.executable, str(worker), str(tmp_path), "heavy"], FlagValues(), settings=settings, on_event=events.append
    )
    code, took = _run(watchdog)
    assert took < DEADLINE - 1
    assert code == 0
    assert [e.kind for e in events] == ["start", "exit"]
    assert not any("limits exceeded" in m for m in _messages(caplog))


def test_sigterm_stops_the_worker_and_the_watcher(worker: Path, tmp_path: Path) -> None:
    driver = tmp_path / "watcher.py"
    driver.write_text(WATCHER)
    watcher = subprocess.Popen(
        [sys.executable, str(driver), sys.executable, str(worker), str(tmp_path), "sleep"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 10
        while not _worker_pids(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.05)
        pids = _worker_pids(tmp_path)
        assert len(pids) == 1, "the worker did not start"
        assert _alive(pids[0])
        watcher.send_signal(signal.SIGTERM)
        _, stderr = watcher.communicate(timeout=10)
        assert watcher.returncode == 0, stderr
        assert (tmp_path / "terminated").read_text() == str(int(signal.SIGTERM))
        assert not _alive(pids[0])
        assert "Stopping the worker" in stderr
        assert len(_worker_pids(tmp_path)) == 1  # not respawned
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.communicate()


def test_worker_that_ignores_sigterm_is_killed(worker: Path, tmp_path: Path) -> None:
    script = tmp_path / "stubborn.py"
    script.write_text(
        "import os, signal, sys, time\n"
        "from pathlib import Path\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "Path(sys.argv[1], 'runs').write_text(str(os.getpid()) + ' 1 1' + chr(10))\n"
        "time.sleep(60)\n"
    )
    settings = replace(_settings({}), forced_shutdown_s=0.5)
    watchdog = Watchdog([sys.executable, str(script), str(tmp_path)], FlagValues(), settings=settings)
    timer = threading.Timer(1.0, watchdog.request_stop)
    timer.start()
    try:
        start = time.monotonic()
        code = watchdog.run()
        took = time.monotonic() - start
    finally:
        timer.cancel()
    assert code == 0
    assert took < 5
    assert watchdog.proc is not None and watchdog.proc.returncode == -signal.SIGKILL


# --- measurements and arithmetic ---------------------------------------------


def test_read_usage_of_this_process() -> None:
    before = read_usage(os.getpid())
    assert before is not None
    assert before.rss_bytes > 5 * MB
    end = time.process_time() + 0.3
    while time.process_time() < end:
        pass
    after = read_usage(os.getpid())
    assert after is not None
    assert 200 <= after.cpu_ms - before.cpu_ms <= 2000
    # The portable reader agrees with /proc.
    portable = _read_psutil(os.getpid())
    procfs = _read_proc(os.getpid())
    assert portable is not None and procfs is not None
    assert abs(portable.rss_bytes - procfs.rss_bytes) < 20 * MB
    assert abs(portable.cpu_ms - procfs.cpu_ms) < 500


def test_read_usage_of_a_gone_process_is_none() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert read_usage(proc.pid) is None
    assert _read_psutil(proc.pid) is None


def test_limits_per_level_and_overrides() -> None:
    normal = settings_from_flags(FlagValues())
    assert (normal.memory_mb, normal.utilization_pct, normal.latency_s) == (200, 10, 12)
    assert (normal.respawn_window_s, normal.max_restarts, normal.respawn_delay_s, normal.interval_s) == (4, 4, 5, 3)
    assert (normal.grace_s, normal.forced_shutdown_s, normal.max_delay_s) == (60, 4, 600)
    strict = settings_from_flags(FlagValues({"watchdog_level": 1}))
    assert (strict.memory_mb, strict.utilization_pct, strict.latency_s) == (100, 5, 6)
    off = settings_from_flags(FlagValues({"watchdog_level": -1}))
    assert (off.memory_mb, off.utilization_pct, off.latency_s, off.respawn_window_s, off.respawn_delay_s) == (
        10000,
        100,
        1000,
        1000,
        1,
    )
    custom = settings_from_flags(
        FlagValues(
            {
                "watchdog_level": 1,
                "watchdog_memory_limit": 350,
                "watchdog_utilization_limit": 25,
                "watchdog_latency_limit": 30,
            }
        )
    )
    assert (custom.memory_mb, custom.utilization_pct, custom.latency_s) == (350, 25, 30)


def test_cpu_budget_and_respawn_delay() -> None:
    # osquery: utilization% x 3000 ms x logical cores / 100.
    assert cpu_budget_ms(10, 3, 4) == pytest.approx(1200)
    assert cpu_budget_ms(5, 3, 1) == pytest.approx(150)
    s = settings_from_flags(FlagValues())
    assert [respawn_delay(s, n) for n in (1, 2, 3)] == [7, 9, 13]
    assert respawn_delay(s, 20) == 600
    capped = settings_from_flags(FlagValues({"watchdog_max_delay": 10}))
    assert respawn_delay(capped, 3) == 10


def _monitor(*, grace_s: float = 60, latency_s: float = 6) -> LimitMonitor:
    settings = WatchdogSettings(
        memory_mb=20,
        utilization_pct=10,
        latency_s=latency_s,
        respawn_window_s=4,
        max_restarts=4,
        respawn_delay_s=5,
        max_delay_s=600,
        interval_s=3,
        grace_s=grace_s,
        forced_shutdown_s=4,
        cores=2,
    )
    return LimitMonitor(settings, started=0.0)


def test_memory_baseline_is_taken_after_the_grace_delay() -> None:
    m = _monitor()
    assert m.check(3, Usage(500 * MB, 0)) is None  # in the grace delay: no limit at all
    assert m.baseline_rss is None
    assert m.check(60, Usage(40 * MB, 0)) is None  # first check after it: the baseline
    assert m.baseline_rss == 40 * MB
    assert m.check(63, Usage(60 * MB, 0)) is None  # exactly the limit is allowed
    message = m.check(66, Usage(61 * MB, 0))
    assert message is not None and message.startswith("Memory limits exceeded: 21 MB")


def test_cpu_must_stay_over_budget_for_the_latency() -> None:
    m = _monitor(grace_s=0)
    budget = cpu_budget_ms(10, 3, 2)  # 600 ms per check
    cpu = 0
    assert m.check(0, Usage(MB, cpu)) is None
    cpu += int(budget) + 1
    assert m.check(3, Usage(MB, cpu)) is None  # 3 s over
    cpu += int(budget)  # exactly the budget: the streak is broken
    assert m.check(6, Usage(MB, cpu)) is None
    cpu += 2000
    assert m.check(9, Usage(MB, cpu)) is None  # over for 3 s of the 6 s latency
    cpu += 2000
    message = m.check(12, Usage(MB, cpu))  # over for 6 s
    assert message is not None and message.startswith("CPU limits exceeded for 6 s")


def test_cpu_is_not_judged_during_the_grace_delay() -> None:
    m = _monitor(grace_s=10, latency_s=3)
    cpu = 0
    for t in range(0, 10, 3):
        cpu += 5000
        assert m.check(t, Usage(MB, cpu)) is None
    cpu += 5000
    assert m.check(12, Usage(MB, cpu)) is None  # the streak starts at the end of the grace delay
    cpu += 5000
    assert m.check(15, Usage(MB, cpu)) is not None


def test_a_late_check_gets_a_bigger_budget() -> None:
    m = _monitor(grace_s=0, latency_s=3)
    assert m.check(0, Usage(MB, 0)) is None
    # 6 s passed instead of 3: 1000 ms is within 10% of 2 cores over 6 s (1200 ms).
    assert m.check(6, Usage(MB, 1000)) is None
