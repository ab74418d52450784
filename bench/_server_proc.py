"""A real ``hostql server --dev`` process for the load bench and the simulator tests.

Started on a free loopback port in a fresh temporary data dir (optionally on
a PostgreSQL database), waited for until it answers, stopped by its pid
(SIGTERM, then SIGKILL after a bounded wait).  CPU time is read from
``/proc/<pid>/stat`` (utime + stime of all the process's threads).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TESTS_SERVER = Path(__file__).resolve().parent.parent / "tests" / "server"
DB_ENGINES = ("sqlite", "postgresql")
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
TICK = float(os.sysconf("SC_CLK_TCK"))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stat_fields(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        return handle.read().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (all threads); 0.0 once it is gone."""
    try:
        fields = _stat_fields(pid)
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (fields 14, 15 of stat)


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as handle:
                found.extend(int(part) for part in handle.read().split())
        except OSError:
            continue
    return found


def db_cpu_seconds(pid: int | None) -> float:
    """CPU of a database server and its live children, plus its reaped children's (cutime, cstime)."""
    if pid is None:
        return 0.0
    try:
        fields = _stat_fields(pid)
    except OSError:
        return 0.0
    total = sum(int(value) for value in fields[11:15]) / TICK
    return total + sum(cpu_seconds(child) for child in _children(pid))


def _dbservers() -> Any:
    if str(TESTS_SERVER) not in sys.path:
        sys.path.insert(0, str(TESTS_SERVER))
    import dbservers  # type: ignore[import-not-found]

    return dbservers


def start_postgres_cluster() -> Any:
    """A throwaway PostgreSQL on a free port (tests/server/dbservers.py), never :5432."""
    return _dbservers().start_postgres()


def stop_db(server: Any) -> None:
    _dbservers().stop_process(server.proc, signal.SIGINT)
    shutil.rmtree(server.directory, ignore_errors=True)


@dataclass
class ServerProc:
    proc: subprocess.Popen[bytes]
    data_dir: Path
    url: str
    ca: str
    enroll_secret: str
    admin_email: str
    admin_password: str
    db_pid: int | None = None
    owns_dir: bool = True
    _log: Path = field(default=Path())

    @property
    def pid(self) -> int:
        return self.proc.pid

    @classmethod
    def start(cls, base_cmd: list[str], *, db_url: str | None = None, db_pid: int | None = None,
              data_dir: Path | None = None, extra: list[str] | None = None) -> ServerProc:
        owns = data_dir is None
        directory = Path(tempfile.mkdtemp(prefix="hostql-bench-")) if data_dir is None else data_dir
        port = free_port()
        cmd = [*base_cmd, "--dev", "--listen", f"127.0.0.1:{port}", "--data-dir", str(directory),
               "--log-level", "warning", *(["--db", db_url] if db_url else []), *(extra or [])]
        log = directory / "server.out"
        with open(log, "ab") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            info = _wait_ready(proc, directory, port, log)
        except BaseException:
            _stop(proc)
            if owns:
                shutil.rmtree(directory, ignore_errors=True)
            raise
        password = ""
        for line in (directory / "admin-credentials.txt").read_text(encoding="utf-8").splitlines():
            if line.startswith("password:"):
                password = line.split(":", 1)[1].strip()
        return cls(proc=proc, data_dir=directory, url=info["url"], ca=info["ca_cert"],
                   enroll_secret=Path(info["enroll_secret_file"]).read_text(encoding="utf-8").strip(),
                   admin_email=info["admin_email"], admin_password=password, db_pid=db_pid, owns_dir=owns,
                   _log=log)

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, size: int = 3000) -> str:
        try:
            return self._log.read_text(errors="replace")[-size:]
        except OSError:
            return ""

    def log_errors(self, limit: int = 4000) -> str:
        """The server output from its first error or traceback on (at most ``limit`` characters)."""
        try:
            text = self._log.read_text(errors="replace")
        except OSError:
            return ""
        starts = [text.find(marker) for marker in (" ERROR ", "Traceback") if marker in text]
        return text[min(starts):min(starts) + limit] if starts else ""

    def stop(self) -> None:
        _stop(self.proc)
        if self.owns_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def _wait_ready(proc: subprocess.Popen[bytes], directory: Path, port: int, log: Path) -> dict[str, Any]:
    deadline = time.monotonic() + START_TIMEOUT
    dev = directory / "dev.json"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"hostql server exited with {proc.returncode}:\n{tail}")
        if dev.exists():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                    info: dict[str, Any] = json.loads(dev.read_text(encoding="utf-8"))
                    return info
            except (OSError, ValueError):
                pass
        time.sleep(0.2)
    raise RuntimeError(f"hostql server did not answer within {START_TIMEOUT:g} s:\n"
                       f"{log.read_text(errors='replace')[-3000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    try:
        os.kill(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=STOP_TIMEOUT)
