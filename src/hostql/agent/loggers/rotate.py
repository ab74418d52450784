"""Size-based rotation of the filesystem logger's result and snapshot files.

As osqueryd does it: ``osqueryd.results.log`` becomes ``.1``; the previous ``.1``
is compressed into ``.2.zst`` and older files move up by one; files past
``max_files`` are deleted.  Compression is zstd when the ``zstandard`` module is
importable, else gzip (suffix ``.gz``); existing files keep their own suffix.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
from pathlib import Path
from typing import Any

ZSTD = "zstd"
GZIP = "gzip"
SUFFIXES = {ZSTD: ".zst", GZIP: ".gz"}


def _zstandard() -> Any:
    try:
        return importlib.import_module("zstandard")
    except ImportError:
        return None


def default_compression() -> str:
    """zstd (osquery's choice) when available, else gzip.

    Only looked up, not imported: the compressors are loaded at the first
    rotation, so an agent that never rotates does not carry them in memory.
    """
    return ZSTD if importlib.util.find_spec("zstandard") is not None else GZIP


def compress_file(source: Path, dest: Path, method: str, mode: int) -> None:
    """Write ``source`` compressed to ``dest`` (atomically), with file ``mode``."""
    temp = dest.with_name(dest.name + ".tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    os.fchmod(fd, mode)
    with open(fd, "wb") as raw, open(source, "rb") as src:
        if method == ZSTD:
            module = _zstandard()
            if module is None:
                raise OSError(f"cannot compress {source}: the zstandard module is missing")
            module.ZstdCompressor().copy_stream(src, raw)
        else:
            import gzip

            with gzip.GzipFile(filename=source.name, mode="wb", fileobj=raw, mtime=0) as out:
                shutil.copyfileobj(src, out)
        raw.flush()
        os.fsync(raw.fileno())
    os.replace(temp, dest)


def rotated_file(base: Path, offset: int) -> Path | None:
    """The existing rotated file at ``offset`` (1 = newest), whatever its suffix."""
    if offset == 1:
        candidates = [base.with_name(f"{base.name}.1")]
    else:
        candidates = [base.with_name(f"{base.name}.{offset}{suffix}") for suffix in SUFFIXES.values()]
    for path in candidates:
        if path.exists():
            return path
    return None


def rotated_files(base: Path) -> list[Path]:
    """Rotated files of ``base`` in order, up to the first gap."""
    found = []
    offset = 1
    while (path := rotated_file(base, offset)) is not None:
        found.append(path)
        offset += 1
    return found


def _shifted(path: Path, base: Path, offset: int) -> Path:
    suffix = path.name[len(base.name) :].split(".", 2)[2:]  # what follows ".<n>"
    tail = "." + suffix[0] if suffix else ""
    return base.with_name(f"{base.name}.{offset}{tail}")


def rotate(base: Path, max_files: int, method: str, mode: int) -> None:
    """Rotate ``base``; keep at most ``max_files`` rotated files (at least 1)."""
    if not base.exists():
        return
    keep = max(1, max_files)
    existing = rotated_files(base)
    for offset in range(len(existing), 0, -1):
        source = existing[offset - 1]
        if offset >= keep:
            # It would move past the last kept slot: drop it instead.
            source.unlink()
        elif offset == 1:
            compress_file(source, base.with_name(f"{base.name}.2{SUFFIXES[method]}"), method, mode)
            source.unlink()
        else:
            os.replace(source, _shifted(source, base, offset + 1))
    # Leftovers beyond the limit (for example after --logger_rotate_max_files shrank).
    offset = keep + 1
    while (stale := rotated_file(base, offset)) is not None:
        stale.unlink()
        offset += 1
    os.replace(base, base.with_name(f"{base.name}.1"))
