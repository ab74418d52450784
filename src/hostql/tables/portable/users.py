"""Portable generators for accounts and sessions: Python's pwd/grp and psutil.

Used on platforms without a native generator (and on Linux under
``HOSTQL_PORTABLE=1``).  pwd/grp go through the C library, so they list
whatever the host's name service knows; they do not exist on Windows, where
these tables return no rows here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

from hostql.sql.context import QueryContext
from hostql.tables.common.users_accounts import int_constraints, signed32

log = logging.getLogger(__name__)

Row = tuple[Any, ...]


def gen_users(ctx: QueryContext) -> Iterator[Row]:
    try:
        import pwd
    except ImportError:
        log.debug("users: no pwd module on this platform")
        return
    uids = int_constraints(ctx, "uid")
    names = {str(v) for v in ctx.equals("username")} or None
    for p in pwd.getpwall():
        if uids is not None and p.pw_uid not in uids:
            continue
        if names is not None and p.pw_name not in names:
            continue
        yield (
            p.pw_uid, p.pw_gid, signed32(p.pw_uid), signed32(p.pw_gid), p.pw_name, p.pw_gecos,
            p.pw_dir, p.pw_shell, "", None, None, 0, 0,
        )


def gen_groups(ctx: QueryContext) -> Iterator[Row]:
    try:
        import grp
    except ImportError:
        log.debug("groups: no grp module on this platform")
        return
    gids = int_constraints(ctx, "gid")
    seen: set[int] = set()
    for g in grp.getgrall():
        if g.gr_gid in seen or (gids is not None and g.gr_gid not in gids):
            continue
        seen.add(g.gr_gid)
        yield g.gr_gid, signed32(g.gr_gid), g.gr_name, None, None, None, 0


def gen_user_groups(ctx: QueryContext) -> Iterator[Row]:
    try:
        import pwd
    except ImportError:
        log.debug("user_groups: no pwd module on this platform")
        return
    uids = int_constraints(ctx, "uid")
    gids = int_constraints(ctx, "gid")
    seen: set[int] = set()
    for p in pwd.getpwall():
        if p.pw_uid in seen or (uids is not None and p.pw_uid not in uids):
            continue
        seen.add(p.pw_uid)
        try:
            groups = os.getgrouplist(p.pw_name, p.pw_gid)
        except OSError:
            groups = [p.pw_gid]
        for gid in dict.fromkeys(groups):
            if gids is None or gid in gids:
                yield p.pw_uid, gid


def gen_logged_in_users(ctx: QueryContext) -> Iterator[Row]:
    import psutil

    for u in psutil.users():
        # psutil lists only live user sessions, i.e. utmp USER_PROCESS records.
        yield "user", u.name, u.terminal or "", u.host or "", int(u.started), u.pid, None, None
