"""Status lines as glog text files, the way osqueryd's filesystem logger leaves them.

One file per severity, created at the first line of that severity and named
``<program>.<SEVERITY>.<YYYYMMDD-HHMMSS>.<pid>``, with a symlink
``<program>.<SEVERITY>`` to the newest.  A line goes to its own severity's file
and to every lower one (a warning is also in the INFO file); FATAL lines go to
the INFO, WARNING and ERROR files.  Times are local, as glog prints them.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from pathlib import Path

LEVELS = ("INFO", "WARNING", "ERROR")
LETTERS = "IWEF"
HEADER_FORMAT = "Log line format: [IWEF]mmdd hh:mm:ss.uuuuuu threadid file:line] msg"


def clamp_severity(severity: int) -> int:
    return min(max(severity, 0), 3)


def glog_line(severity: int, created: float, thread_id: int, filename: str, line: int, message: str) -> str:
    """``I0102 10:00:00.123456  4242 scheduler.py:88] message`` plus a newline."""
    t = time.localtime(created)
    usec = min(int((created - int(created)) * 1_000_000), 999_999)
    return (
        f"{LETTERS[clamp_severity(severity)]}{t.tm_mon:02d}{t.tm_mday:02d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{usec:06d} "
        f"{thread_id:>5} {filename}:{line}] {message}\n"
    )


def file_stamp(created: float) -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.localtime(created))


class GlogFiles:
    """Appends glog lines to per-severity files; falls back to stderr."""

    def __init__(self, directory: str | Path, program: str = "osqueryd", mode: int = 0o640, pid: int | None = None):
        self.directory = Path(directory)
        self.program = program
        self.mode = mode
        self.pid = os.getpid() if pid is None else pid
        self._fds: dict[str, int] = {}
        self._paths: dict[str, Path] = {}
        self._unwritable = False
        self._lock = threading.Lock()

    def path(self, level: str) -> Path | None:
        """The file currently written for ``level`` (INFO, WARNING, ERROR)."""
        return self._paths.get(level)

    def write(self, severity: int, created: float, thread_id: int, filename: str, line: int, message: str) -> None:
        text = glog_line(severity, created, thread_id, filename, line, message)
        data = text.encode("utf-8", "backslashreplace")
        levels = LEVELS[: min(clamp_severity(severity), 2) + 1]
        with self._lock:
            for level in levels:
                fd = self._fd(level, created)
                if fd is None:
                    self._to_stderr(text)
                    return
                try:
                    os.write(fd, data)
                except OSError:
                    self._to_stderr(text)
                    return

    def close(self) -> None:
        with self._lock:
            for fd in self._fds.values():
                try:
                    os.close(fd)
                except OSError:
                    pass
            self._fds.clear()

    def _fd(self, level: str, created: float) -> int | None:
        fd = self._fds.get(level)
        if fd is not None or self._unwritable:
            return fd
        name = f"{self.program}.{level}.{file_stamp(created)}.{self.pid}"
        path = self.directory / name
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, self.mode)
            os.fchmod(fd, self.mode)
            if os.fstat(fd).st_size == 0:
                os.write(fd, self._header(created).encode())
        except OSError:
            # glog logs to stderr when it cannot write its files.
            self._unwritable = True
            return None
        self._fds[level] = fd
        self._paths[level] = path
        self._link(level, name)
        return fd

    def _header(self, created: float) -> str:
        stamp = time.strftime("%Y/%m/%d %H:%M:%S", time.localtime(created))
        return f"Log file created at: {stamp}\nRunning on machine: {socket.gethostname()}\n{HEADER_FORMAT}\n"

    def _link(self, level: str, target: str) -> None:
        link = self.directory / f"{self.program}.{level}"
        temp = self.directory / f".{self.program}.{level}.{self.pid}.tmp"
        try:
            if temp.is_symlink() or temp.exists():
                temp.unlink()
            os.symlink(target, temp)
            os.replace(temp, link)
        except OSError:
            pass

    @staticmethod
    def _to_stderr(text: str) -> None:
        try:
            sys.stderr.write(text)
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
