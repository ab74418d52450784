"""The ``filesystem`` log destination: JSON lines files with size-based rotation.

Settings (``getattr(settings, name, default)``), named after Fleet's:

``filesystem_result_log_file`` / ``filesystem_status_log_file``
    the files (``/tmp/osquery_result`` and ``/tmp/osquery_status``).
``filesystem_enable_log_rotation``
    rotate when a write would take the file past ``filesystem_max_size`` MB
    (default true here, 500 MB); ``filesystem_max_backups`` (3) rotated files
    ``<file>.1`` (newest) .. ``<file>.N`` are kept.
"""

from __future__ import annotations

import os
import threading
import weakref
from io import FileIO
from pathlib import Path
from typing import Any

from hostql.server import fastjson

DEFAULT_FILES = {"result": "/tmp/osquery_result", "status": "/tmp/osquery_status"}


class FilesystemDestination:
    """Appends lines to ``path``; rotates at ``max_bytes`` (0 = never).

    The file stays open between writes (unbuffered: each write is one ``write(2)`` with
    ``O_APPEND``, so lines reach the file at once and whole); before each write one
    ``stat`` of the path tells its size and whether something else (logrotate, an
    operator) moved or removed it, in which case the file is opened again at the path."""

    inline = True  # a small append to a local file: fine on the server's event loop

    def __init__(self, path: str | os.PathLike[str], *, max_bytes: int = 500 * 1024 * 1024,
                 max_backups: int = 3) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.max_backups = max_backups
        self._name = os.fspath(self.path)
        self._lock = threading.Lock()
        self._handle: FileIO | None = None
        self._identity = (0, 0)  # (device, inode) of the open file
        self._closer: weakref.finalize | None = None

    def write(self, kind: str, lines: list[dict[str, Any]]) -> None:
        self.write_encoded(kind, [fastjson.dumps(line) for line in lines])

    def write_encoded(self, kind: str, lines: list[bytes]) -> None:
        """Append ``lines`` (each one JSON document without its newline)."""
        if not lines:
            return
        encoded = b"\n".join(lines) + b"\n"
        with self._lock:
            handle = self._file_for(len(encoded))
            view = memoryview(encoded)
            while view:  # a raw write may take less than it was given (a signal, a nearly full disk)
                written = handle.write(view)
                if not written:
                    raise OSError(f"cannot write to {self._name}")
                view = view[written:]

    def close(self) -> None:
        with self._lock:
            self._close()

    def _file_for(self, incoming: int) -> FileIO:
        """The open file at ``path``: opened again when the path is another file now (or none),
        rotated first when ``incoming`` more bytes would take it past ``max_bytes``."""
        try:
            found: os.stat_result | None = os.stat(self._name)
        except FileNotFoundError:
            found = None
        if found is None or (found.st_dev, found.st_ino) != self._identity:
            self._close()
        size = found.st_size if found is not None else 0
        if self.max_bytes > 0 and size > 0 and size + incoming > self.max_bytes:
            self._close()
            self._rotate()
        if self._handle is None:
            self._open()
        assert self._handle is not None
        return self._handle

    def _open(self) -> None:
        try:
            handle = open(self._name, "ab", buffering=0)  # noqa: SIM115 - kept open until close()
        except FileNotFoundError:  # no directory (yet, or it went away since): make it
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(self._name, "ab", buffering=0)  # noqa: SIM115
        opened = os.fstat(handle.fileno())
        self._handle, self._identity = handle, (opened.st_dev, opened.st_ino)
        # A destination dropped without close() (a router no lifespan closed) closes its file.
        self._closer = weakref.finalize(self, handle.close)

    def _close(self) -> None:
        if self._closer is not None:
            self._closer()  # closes the file once
        self._handle, self._closer, self._identity = None, None, (0, 0)

    def _rotate(self) -> None:
        if self.max_backups <= 0:
            self.path.unlink(missing_ok=True)
            return
        oldest = self.path.with_name(f"{self.path.name}.{self.max_backups}")
        oldest.unlink(missing_ok=True)
        for index in range(self.max_backups - 1, 0, -1):
            source = self.path.with_name(f"{self.path.name}.{index}")
            if source.exists():
                source.rename(self.path.with_name(f"{self.path.name}.{index + 1}"))
        self.path.rename(self.path.with_name(f"{self.path.name}.1"))


def from_settings(settings: Any, kind: str) -> FilesystemDestination:
    path = getattr(settings, f"filesystem_{kind}_log_file", None) or DEFAULT_FILES.get(kind, f"/tmp/osquery_{kind}")
    rotate = bool(getattr(settings, "filesystem_enable_log_rotation", True))
    max_mb = int(getattr(settings, "filesystem_max_size", 500))
    backups = int(getattr(settings, "filesystem_max_backups", 3))
    return FilesystemDestination(path, max_bytes=max_mb * 1024 * 1024 if rotate else 0, max_backups=backups)
