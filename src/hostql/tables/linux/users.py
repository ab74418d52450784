"""Linux generators: users, groups, user_groups, shadow, sudoers, logins, shell history.

Accounts come from the local files (/etc/passwd, /etc/group, /etc/shadow) as
osquery reads them; NSS sources (LDAP, SSSD) only with ``include_remote = 1``.
Every generator takes a ``root`` so tests can point it at a fake tree.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

from hostql.sql.context import QueryContext
from hostql.tables.common.users_accounts import (
    PasswdEntry,
    in_root,
    int_constraints,
    namespace_roots,
    read_group,
    read_passwd,
    signed32,
    users_for_context,
)
from hostql.tables.common.users_history import history_files, read_history_file
from hostql.tables.common.users_sudoers import parse_sudoers
from hostql.tables.linux import utmp

log = logging.getLogger(__name__)

Row = tuple[Any, ...]

UTMP_PATH = "/var/run/utmp"
WTMP_PATH = "/var/log/wtmp"
SHADOW_PATH = "/etc/shadow"
_HASH_ID = re.compile(r"\$(\w+)\$", re.ASCII)


# --- users ----------------------------------------------------------------------

def _remote_users(uids: set[int] | None, names: set[str] | None) -> list[PasswdEntry]:
    # NSS is the only way to see directory-service accounts; it answers for the host only.
    import pwd

    found: list[Any] = []
    if uids is not None:
        for uid in uids:
            try:
                found.append(pwd.getpwuid(uid))
            except (KeyError, OverflowError):
                pass
    elif names is not None:
        for name in names:
            try:
                found.append(pwd.getpwnam(name))
            except KeyError:
                pass
    else:
        found = pwd.getpwall()
    return [PasswdEntry(p.pw_name, p.pw_uid, p.pw_gid, p.pw_gecos, p.pw_dir, p.pw_shell) for p in found]


def gen_users(ctx: QueryContext, root: str = "/") -> Iterator[Row]:
    uids = int_constraints(ctx, "uid")
    names = {str(v) for v in ctx.equals("username")} or None
    remote = 1 in (int_constraints(ctx, "include_remote") or set())
    for view, ns_pid in namespace_roots(ctx, root):
        local = read_passwd(view)
        seen: set[tuple[str, int]] = set()
        selected: list[tuple[PasswdEntry, str | None]] = []
        for entry in local:
            if uids is not None and entry.uid not in uids:
                continue
            if names is not None and entry.name not in names:
                continue
            seen.add((entry.name, entry.uid))
            selected.append((entry, "local"))
        if remote and view in ("", "/"):
            for entry in _remote_users(uids, names):
                if (entry.name, entry.uid) not in seen:
                    seen.add((entry.name, entry.uid))
                    selected.append((entry, None))
        flag = 1 if remote else 0
        for e, kind in selected:
            yield (
                e.uid, e.gid, signed32(e.uid), signed32(e.gid), e.name, e.gecos, e.home, e.shell,
                "", kind, None, ns_pid, flag,
            )


# --- groups -------------------------------------------------------------------------

def gen_groups(ctx: QueryContext, root: str = "/") -> Iterator[Row]:
    gids = int_constraints(ctx, "gid")
    for view, ns_pid in namespace_roots(ctx, root):
        seen: set[int] = set()
        for group in read_group(view):
            # getgrent-style listing reports each gid once, the first definition wins.
            if group.gid in seen or (gids is not None and group.gid not in gids):
                continue
            seen.add(group.gid)
            yield group.gid, signed32(group.gid), group.name, None, None, None, ns_pid


def group_list(user: PasswdEntry, memberships: dict[str, list[int]]) -> list[int]:
    """The user's groups as getgrouplist(3) orders them: primary group first."""
    gids = [user.gid]
    for gid in memberships.get(user.name, ()):
        if gid not in gids:
            gids.append(gid)
    return gids


def gen_user_groups(ctx: QueryContext, root: str = "/") -> Iterator[Row]:
    uids = int_constraints(ctx, "uid")
    gids = int_constraints(ctx, "gid")
    memberships: dict[str, list[int]] = {}
    for group in read_group(root):
        for member in group.members:
            memberships.setdefault(member, []).append(group.gid)
    seen: set[int] = set()
    for user in read_passwd(root):
        if user.uid in seen or (uids is not None and user.uid not in uids):
            continue
        seen.add(user.uid)
        for gid in group_list(user, memberships):
            if gids is None or gid in gids:
                yield user.uid, gid


# --- shadow ---------------------------------------------------------------------------

class ShadowEntry(NamedTuple):
    name: str
    password: str
    last_change: int
    min: int
    max: int
    warning: int
    inactive: int
    expire: int
    flag: int


def _shadow_number(text: str) -> int:
    # An empty field means "not set"; glibc reports it as -1.
    try:
        return int(text) if text else -1
    except ValueError:
        return -1


def parse_shadow(lines: Iterable[str]) -> Iterator[ShadowEntry]:
    for line in lines:
        if not line or line[0] in "#+-":
            continue
        parts = line.split(":")
        if len(parts) < 9:
            parts += [""] * (9 - len(parts))
        nums = [_shadow_number(p) for p in parts[2:9]]
        yield ShadowEntry(parts[0], parts[1], *nums)


def read_shadow(root: str = "/") -> list[ShadowEntry]:
    path = in_root(root, SHADOW_PATH)
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return list(parse_shadow(f.read().splitlines()))
    except OSError as exc:
        log.debug("cannot read %s: %s", path, exc)
        return []


def password_status(password: str) -> str:
    """osquery's reading of the hash field."""
    if password == "!!":
        return "not_set"
    if password[:1] in ("!", "*", "x"):
        return "locked"
    if not password:
        return "empty"
    return "active"


def hash_algorithm(password: str) -> str | None:
    """The crypt(3) scheme id between the first two dollars ($6$... -> '6')."""
    match = _HASH_ID.match(password)
    return match.group(1) if match else None


def gen_shadow(ctx: QueryContext, root: str = "/") -> Iterator[Row]:
    names = {str(v) for v in ctx.equals("username")} or None
    for e in read_shadow(root):
        if names is not None and e.name not in names:
            continue
        yield (
            password_status(e.password), hash_algorithm(e.password), e.last_change, e.min, e.max,
            e.warning, e.inactive, e.expire, e.flag, e.name,
        )


# --- sudoers ------------------------------------------------------------------------

def gen_sudoers(ctx: QueryContext, root: str = "/") -> Iterator[Row]:
    yield from parse_sudoers(root)


# --- utmp / wtmp ---------------------------------------------------------------------

LOGIN_TYPES = {
    utmp.EMPTY: "empty",
    utmp.RUN_LVL: "runlevel",
    utmp.BOOT_TIME: "boot_time",
    utmp.NEW_TIME: "new_time",
    utmp.OLD_TIME: "old_time",
    utmp.INIT_PROCESS: "init",
    utmp.LOGIN_PROCESS: "login",
    utmp.USER_PROCESS: "user",
    utmp.DEAD_PROCESS: "dead",
    utmp.ACCOUNTING: "accounting",
}

LAST_TYPES = {utmp.USER_PROCESS: "user-process", utmp.DEAD_PROCESS: "dead-process"}


def gen_logged_in_users(ctx: QueryContext, root: str = "/") -> Iterator[Row]:
    for rec in utmp.read_records(in_root(root, UTMP_PATH)):
        if rec.pid == 1:
            continue  # init's own bookkeeping records, skipped by osquery too
        yield (
            LOGIN_TYPES.get(rec.type, "unknown"), rec.user, rec.line, rec.host, rec.tv_sec, rec.pid,
            None, None,
        )


def gen_last(ctx: QueryContext, root: str = "/") -> Iterator[Row]:
    for rec in utmp.read_records(in_root(root, WTMP_PATH)):
        name = LAST_TYPES.get(rec.type)
        if name is not None:
            yield rec.user, rec.line, rec.pid, rec.type, name, rec.tv_sec, rec.host


# --- shell history ---------------------------------------------------------------------

def gen_shell_history(ctx: QueryContext, root: str = "/") -> Iterator[Row]:
    for user in users_for_context(ctx, root):
        for path in history_files(root, user.home):
            for when, command in read_history_file(root, path):
                yield user.uid, when, command, path
