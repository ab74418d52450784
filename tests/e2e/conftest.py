"""Fixtures for whole-daemon tests: the real ``hostql agent`` as a subprocess.

Every agent a test starts is tracked by the ``agents`` fixture and stopped by
pid when the test ends (SIGTERM, then SIGKILL to the watcher and every
descendant it had), whatever the test did.  Waits are bounded.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# tests/agent/tls_server.py (the HTTPS test server) is imported as a top-level module.
AGENT_TESTS = str(Path(__file__).resolve().parent.parent / "agent")
if AGENT_TESTS not in sys.path:
    sys.path.insert(0, AGENT_TESTS)

RESULTS = "osqueryd.results.log"
SNAPSHOTS = "osqueryd.snapshots.log"


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.1, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc/<pid>/task/*/children)."""
    found: list[int] = []
    task_dir = Path(f"/proc/{pid}/task")
    try:
        tasks = list(task_dir.iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            text = (task / "children").read_text()
        except OSError:
            continue
        found.extend(int(word) for word in text.split())
    return found


def descendants(pid: int) -> list[int]:
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in children(todo.pop()):
            if child not in out:
                out.append(child)
                todo.append(child)
    return out


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def kill_pid(pid: int, sig: int = signal.SIGKILL) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def write_json(path: Path, obj: Any) -> Path:
    path.write_text(json.dumps(obj, indent=2))
    return path


class LogFile:
    """A log file read as it grows: only whole lines, in order."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""
        self._lines: list[str] = []

    def lines(self) -> list[str]:
        """Every complete line written so far."""
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self._offset)
                data = handle.read()
        except FileNotFoundError:
            return list(self._lines)
        self._offset += len(data)
        data = self._partial + data
        *complete, self._partial = data.split(b"\n")
        self._lines.extend(chunk.decode("utf-8") for chunk in complete)
        return list(self._lines)

    def objects(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines()]


class AgentProcess:
    """One ``hostql agent`` command line started with Popen (watcher or in-process worker)."""

    def __init__(self, args: list[str], cwd: Path, name: str) -> None:
        self.args = args
        self.cwd = cwd
        self.stdout_path = cwd / f"{name}.stdout"
        self.stderr_path = cwd / f"{name}.stderr"
        self.proc: subprocess.Popen[bytes] | None = None
        self.known: set[int] = set()  # every descendant pid ever seen, for the final clean-up
        self.started = 0.0  # time.monotonic() at start

    def start(self) -> AgentProcess:
        self.started = time.monotonic()
        with open(self.stdout_path, "ab") as out, open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hostql", "agent", *self.args],
                cwd=self.cwd,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def worker_pid(self) -> int | None:
        """The watcher's worker (its only child), or None while there is none."""
        kids = [pid for pid in children(self.pid) if pid_alive(pid)]
        self.known.update(kids)
        return kids[0] if kids else None

    def wait_worker(self, timeout: float = 15.0, not_pid: int | None = None) -> int:
        def found() -> int | None:
            pid = self.worker_pid()
            return pid if pid is not None and pid != not_pid else None

        return int(wait_for(found, timeout, what="the agent's worker process"))

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def remember_descendants(self) -> None:
        if self.alive():
            self.known.update(descendants(self.pid))

    def kill(self) -> None:
        """kill -9 the watcher and its worker (the whole agent)."""
        self.remember_descendants()
        kill_pid(self.pid)
        for pid in self.known:
            kill_pid(pid)
        assert self.proc is not None
        self.proc.wait(timeout=10)
        wait_for(lambda: not any(pid_alive(p) for p in self.known), 10, what="the agent's processes to end")

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, bounded wait; SIGKILL whatever is left.  Returns the exit code."""
        if self.proc is None:
            return 0
        self.remember_descendants()
        if self.proc.poll() is None:
            kill_pid(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                kill_pid(self.pid)
                self.proc.wait(timeout=10)
        for pid in self.known:
            if pid_alive(pid):
                kill_pid(pid)
        code = self.proc.returncode
        return int(code)


class Agents:
    """Starts agents and guarantees they are gone at the end of the test."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.started: list[AgentProcess] = []

    def start(self, *args: str) -> AgentProcess:
        agent = AgentProcess(list(args), self.directory, f"agent{len(self.started)}")
        self.started.append(agent)
        return agent.start()

    def run(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """Run a short-lived ``hostql agent`` command (--config_check and friends)."""
        return subprocess.run(
            [sys.executable, "-m", "hostql", "agent", *args],
            cwd=self.directory,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    # helpers for the tests (test modules cannot import this conftest by name)

    wait_for = staticmethod(wait_for)
    free_port = staticmethod(free_port)
    pid_alive = staticmethod(pid_alive)
    write_json = staticmethod(write_json)

    def log_file(self, path: Path) -> LogFile:
        return LogFile(path)

    def cleanup(self) -> None:
        for agent in self.started:
            try:
                agent.stop(timeout=10)
            finally:
                for pid in agent.known:
                    kill_pid(pid)


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[Agents]:
    starter = Agents(tmp_path)
    try:
        yield starter
    finally:
        starter.cleanup()


@pytest.fixture
def watch_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "watch"
    directory.mkdir()
    return directory
