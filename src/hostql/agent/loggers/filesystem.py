"""The filesystem logger: results and snapshots appended to files in --logger_path.

Result lines go to ``osqueryd.results.log``, snapshot lines to
``osqueryd.snapshots.log``, one line each.  Every delivered batch is fsynced
before ``deliver`` returns True, so a line the daemon marks delivered survives a
``kill -9`` (and a power cut).  Status lines are glog text files written by
:class:`~hostql.agent.loggers.glog.GlogFiles`; the status handler writes them
directly, so this logger does not ask for JSON status lines in the outbox.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

from hostql.agent.flags import FlagValues
from hostql.agent.loggers import rotate as rotation
from hostql.agent.loggers.base import (
    RESULT,
    SNAPSHOT,
    STATUS,
    FailureNotice,
    OutboxRow,
    flag_bool,
    flag_int,
    flag_str,
    parse_mode,
    parse_status_line,
)
from hostql.agent.loggers.glog import GlogFiles

log = logging.getLogger(__name__)

RESULTS_FILE = "osqueryd.results.log"
SNAPSHOTS_FILE = "osqueryd.snapshots.log"
FILES = {RESULT: RESULTS_FILE, SNAPSHOT: SNAPSHOTS_FILE}
DEFAULT_PATH = "/var/log/osquery/"
DEFAULT_ROTATE_SIZE = 25 * 1024 * 1024
DEFAULT_ROTATE_MAX_FILES = 25
_CHUNK = 64 * 1024


class FilesystemLogger:
    name = "filesystem"
    wants_status = False

    def __init__(
        self,
        directory: str | Path,
        *,
        mode: int = 0o640,
        rotate: bool = False,
        rotate_size: int = DEFAULT_ROTATE_SIZE,
        rotate_max_files: int = DEFAULT_ROTATE_MAX_FILES,
        compression: str | None = None,
        program: str = "osqueryd",
    ) -> None:
        self.directory = Path(directory)
        self.mode = mode
        self.rotate = rotate
        self.rotate_size = rotate_size
        self.rotate_max_files = rotate_max_files
        self.compression = compression or rotation.default_compression()
        self.glog = GlogFiles(self.directory, program=program, mode=mode)
        self._lock = threading.Lock()
        self._notice = FailureNotice(log, self.name)
        # After a failed batch part of it may be on disk: check before rewriting.
        self._unsure = False
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            # osqueryd creates the results file at start, even when empty.
            self._append(RESULT, [])
        except OSError as exc:
            self._notice.failed(f"cannot write to {self.directory}: {exc}")

    def path(self, kind: str) -> Path:
        return self.directory / FILES[kind]

    # Logger interface

    def deliver(self, batch: list[OutboxRow]) -> bool:
        with self._lock:
            try:
                done = set(self._recover(batch)) if self._unsure else set()
            except OSError as exc:
                self._notice.failed(f"cannot check {exc.filename or self.directory}: {exc.strerror or exc}")
                return False
            by_kind: dict[str, list[str]] = {RESULT: [], SNAPSHOT: []}
            for outbox_id, kind, line in batch:
                if outbox_id in done:
                    continue
                if kind == STATUS:
                    self._status(line)
                else:
                    by_kind[SNAPSHOT if kind == SNAPSHOT else RESULT].append(line)
            try:
                for kind, lines in by_kind.items():
                    if lines:
                        self._append(kind, lines)
            except OSError as exc:
                self._unsure = True
                self._notice.failed(f"cannot write {exc.filename or self.directory}: {exc.strerror or exc}")
                return False
            self._unsure = False
            self._notice.ok()
            return True

    def recover(self, pending: list[OutboxRow]) -> list[int]:
        with self._lock:
            try:
                return self._recover(pending)
            except OSError as exc:
                self._notice.failed(f"cannot check {exc.filename or self.directory} after a restart: {exc}")
                return []

    def close(self) -> None:
        self.glog.close()

    # writing

    def _status(self, line: str) -> None:
        """A JSON status line that reached the outbox anyway: write it as glog text."""
        record = parse_status_line(line)
        if record is not None:
            self.glog.write(record.severity, float(record.unix_time), 0, record.filename, record.line, record.message)

    def _open(self, path: Path) -> int:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, self.mode)
        try:
            if os.fstat(fd).st_mode & 0o7777 != self.mode:
                os.fchmod(fd, self.mode)  # the umask may have narrowed it
        except OSError:
            pass  # a file someone else owns: write it with the mode it has
        return fd

    def _append(self, kind: str, lines: list[str]) -> None:
        """Append ``lines``, rotating first whenever the file has reached the size."""
        path = self.path(kind)
        existed = path.exists()
        fd = self._open(path)
        try:
            size = os.fstat(fd).st_size
            buffer = bytearray()
            for line in lines:
                if self.rotate and size + len(buffer) >= self.rotate_size and size + len(buffer) > 0:
                    _write_all(fd, buffer)
                    buffer.clear()
                    os.fsync(fd)
                    os.close(fd)
                    fd = -1
                    rotation.rotate(path, self.rotate_max_files, self.compression, self.mode)
                    fd = self._open(path)
                    existed = False
                    size = 0
                buffer += _encode(line)
                if len(buffer) >= _CHUNK:
                    _write_all(fd, buffer)
                    size += len(buffer)
                    buffer.clear()
            _write_all(fd, buffer)
            os.fsync(fd)
        finally:
            if fd >= 0:
                os.close(fd)
        if not existed:
            _fsync_dir(self.directory)

    # crash recovery

    def _recover(self, pending: list[OutboxRow]) -> list[int]:
        found: list[int] = []
        for kind in (RESULT, SNAPSHOT):
            path = self.path(kind)
            if not path.exists():
                continue
            _cut_torn_line(path)
            rows = [row for row in pending if row[1] == kind]
            if rows:
                count = _written_prefix(path, [line for _, _, line in rows])
                found.extend(outbox_id for outbox_id, _, _ in rows[:count])
        return sorted(found)


def _encode(line: str) -> bytes:
    """The bytes written for one line (a lone surrogate cannot fail a batch)."""
    return line.encode("utf-8", "backslashreplace") + b"\n"


def _write_all(fd: int, data: bytes | bytearray) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _cut_torn_line(path: Path) -> int:
    """Drop a last line without its newline (a write cut short); returns bytes cut."""
    with open(path, "r+b") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return 0
        end = size
        keep = 0
        while end > 0:
            start = max(0, end - _CHUNK)
            handle.seek(start)
            chunk = handle.read(end - start)
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                keep = start + newline + 1
                break
            end = start
        handle.truncate(keep)
        handle.flush()
        os.fsync(handle.fileno())
    log.warning("filesystem logger: cut a torn line of %d bytes from the end of %s", size - keep, path)
    return size - keep


def _tail(path: Path, count: int) -> tuple[bytes, bool]:
    """The last ``count`` bytes of the rotated ``.1`` file followed by ``path``.

    A crash in the middle of a batch that rotated leaves the start of the batch
    in ``.1``.  The flag says whether the bytes start at the beginning of a
    file, which is always a line boundary.
    """
    data = b""
    at_start = True
    for source in (path, path.with_name(path.name + ".1")):
        if len(data) >= count or not source.exists():
            break
        with open(source, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            want = min(size, count - len(data))
            handle.seek(size - want)
            data = handle.read(want) + data
        # Every file starts on a line boundary: rotation happens between lines.
        at_start = want == size
        if not at_start:
            break
    return data, at_start


def _written_prefix(path: Path, lines: list[str]) -> int:
    """How many of ``lines`` (from the first) are the last lines written to ``path``."""
    encoded = [_encode(line) for line in lines]
    total = sum(len(e) for e in encoded)
    tail, at_start = _tail(path, total + 1)
    if not tail:
        return 0
    last_start = tail.rfind(b"\n", 0, len(tail) - 1) + 1
    if last_start == 0 and not at_start:
        return 0
    last = tail[last_start:]
    joined = b"".join(encoded)
    offsets = [0]
    for piece in encoded:
        offsets.append(offsets[-1] + len(piece))
    for count in range(len(encoded), 0, -1):
        if encoded[count - 1] != last:
            continue
        expected = joined[: offsets[count]]
        if not tail.endswith(expected):
            continue
        before = len(tail) - len(expected)
        if (before == 0 and at_start) or (before > 0 and tail[before - 1 : before] == b"\n"):
            return count
    return 0


def create(flags: FlagValues | None, context: dict[str, Any] | None = None) -> FilesystemLogger:
    """Build the logger from --logger_path, --logger_mode and --logger_rotate*."""
    return FilesystemLogger(
        flag_str(flags, "logger_path", DEFAULT_PATH),
        mode=parse_mode(flag_str(flags, "logger_mode", "0640")),
        rotate=flag_bool(flags, "logger_rotate", False),
        rotate_size=flag_int(flags, "logger_rotate_size", DEFAULT_ROTATE_SIZE),
        rotate_max_files=flag_int(flags, "logger_rotate_max_files", DEFAULT_ROTATE_MAX_FILES),
    )
