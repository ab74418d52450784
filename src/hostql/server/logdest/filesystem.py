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
from pathlib import Path
from typing import Any

from hostql.server import fastjson

DEFAULT_FILES = {"result": "/tmp/osquery_result", "status": "/tmp/osquery_status"}


class FilesystemDestination:
    """Appends lines to ``path``; rotates at ``max_bytes`` (0 = never)."""

    def __init__(self, path: str | os.PathLike[str], *, max_bytes: int = 500 * 1024 * 1024,
                 max_backups: int = 3) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.max_backups = max_backups
        self._lock = threading.Lock()
        self._dir_made = False

    def write(self, kind: str, lines: list[dict[str, Any]]) -> None:
        self.write_encoded(kind, [fastjson.dumps(line) for line in lines])

    def write_encoded(self, kind: str, lines: list[bytes]) -> None:
        """Append ``lines`` (each one JSON document without its newline)."""
        if not lines:
            return
        encoded = b"\n".join(lines) + b"\n"
        with self._lock:
            if not self._dir_made:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._dir_made = True
            if self.max_bytes > 0:
                try:
                    size = self.path.stat().st_size
                except FileNotFoundError:
                    size = 0
                if size > 0 and size + len(encoded) > self.max_bytes:
                    self._rotate()
            try:
                self._append(encoded)
            except FileNotFoundError:  # the directory went away since: make it again
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._append(encoded)

    def _append(self, data: bytes) -> None:
        with open(self.path, "ab") as handle:
            handle.write(data)

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
