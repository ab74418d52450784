"""The ``hash`` table: md5/sha1/sha256 of files, with osquery's in-memory cache.

Behaviour follows osquery's ``hash`` table:

* only regular files are hashed (symlinks are followed); a path that is a
  directory, a device or missing gives no row;
* a file larger than ``--read_max`` (50 MiB by default) gives a row whose
  digests are empty strings, as osquery's failed read does;
* digests are cached per path and reused while the file's device, inode, size,
  mtime and ctime are unchanged; the cache holds ``--hash_cache_max`` entries,
  least recently used first out, and ``--disable_hash_cache`` turns it off.

Unlike osquery we compute only the digests the query reads, and we do not
sleep ``--hash_delay`` between files.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from hostql.tables.common.files import list_directory, parent_path, resolve_directories, resolve_paths

if TYPE_CHECKING:
    from hostql.sql.context import QueryContext

log = logging.getLogger(__name__)

DIGESTS = ("md5", "sha1", "sha256")
CHUNK_SIZE = 1 << 20
DEFAULT_CACHE_MAX = 500
DEFAULT_READ_MAX = 52428800

# What identifies one version of a file's content.
StatKey = tuple[int, int, int, int, int]


def stat_key(st: os.stat_result) -> StatKey:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class HashCache:
    """Digests per path, valid while the file's :func:`stat_key` is unchanged."""

    def __init__(self) -> None:
        self._entries: OrderedDict[str, tuple[StatKey, dict[str, str]]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, path: str, key: StatKey) -> dict[str, str]:
        """Digests known for this version of the file (possibly not all of them)."""
        with self._lock:
            entry = self._entries.get(path)
            if entry is None:
                return {}
            if entry[0] != key:
                del self._entries[path]
                return {}
            self._entries.move_to_end(path)
            return dict(entry[1])

    def put(self, path: str, key: StatKey, digests: dict[str, str], max_entries: int) -> None:
        if max_entries <= 0:
            return
        with self._lock:
            entry = self._entries.get(path)
            merged = dict(entry[1]) if entry is not None and entry[0] == key else {}
            merged.update(digests)
            self._entries[path] = (key, merged)
            self._entries.move_to_end(path)
            while len(self._entries) > max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


# Process-wide, as osquery's cache is: repeated queries in one shell or daemon reuse it.
CACHE = HashCache()


def hash_open_file(fd: int, names: Sequence[str]) -> dict[str, str]:
    """Digests of an open file's content from its current offset to the end."""
    hashers = [hashlib.new(name) for name in names]
    buf = bytearray(CHUNK_SIZE)
    view = memoryview(buf)
    with open(fd, "rb", buffering=0, closefd=False) as stream:
        while True:
            n = stream.readinto(buf)
            if not n:
                break
            chunk = view[:n] if n < CHUNK_SIZE else view
            for hasher in hashers:
                hasher.update(chunk)
    return {name: hasher.hexdigest() for name, hasher in zip(names, hashers)}


def hash_file(path: str, names: Sequence[str], read_max: int = DEFAULT_READ_MAX
              ) -> tuple[StatKey, dict[str, str]] | None:
    """Digests of a regular file, or None if it is not one or cannot be read.

    The file is opened non-blocking so that a path swapped for a FIFO after
    the caller's stat cannot hang the query; fstat decides what we read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        log.debug("hash: cannot open %s: %s", path, exc)
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        key = stat_key(st)
        if read_max > 0 and st.st_size > read_max:
            log.debug("hash: %s is larger than read_max (%d > %d)", path, st.st_size, read_max)
            return key, dict.fromkeys(names, "")
        if not names:
            return key, {}
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        except (AttributeError, OSError):
            pass
        return key, hash_open_file(fd, names)
    except OSError as exc:
        log.debug("hash: cannot read %s: %s", path, exc)
        return None
    finally:
        os.close(fd)


class _Settings:
    __slots__ = ("cache_max", "read_max", "use_cache")

    def __init__(self, ctx: QueryContext) -> None:
        self.cache_max = DEFAULT_CACHE_MAX
        self.read_max = DEFAULT_READ_MAX
        self.use_cache = True
        runtime = ctx.runtime
        if runtime is not None:
            self.cache_max = int(runtime.flags.get("hash_cache_max"))
            self.read_max = int(runtime.flags.get("read_max"))
            self.use_cache = not bool(runtime.flags.get("disable_hash_cache"))


def digests_for(path: str, names: Sequence[str], settings: _Settings) -> dict[str, str] | None:
    """Digests of ``path`` (a regular file, links followed), from cache or disk."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    cached = CACHE.get(path, stat_key(st)) if settings.use_cache else {}
    missing = [n for n in names if n not in cached]
    if not missing:
        return cached
    result = hash_file(path, missing, settings.read_max)
    if result is None:
        return None
    key, fresh = result
    if settings.use_cache:
        CACHE.put(path, key, fresh, settings.cache_max)
    if key != stat_key(st):
        # The file changed between stat and read: the fresh digests are the truth.
        cached = {}
    cached.update(fresh)
    return cached


def gen_hash(ctx: QueryContext) -> Iterator[tuple[object, ...]]:
    """A row per regular file named or matched by the path/directory constraints."""
    from hostql.sql.context import Op

    names = [n for n in DIGESTS if ctx.is_used(n)]
    settings = _Settings(ctx)

    def row(path: str, directory: str) -> tuple[object, ...] | None:
        digests = digests_for(path, names, settings)
        if digests is None:
            return None
        return (path, directory, digests.get("md5"), digests.get("sha1"), digests.get("sha256"), None, None)

    for path in resolve_paths(ctx.equals("path"), ctx.values("path", Op.LIKE)):
        result = row(path, parent_path(path))
        if result is not None:
            yield result
    for directory in resolve_directories(ctx.equals("directory"), ctx.values("directory", Op.LIKE)):
        for path in list_directory(directory):
            result = row(path, directory)
            if result is not None:
                yield result
