"""Local account databases (/etc/passwd, /etc/group) read under a root path.

Shared by every table that needs accounts: ``users``, ``groups``, ``user_groups``
and the per-user (``user_data``) tables, which choose whose home directories to
read the way osquery does (see :func:`users_for_context`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

from hostql.sql.context import QueryContext

log = logging.getLogger(__name__)


class PasswdEntry(NamedTuple):
    name: str
    uid: int
    gid: int
    gecos: str
    home: str
    shell: str


class GroupEntry(NamedTuple):
    name: str
    gid: int
    members: tuple[str, ...]


def in_root(root: str, path: str) -> str:
    """``path`` as seen from ``root`` (a chroot-like view; "/" is the host itself)."""
    if root in ("", "/"):
        return path
    return os.path.join(root, path.lstrip("/"))


def signed32(value: int) -> int:
    """An id read as C's int32_t, as osquery's *_signed columns do."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def _read_lines(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().splitlines()
    except OSError as exc:
        log.debug("cannot read %s: %s", path, exc)
        return []


def _skip(line: str) -> bool:
    # Comments, blank lines and NIS compat entries (+name, -name) are not accounts.
    return not line or line[0] in "#+-"


def parse_passwd(lines: Iterable[str]) -> Iterator[PasswdEntry]:
    """Entries of a passwd file; malformed lines are skipped as glibc does."""
    for line in lines:
        if _skip(line):
            continue
        parts = line.split(":")
        if len(parts) < 7:
            continue
        try:
            uid, gid = int(parts[2]), int(parts[3])
        except ValueError:
            continue
        yield PasswdEntry(parts[0], uid, gid, parts[4], parts[5], ":".join(parts[6:]))


def parse_group(lines: Iterable[str]) -> Iterator[GroupEntry]:
    """Entries of a group file; the member list is comma separated."""
    for line in lines:
        if _skip(line):
            continue
        parts = line.split(":")
        if len(parts) < 4:
            continue
        try:
            gid = int(parts[2])
        except ValueError:
            continue
        members = tuple(m.strip() for m in parts[3].split(",") if m.strip())
        yield GroupEntry(parts[0], gid, members)


# Parsed files keyed by path, valid while (inode, size, mtime) are unchanged: a JOIN
# calls the per-user tables once per account and each call would re-read them.
_CACHE: dict[str, tuple[tuple[int, int, int], list[Any]]] = {}
_CACHE_MAX = 32


def _cached(path: str, parse: Callable[[Iterable[str]], Iterator[Any]]) -> list[Any]:
    try:
        st = os.stat(path)
    except OSError as exc:
        log.debug("cannot read %s: %s", path, exc)
        return []
    key = (st.st_ino, st.st_size, st.st_mtime_ns)
    hit = _CACHE.get(path)
    if hit is not None and hit[0] == key:
        return hit[1]
    entries = list(parse(_read_lines(path)))
    if len(_CACHE) >= _CACHE_MAX:
        _CACHE.clear()
    _CACHE[path] = (key, entries)
    return entries


def read_passwd(root: str = "/") -> list[PasswdEntry]:
    return _cached(in_root(root, "/etc/passwd"), parse_passwd)


def read_group(root: str = "/") -> list[GroupEntry]:
    return _cached(in_root(root, "/etc/group"), parse_group)


def int_constraints(ctx: QueryContext, column: str) -> set[int] | None:
    """Integer values of ``=``/``IN`` constraints on ``column``; None when unconstrained.

    SQLite may hand over text ('0') for a numeric column; values that are not
    integers cannot match any row and are dropped.
    """
    values = ctx.equals(column)
    if not values:
        return None
    out: set[int] = set()
    for value in values:
        try:
            out.add(int(str(value), 10))
        except ValueError:
            continue
    return out


def namespace_roots(ctx: QueryContext, root: str = "/") -> list[tuple[str, int]]:
    """(root to read, pid_with_namespace value) pairs for this query.

    Without the constraint the table reads ``root`` and reports 0, as osquery
    does.  With it, each pid's view of the filesystem is ``/proc/<pid>/root``.
    """
    pids = int_constraints(ctx, "pid_with_namespace")
    if pids is None:
        return [(root, 0)]
    roots = []
    for pid in sorted(pids):
        if pid == 0:
            roots.append((root, 0))
            continue
        proc_root = in_root(root, f"/proc/{pid}/root")
        if pid < 0 or not os.path.isdir(proc_root):
            log.debug("pid_with_namespace %d: %s is not readable", pid, proc_root)
            continue
        roots.append((proc_root, pid))
    return roots


def _nss_user(uid: int) -> PasswdEntry | None:
    # Accounts from LDAP/SSSD etc. are only visible through NSS, i.e. the host's libc.
    import pwd

    try:
        p = pwd.getpwuid(uid)
    except (KeyError, OverflowError):
        return None
    return PasswdEntry(p.pw_name, p.pw_uid, p.pw_gid, p.pw_gecos, p.pw_dir, p.pw_shell)


def users_for_context(ctx: QueryContext, root: str = "/") -> list[PasswdEntry]:
    """Whose data a ``user_data`` table reads, following osquery.

    With ``uid = ...`` (or a JOIN on users) those accounts; a uid missing from
    the local file is looked up through NSS on the live host.  Without it, only
    the account running the query, and osquery warns that this is a default.
    """
    uids = int_constraints(ctx, "uid")
    if uids is None:
        log.warning(
            "the %s table returns data of the current user only unless uid is constrained;"
            " JOIN it with the users table to read every account",
            ctx.table.name,
        )
        uids = {os.getuid()}
    chosen: dict[int, PasswdEntry] = {}
    for entry in read_passwd(root):
        if entry.uid in uids and entry.uid not in chosen:
            chosen[entry.uid] = entry
    if root in ("", "/"):
        for uid in uids - chosen.keys():
            remote = _nss_user(uid)
            if remote is not None:
                chosen[uid] = remote
    return list(chosen.values())
