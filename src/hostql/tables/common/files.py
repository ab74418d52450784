"""Turn ``path``/``directory`` constraints into filesystem paths, and stat them.

osquery resolves ``LIKE`` patterns on ``path`` and ``directory`` as filesystem
globs rather than scanning the disk: ``%`` matches within one path level, and a
final ``%%`` (optionally followed by ``/``) recurses into everything below.  We
do the same, with three deliberate differences, all of which only *add*
candidates (SQLite re-checks the LIKE on every row we produce):

* ``_`` is a single-character wildcard, as it is for SQLite; osquery's glob
  treats it as a literal underscore and misses such matches.
* Names match ASCII case-insensitively, as SQLite's LIKE does; osquery's glob is
  case-sensitive, so ``LIKE '/ETC/%'`` finds nothing there.
* Hidden (dot) entries match ``%``; glob(3) skips them, which osquery users
  report as a bug (osquery issue #7306).

Recursion does not descend through symlinked directories (osquery follows them
up to 64 levels and can loop); it stops at 64 levels like osquery.

As in osquery, directories found through a pattern are reported with a trailing
``/`` (glob's GLOB_MARK), unless the slash would make the row fail the pattern.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Iterable, Iterator
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hostql.sql.context import QueryContext

log = logging.getLogger(__name__)

# osquery's kMaxRecursiveGlobs: how deep a trailing %% may descend.
MAX_RECURSION_DEPTH = 64

_TYPE_NAMES = {
    stat.S_IFREG: "regular",
    stat.S_IFDIR: "directory",
    stat.S_IFLNK: "symlink",
    stat.S_IFCHR: "character",
    stat.S_IFBLK: "block",
    stat.S_IFIFO: "fifo",
    stat.S_IFSOCK: "socket",
}


# --- LIKE patterns ---------------------------------------------------------

def _like_regex(pattern: str, *, component: bool) -> re.Pattern[str]:
    """SQLite LIKE as a regex; within a component ``%``/``_`` never cross ``/``."""
    many, one = ("[^/]*", "[^/]") if component else (".*", ".")
    parts = []
    for ch in pattern:
        if ch == "%":
            parts.append(many)
        elif ch == "_":
            parts.append(one)
        else:
            parts.append(re.escape(ch))
    # re.ASCII limits IGNORECASE to ASCII letters, which is what SQLite's LIKE folds.
    return re.compile("".join(parts), re.IGNORECASE | re.ASCII | re.DOTALL)


@lru_cache(maxsize=256)
def like_matcher(pattern: str) -> re.Pattern[str]:
    """A compiled full-string matcher with SQLite's LIKE semantics (no ESCAPE)."""
    return _like_regex(pattern, component=False)


def _is_literal(part: str) -> bool:
    return "%" not in part and "_" not in part


def _needs_listing(part: str) -> bool:
    # A literal part without ASCII letters can only match itself: no need to
    # list the parent to find case variants.
    return not _is_literal(part) or any(c.isascii() and c.isalpha() for c in part)


def _join(base: str, name: str) -> str:
    if not base:
        return name
    return base + name if base.endswith("/") else base + "/" + name


def _children(base: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(base or ".") as entries:
            return list(entries)
    except OSError:
        return []


def _match_part(bases: Iterable[str], part: str, *, dirs_only: bool) -> list[str]:
    """Entries of each base whose name matches one pattern component."""
    out: list[str] = []
    if part in (".", ".."):
        for base in bases:
            candidate = _join(base, part)
            if os.path.isdir(candidate) or (not dirs_only and os.path.lexists(candidate)):
                out.append(candidate)
        return out
    if not _needs_listing(part):
        for base in bases:
            candidate = _join(base, part)
            if os.path.isdir(candidate) if dirs_only else os.path.lexists(candidate):
                out.append(candidate)
        return out
    matcher = _like_regex(part, component=True)
    for base in bases:
        entries = _children(base)
        if not entries and _is_literal(part):
            # A directory we may traverse but not list: try the exact name.
            candidate = _join(base, part)
            if os.path.isdir(candidate) if dirs_only else os.path.lexists(candidate):
                out.append(candidate)
            continue
        for entry in entries:
            if not matcher.fullmatch(entry.name):
                continue
            if dirs_only:
                try:
                    if not entry.is_dir():
                        continue
                except OSError:
                    continue
            out.append(_join(base, entry.name))
    return out


def _descendants(top: str) -> Iterator[str]:
    """Everything below ``top``, depth first, not following symlinked directories."""
    stack: list[tuple[str, int]] = [(top, 1)]
    while stack:
        base, depth = stack.pop()
        for entry in _children(base):
            path = _join(base, entry.name)
            yield path
            if depth < MAX_RECURSION_DEPTH:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append((path, depth + 1))
                except OSError:
                    continue


def _mark_directory(path: str, pattern: re.Pattern[str]) -> str:
    """Add glob's trailing slash to a directory, unless the pattern then fails."""
    if path.endswith("/") or not os.path.isdir(path):
        return path
    marked = path + "/"
    return marked if pattern.fullmatch(marked) else path


def expand_like(pattern: str, *, directories_only: bool = False) -> list[str]:
    """Paths matching a LIKE pattern, resolved level by level as osquery does.

    ``directories_only`` keeps directories (for ``directory LIKE``).  The result
    is sorted and free of duplicates, like osquery's ``std::set``.
    """
    if not pattern:
        return []
    absolute = pattern.startswith("/")
    trailing_slash = pattern.endswith("/") and pattern.strip("/") != ""
    parts = [p for p in pattern.split("/") if p]
    if not parts:
        return ["/"] if absolute and os.path.isdir("/") else []
    recursive = parts[-1].endswith("%%")
    bases = ["/" if absolute else ""]
    for part in parts[:-1]:
        bases = _match_part(bases, part, dirs_only=True)
        if not bases:
            return []
    last = parts[-1]
    # With a trailing slash or for directory constraints only directories match
    # the final level; recursion needs directories to descend into anyway.
    found = _match_part(bases, last, dirs_only=trailing_slash or directories_only)
    if recursive:
        below: list[str] = []
        for match in found:
            try:
                if os.path.isdir(match) and not os.path.islink(match):
                    below.extend(_descendants(match))
            except OSError:
                continue
        found.extend(below)
    whole = like_matcher(pattern)
    results: set[str] = set()
    for path in found:
        if directories_only and not os.path.isdir(path):
            continue
        results.add(_mark_directory(path, whole))
    return sorted(results)


def _constraint_strings(values: Iterable[object]) -> list[str]:
    out = []
    for value in values:
        if value is None:
            continue
        out.append(value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else str(value))
    return out


def resolve_paths(equals: Iterable[object], likes: Iterable[object]) -> list[str]:
    """``path = ...``/``IN`` values plus every path a ``path LIKE`` pattern reaches."""
    paths = set(_constraint_strings(equals))
    for pattern in _constraint_strings(likes):
        paths.update(expand_like(pattern))
    return sorted(paths)


def resolve_directories(equals: Iterable[object], likes: Iterable[object]) -> list[str]:
    """``directory = ...`` values plus every directory a ``directory LIKE`` reaches."""
    dirs = set(_constraint_strings(equals))
    for pattern in _constraint_strings(likes):
        dirs.update(expand_like(pattern, directories_only=True))
    return sorted(dirs)


def list_directory(directory: str) -> Iterator[str]:
    """Paths of a directory's entries (one level), built on the given spelling."""
    if not os.path.isdir(directory):
        return
    for entry in _children(directory):
        yield _join(directory, entry.name)


# --- path names as osquery (boost::filesystem v3) spells them ---------------

def parent_path(path: str) -> str:
    """boost's parent_path: ``/a/b`` -> ``/a``, ``/a/b/`` -> ``/a/b``, ``/`` -> ``''``."""
    if path.endswith("/"):
        stripped = path.rstrip("/")
        return stripped if stripped else ""
    return os.path.dirname(path)


def file_name(path: str) -> str:
    """boost's filename: the last name, ``.`` after a trailing slash, ``/`` for root."""
    if path.endswith("/"):
        return "/" if path.strip("/") == "" else "."
    return os.path.basename(path)


# --- stat ------------------------------------------------------------------

def type_name(mode: int) -> str:
    return _TYPE_NAMES.get(stat.S_IFMT(mode), "unknown")


def mode_text(mode: int) -> str:
    """Permission bits with setuid/setgid/sticky as four octal digits, e.g. ``0644``."""
    return f"{stat.S_IMODE(mode):04o}"


_STATX_BTIME = 0x800
_AT_FDCWD = -100
_AT_SYMLINK_NOFOLLOW = 0x100
_statx_func: object | None = None
_statx_missing = False


def birth_time(path: str, *, follow: bool = True) -> int:
    """Creation time from statx(2) when the kernel and filesystem report it, else 0."""
    global _statx_func, _statx_missing
    if _statx_missing:
        return 0
    import ctypes

    if _statx_func is None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            func = libc.statx
        except (OSError, AttributeError):
            log.debug("statx is not available; btime is reported as 0")
            _statx_missing = True
            return 0
        func.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint, ctypes.c_void_p]
        func.restype = ctypes.c_int
        _statx_func = func
    # struct statx is 256 bytes: stx_mask at 0, stx_btime.tv_sec at 80.
    buf = ctypes.create_string_buffer(256)
    flags = 0 if follow else _AT_SYMLINK_NOFOLLOW
    rc = _statx_func(_AT_FDCWD, os.fsencode(path), flags, _STATX_BTIME, buf)  # type: ignore[operator]
    if rc != 0:
        return 0
    mask = int.from_bytes(buf.raw[0:4], "little")
    if not mask & _STATX_BTIME:
        return 0
    return int.from_bytes(buf.raw[80:88], "little", signed=True)


class FileStat:
    """lstat + stat of one path, as the ``file`` table reports it.

    osquery takes ``symlink`` from lstat and every other field from stat
    (following the link); when the target is missing or loops, the link's own
    lstat is used, so a dangling link reports ``type`` = ``symlink``.
    """

    __slots__ = ("followed", "is_symlink", "st")

    def __init__(self, st: os.stat_result, is_symlink: bool, followed: bool) -> None:
        self.st = st
        self.is_symlink = is_symlink
        self.followed = followed

    @classmethod
    def of(cls, path: str) -> FileStat | None:
        try:
            lst = os.lstat(path)
        except (OSError, ValueError):
            return None
        if not stat.S_ISLNK(lst.st_mode):
            return cls(lst, False, True)
        try:
            return cls(os.stat(path), True, True)
        except (OSError, ValueError):
            return cls(lst, True, False)


def link_target(path: str) -> str | None:
    """The target stored in a symlink, as written (osquery uses read_symlink)."""
    try:
        return os.readlink(path)
    except OSError:
        return None


# --- the file table --------------------------------------------------------

# Columns of other platforms (attributes ... bsd_flags) that stay NULL here.
_OTHER_PLATFORM_NULLS = (None,) * 13


def _file_row(path: str, directory: str, want_btime: bool, want_target: bool) -> tuple[object, ...] | None:
    info = FileStat.of(path)
    if info is None:
        return None
    st = info.st
    btime = birth_time(path, follow=info.followed) if want_btime else 0
    target = link_target(path) if info.is_symlink and want_target else None
    return (
        path,
        directory,
        file_name(path),
        st.st_ino,
        st.st_uid,
        st.st_gid,
        mode_text(st.st_mode),
        # osquery reports st_rdev here: the device a device node stands for,
        # 0 for ordinary files.
        st.st_rdev,
        st.st_size,
        st.st_blksize,
        int(st.st_atime),
        int(st.st_mtime),
        int(st.st_ctime),
        btime,
        st.st_nlink,
        1 if info.is_symlink else 0,
        type_name(st.st_mode),
        target,
        *_OTHER_PLATFORM_NULLS,
        0,  # pid_with_namespace: we always read the agent's own mount namespace
        None,
    )


def gen_file(ctx: QueryContext) -> Iterator[tuple[object, ...]]:
    """Rows for every path named or matched by the ``path``/``directory`` constraints."""
    from hostql.sql.context import Op

    want_btime = ctx.is_used("btime")
    want_target = ctx.is_used("symlink_target_path")
    if ctx.has("pid_with_namespace"):
        log.debug("file: pid_with_namespace is not supported; rows come from the host's namespace")
    paths = resolve_paths(ctx.equals("path"), ctx.values("path", Op.LIKE))
    for path in paths:
        row = _file_row(path, parent_path(path), want_btime, want_target)
        if row is not None:
            yield row
    directories = resolve_directories(ctx.equals("directory"), ctx.values("directory", Op.LIKE))
    for directory in directories:
        for path in list_directory(directory):
            row = _file_row(path, directory, want_btime, want_target)
            if row is not None:
                yield row
