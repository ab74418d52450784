"""process_open_pipes on Linux: pipe ends found in /proc/<pid>/fd, paired up.

osquery's semantics: every pipe end (anonymous ``pipe:[inode]`` or a FIFO in
the filesystem) is matched with every other end of the same pipe that could
talk to it (modes differ, or this end is read-write).  A pipe with a single
known end gives one row with no partner.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from hostql.sql.context import QueryContext
from hostql.tables.linux import procfs

log = logging.getLogger(__name__)

_READ_BITS = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
_WRITE_BITS = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH


@dataclass(frozen=True, slots=True)
class PipeEnd:
    pid: int
    fd: int
    mode: str
    inode: int
    kind: str


def fd_mode(fd_path: str) -> str:
    """r, w or rw: /proc shows a descriptor's open mode as its link's permission bits."""
    try:
        bits = os.lstat(fd_path).st_mode
    except OSError:
        return "-"
    return ("r" if bits & _READ_BITS else "") + ("w" if bits & _WRITE_BITS else "")


def pipe_end(pid: int, fd: int, fd_path: str, target: str) -> PipeEnd | None:
    """The pipe behind one descriptor, or None when it is not a pipe."""
    if target.startswith("pipe:["):
        try:
            inode = int(target[6:-1])
        except ValueError:
            return None
        return PipeEnd(pid, fd, fd_mode(fd_path), inode, "anonymous")
    if not target.startswith("/"):
        return None  # socket:, anon_inode: and the like
    try:
        # Stat through the descriptor: the path may not resolve in our mount namespace.
        info = os.stat(fd_path)
    except OSError:
        return None
    if not stat.S_ISFIFO(info.st_mode):
        return None
    return PipeEnd(pid, fd, fd_mode(fd_path), info.st_ino, "named")


def collect_pipe_ends(root: str = "/") -> list[PipeEnd]:
    """Every pipe end held by any process, in pid then fd order."""
    proc = procfs.proc_dir(root)
    ends: list[PipeEnd] = []
    for pid in procfs.all_pids(root):
        try:
            fds = procfs.list_fds(root, pid)
        except OSError as exc:
            log.debug("cannot list descriptors of pid %s: %s", pid, exc)
            continue
        for fd in fds:
            fd_path = f"{proc}/{pid}/fd/{fd}"
            try:
                target = os.readlink(fd_path)
            except OSError:
                continue
            end = pipe_end(pid, fd, fd_path, target)
            if end is not None:
                ends.append(end)
    return ends


def pair_pipe_ends(ends: list[PipeEnd]) -> Iterator[tuple[Any, ...]]:
    """Rows of process_open_pipes from the collected ends."""
    by_inode: dict[int, list[PipeEnd]] = {}
    for end in ends:
        by_inode.setdefault(end.inode, []).append(end)
    for end in ends:
        peers = by_inode[end.inode]
        if len(peers) == 1:
            yield end.pid, end.fd, end.mode, end.inode, end.kind, None, None, None
            continue
        for peer in peers:
            if peer is end:
                continue
            # Two readers (or two writers) of one pipe do not talk to each other.
            if peer.mode == end.mode and end.mode != "rw":
                continue
            yield end.pid, end.fd, end.mode, end.inode, end.kind, peer.pid, peer.fd, peer.mode


def pipe_rows(ctx: QueryContext, root: str = "/") -> Iterator[tuple[Any, ...]]:
    return pair_pipe_ends(collect_pipe_ends(root))


def gen_process_open_pipes(ctx: QueryContext) -> Iterator[tuple[Any, ...]]:
    return pipe_rows(ctx)
