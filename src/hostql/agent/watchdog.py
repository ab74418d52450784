"""The watcher: runs the agent's worker process and keeps it within limits.

``hostql agent`` with the watchdog on is two processes, as osqueryd is: this
watcher, and a worker (the same command line with ``HOSTQL_WORKER=1`` in its
environment) that runs the schedule.  Every check interval the watcher reads
the worker's resident memory and CPU time and stops it when

* its resident size grew more than the memory limit (MB) above its size at
  the first check after the grace delay (``--watchdog_delay``), or
* it used more CPU than the utilization limit allows in consecutive checks
  for at least the latency limit (seconds).

A stopped or crashed worker is started again.  A worker that dies within the
respawn window counts as a quick restart: each one waits ``base + 2^restarts``
seconds (at most ``--watchdog_max_delay``) before the next start, and too
many in a row end the daemon with "Too many worker restarts".  A worker that
exits 0 (or with the catastrophic code 78) ends the watcher with that code.
SIGTERM and SIGINT are passed on to the worker; the watcher waits for it.

:class:`LimitMonitor` holds the limit arithmetic and knows nothing about
processes; :func:`read_usage` is the only place that measures a process.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from hostql.agent.flags import FlagValues

EXIT_SUCCESS = 0
EXIT_FAILURE = 1
EXIT_CATASTROPHIC = 78  # osquery's code for "do not restart me"
# Sent to a worker over its limits; SIGTERM means an orderly stop.
LIMIT_SIGNAL = signal.SIGUSR1

WORKER_ENV = "HOSTQL_WORKER"
WATCHER_PID_ENV = "HOSTQL_WATCHER_PID"

MB = 1024 * 1024

log = logging.getLogger("hostql.agent.watchdog")


# --- limits ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LevelLimits:
    """One column of osquery's watchdog table."""

    memory_mb: int
    utilization_pct: int
    latency_s: int
    respawn_limit: int  # seconds a worker must live, and quick restarts allowed
    respawn_delay_s: int
    interval_s: int


LEVELS: dict[int, LevelLimits] = {
    0: LevelLimits(memory_mb=200, utilization_pct=10, latency_s=12, respawn_limit=4, respawn_delay_s=5, interval_s=3),
    1: LevelLimits(memory_mb=100, utilization_pct=5, latency_s=6, respawn_limit=4, respawn_delay_s=5, interval_s=3),
    -1: LevelLimits(
        memory_mb=10000, utilization_pct=100, latency_s=1000, respawn_limit=1000, respawn_delay_s=1, interval_s=3
    ),
}


def level_limits(level: int) -> LevelLimits:
    """The table column for ``--watchdog_level``: below 0 is off, above 1 is restrictive."""
    return LEVELS[max(-1, min(1, level))]


@dataclass(frozen=True, slots=True)
class WatchdogSettings:
    """Everything the watcher needs to know; build with :func:`settings_from_flags`.

    Times are seconds (floats, so tests can use small values).
    """

    memory_mb: float
    utilization_pct: float
    latency_s: float
    respawn_window_s: float  # a worker dying sooner is a quick restart
    max_restarts: int  # quick restarts in a row before giving up
    respawn_delay_s: float  # base delay before a quick restart
    max_delay_s: float  # cap of base + 2^restarts
    interval_s: float  # between checks
    grace_s: float  # after a worker's start, before limits apply
    forced_shutdown_s: float  # between the polite stop and the kill
    cores: int  # logical cores the CPU budget is spread over
    debug: bool = False  # log every measurement (at DEBUG)


def _flag_int(flags: FlagValues, name: str) -> int:
    value = flags.get(name)
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def settings_from_flags(flags: FlagValues, *, interval_s: float | None = None) -> WatchdogSettings:
    """Limits for ``--watchdog_level`` with the ``--watchdog_*_limit`` overrides (0 = none)."""
    limits = level_limits(_flag_int(flags, "watchdog_level"))
    memory = _flag_int(flags, "watchdog_memory_limit") or limits.memory_mb
    utilization = _flag_int(flags, "watchdog_utilization_limit") or limits.utilization_pct
    latency = _flag_int(flags, "watchdog_latency_limit") or limits.latency_s
    return WatchdogSettings(
        memory_mb=float(memory),
        utilization_pct=float(utilization),
        latency_s=float(latency),
        respawn_window_s=float(limits.respawn_limit),
        max_restarts=limits.respawn_limit,
        respawn_delay_s=float(limits.respawn_delay_s),
        max_delay_s=float(_flag_int(flags, "watchdog_max_delay")),
        interval_s=float(limits.interval_s if interval_s is None else interval_s),
        grace_s=float(_flag_int(flags, "watchdog_delay")),
        forced_shutdown_s=float(_flag_int(flags, "watchdog_forced_shutdown_delay")),
        cores=os.cpu_count() or 1,
        debug=bool(flags.get("enable_watchdog_debug")),
    )


def cpu_budget_ms(utilization_pct: float, interval_s: float, cores: int) -> float:
    """CPU milliseconds a worker may use in one check: utilization% of all cores."""
    return utilization_pct * interval_s * 1000.0 * cores / 100.0


def respawn_delay(settings: WatchdogSettings, restarts: int) -> float:
    """Seconds to wait before a quick restart: base + 2^restarts, capped."""
    return min(settings.respawn_delay_s + 2.0**restarts, settings.max_delay_s)


# --- measuring a process -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Usage:
    rss_bytes: int
    cpu_ms: int  # user + system


_PROC = Path("/proc")


def _read_proc(pid: int) -> Usage | None:
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
        statm = (_PROC / str(pid) / "statm").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces or ')'.
    fields = stat.rpartition(")")[2].split()
    try:
        ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
        pages = int(statm.split()[1])  # resident
    except (IndexError, ValueError):
        return None
    hz = os.sysconf("SC_CLK_TCK")
    return Usage(rss_bytes=pages * os.sysconf("SC_PAGE_SIZE"), cpu_ms=ticks * 1000 // hz)


def _read_psutil(pid: int) -> Usage | None:
    import psutil

    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            times = proc.cpu_times()
            rss = proc.memory_info().rss
    except psutil.Error:
        return None
    return Usage(rss_bytes=int(rss), cpu_ms=int((times.user + times.system) * 1000))


def read_usage(pid: int) -> Usage | None:
    """Resident size and CPU time of ``pid``; None when it cannot be read (gone)."""
    if sys.platform.startswith("linux") and _PROC.is_dir():
        return _read_proc(pid)
    return _read_psutil(pid)


# --- the limit arithmetic ----------------------------------------------------


class LimitMonitor:
    """Feed it one worker's measurements; it says when a limit is exceeded."""

    def __init__(self, settings: WatchdogSettings, started: float) -> None:
        self.settings = settings
        self.started = started
        self.baseline_rss: int | None = None
        self._last: tuple[float, int] | None = None  # (time, cpu_ms) of the previous check
        self._over_since: float | None = None

    def check(self, now: float, usage: Usage) -> str | None:
        """The violation at ``now`` as a log message, or None."""
        s = self.settings
        last, self._last = self._last, (now, usage.cpu_ms)
        if now - self.started < s.grace_s:
            return None
        if self.baseline_rss is None:
            self.baseline_rss = usage.rss_bytes
        footprint = usage.rss_bytes - self.baseline_rss
        if s.debug:
            log.debug(
                "Worker memory %d MB (baseline %d MB), CPU %d ms total",
                usage.rss_bytes // MB,
                self.baseline_rss // MB,
                usage.cpu_ms,
            )
        if footprint > s.memory_mb * MB:
            return (
                f"Memory limits exceeded: {footprint // MB} MB "
                f"(limit {s.memory_mb:g} MB above a baseline of {self.baseline_rss // MB} MB)"
            )
        if last is None or now - last[0] <= 0:
            return None
        # A late check gets the budget of the time that really passed.
        elapsed = max(s.interval_s, now - last[0])
        used = usage.cpu_ms - last[1]
        budget = cpu_budget_ms(s.utilization_pct, elapsed, s.cores)
        if used <= budget:
            self._over_since = None
            return None
        if self._over_since is None:
            self._over_since = max(last[0], self.started + s.grace_s)
        sustained = now - self._over_since
        if sustained + 1e-6 >= s.latency_s:
            return (
                f"CPU limits exceeded for {sustained:.0f} s "
                f"(used {used} ms of a {budget:.0f} ms budget in the last {elapsed:g} s; "
                f"limit {s.utilization_pct:g}% of {s.cores} core{'s' if s.cores != 1 else ''})"
            )
        return None


# --- the supervisor ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WatchdogEvent:
    """What the watcher did, for callers that want more than the log."""

    kind: str  # "start", "exit", "limit", "respawn", "give_up", "stop"
    pid: int
    detail: str = ""


def is_worker() -> bool:
    """True in a worker started by a watcher."""
    return os.environ.get(WORKER_ENV) == "1"


def watcher_pid() -> int:
    """The watcher's pid for ``osquery_info.watcher``; -1 without a watcher."""
    try:
        return int(os.environ.get(WATCHER_PID_ENV, "-1"))
    except ValueError:
        return -1


def watcher_alive(pid: int) -> bool:
    """For the worker: is its watcher still its parent?  (False: it should exit.)"""
    return pid > 0 and os.getppid() == pid


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        return f"was killed by signal {name}"
    return f"exited with code {code}"


class Watchdog:
    """``Watchdog(argv, flags).run()`` supervises the worker until the daemon ends.

    ``settings`` replaces what the flags say (tests use small times);
    ``on_event`` is called for each :class:`WatchdogEvent`.
    """

    def __init__(
        self,
        worker_argv: Sequence[str],
        flags: FlagValues,
        *,
        settings: WatchdogSettings | None = None,
        env: Mapping[str, str] | None = None,
        on_event: Callable[[WatchdogEvent], None] | None = None,
        reader: Callable[[int], Usage | None] = read_usage,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.worker_argv = list(worker_argv)
        self.settings = settings if settings is not None else settings_from_flags(flags)
        self.env = dict(os.environ if env is None else env)
        self.on_event = on_event
        self.reader = reader
        self.clock = clock
        self.proc: subprocess.Popen[bytes] | None = None
        self._stop_signal: int | None = None
        # Short naps so a signal or a worker's exit is noticed quickly.
        self._nap = max(0.01, min(0.5, self.settings.interval_s / 4))

    # public

    def run(self) -> int:
        """Supervise workers; the daemon's exit code."""
        previous = self._install_signal_handlers()
        try:
            return self._loop()
        finally:
            self._restore_signal_handlers(previous)
            if self.proc is not None and self.proc.poll() is None:
                self._stop_worker(self.proc, signal.SIGTERM)

    def request_stop(self, signum: int = signal.SIGTERM) -> None:
        """Ask the watcher to stop the worker and return (signal handler, other threads)."""
        if self._stop_signal is None:
            self._stop_signal = signum

    # signals

    def _install_signal_handlers(self) -> dict[int, object]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous: dict[int, object] = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, self._on_signal)
        return previous

    @staticmethod
    def _restore_signal_handlers(previous: dict[int, object]) -> None:
        for sig, handler in previous.items():
            if callable(handler) or isinstance(handler, int):
                signal.signal(sig, handler)  # type: ignore[arg-type]

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.request_stop(signum)

    # the loop

    def _emit(self, kind: str, pid: int, detail: str = "") -> None:
        if self.on_event is not None:
            self.on_event(WatchdogEvent(kind, pid, detail))

    def _loop(self) -> int:
        s = self.settings
        restarts = 0
        while self._stop_signal is None:
            try:
                proc = self._spawn()
            except OSError as exc:
                log.error("Cannot start the worker %s: %s", self.worker_argv[:1], exc)
                return EXIT_FAILURE
            started = self.clock()
            code, stopped_for_limits = self._supervise(proc, started)
            if self._stop_signal is not None:
                break
            # A worker stopped for its limits is replaced whatever its exit
            # code: a clean exit on our SIGTERM is not "the work is done".
            if code in (EXIT_SUCCESS, EXIT_CATASTROPHIC) and not stopped_for_limits:
                level = logging.INFO if code == EXIT_SUCCESS else logging.ERROR
                log.log(level, "Worker (pid %d) exited with code %d; the watcher ends", proc.pid, code)
                return code
            if not stopped_for_limits:
                log.warning("Worker (pid %d) %s", proc.pid, _describe_exit(code))
            if self.clock() - started >= s.respawn_window_s:
                restarts = 0
                continue
            if restarts >= s.max_restarts:
                log.error("Too many worker restarts: %d in a row died within %g s", restarts + 1, s.respawn_window_s)
                self._emit("give_up", proc.pid, "Too many worker restarts")
                return EXIT_FAILURE
            restarts += 1
            delay = respawn_delay(s, restarts)
            log.warning("Worker respawning too quickly: %d times; next start in %g s", restarts, delay)
            self._emit("respawn", proc.pid, f"{delay:g}")
            self._nap_until(self.clock() + delay, None)
        self._emit("stop", -1 if self.proc is None else self.proc.pid, str(self._stop_signal))
        return self._shutdown_code()

    def _spawn(self) -> subprocess.Popen[bytes]:
        env = dict(self.env)
        env[WORKER_ENV] = "1"
        env[WATCHER_PID_ENV] = str(os.getpid())
        proc = subprocess.Popen(self.worker_argv, env=env)
        self.proc = proc
        log.info("Worker started (pid %d)", proc.pid)
        self._emit("start", proc.pid)
        return proc

    def _supervise(self, proc: subprocess.Popen[bytes], started: float) -> tuple[int, bool]:
        """Watch ``proc`` until it ends; (its exit code, whether we stopped it for a limit)."""
        monitor = LimitMonitor(self.settings, started)
        next_check = started + self.settings.interval_s
        while True:
            code = proc.poll()
            if code is not None:
                self._emit("exit", proc.pid, str(code))
                return code, False
            if self._stop_signal is not None:
                log.info("Stopping the worker (pid %d) on signal %d", proc.pid, self._stop_signal)
                return self._stop_worker(proc, self._stop_signal), False
            now = self.clock()
            if now >= next_check:
                next_check = max(next_check + self.settings.interval_s, now + self.settings.interval_s / 2)
                usage = self.reader(proc.pid)
                violation = None if usage is None else monitor.check(now, usage)
                if violation is not None:
                    log.warning("Worker (pid %d) stopped: %s", proc.pid, violation)
                    self._emit("limit", proc.pid, violation)
                    # LIMIT_SIGNAL, not SIGTERM: the worker abandons its running
                    # query and leaves it marked, so the next worker denylists it.
                    return self._stop_worker(proc, LIMIT_SIGNAL), True
            self._nap_until(next_check, proc)

    def _nap_until(self, deadline: float, proc: subprocess.Popen[bytes] | None) -> None:
        """Sleep until ``deadline``, a stop request, or ``proc``'s end."""
        while self._stop_signal is None and (proc is None or proc.poll() is None):
            left = deadline - self.clock()
            if left <= 0:
                return
            time.sleep(min(left, self._nap))

    def _stop_worker(self, proc: subprocess.Popen[bytes], signum: int) -> int:
        """Signal the worker, kill it after the forced shutdown delay; its exit code."""
        try:
            proc.send_signal(signum)
        except OSError:
            pass
        try:
            return proc.wait(timeout=self.settings.forced_shutdown_s)
        except subprocess.TimeoutExpired:
            log.warning(
                "Worker (pid %d) did not stop within %g s; killing it", proc.pid, self.settings.forced_shutdown_s
            )
            proc.kill()
            return proc.wait()

    def _shutdown_code(self) -> int:
        """Exit code after a requested stop: the worker's own failure code, else 0."""
        code = None if self.proc is None else self.proc.returncode
        return code if code is not None and code > 0 else EXIT_SUCCESS
