"""Portable (psutil) generators for the process tables: macOS, Windows, and
Linux under HOSTQL_PORTABLE=1.

A process that exits mid-read is skipped; a value the OS refuses to give
(access denied, zombie) is left NULL.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import psutil

from hostql.sql.context import QueryContext

log = logging.getLogger(__name__)

T = TypeVar("T")

# psutil's status names to the one-letter codes osquery reports.
_STATE_LETTERS = {
    psutil.STATUS_RUNNING: "R",
    psutil.STATUS_SLEEPING: "S",
    psutil.STATUS_DISK_SLEEP: "D",
    psutil.STATUS_STOPPED: "T",
    psutil.STATUS_TRACING_STOP: "t",
    psutil.STATUS_ZOMBIE: "Z",
    psutil.STATUS_DEAD: "X",
    psutil.STATUS_WAKING: "W",
    psutil.STATUS_PARKED: "P",
    psutil.STATUS_IDLE: "I",
    psutil.STATUS_LOCKED: "L",
    psutil.STATUS_WAITING: "W",
}

_DARWIN_COLUMNS = (None,) * 5  # upid, uppid, cpu_type, cpu_subtype, translated


def _value(read: Callable[[], T]) -> T | None:
    """``read()``, or None when the OS will not tell; exits propagate as NoSuchProcess."""
    try:
        return read()
    except (psutil.AccessDenied, psutil.ZombieProcess):
        return None


def _processes(ctx: QueryContext) -> Iterator[psutil.Process]:
    """Processes to visit: the constrained pids if any, else all of them."""
    wanted = ctx.equals("pid")
    if not wanted:
        yield from psutil.process_iter()
        return
    pids: set[int] = set()
    for value in wanted:
        try:
            pids.add(int(value))
        except (TypeError, ValueError):
            continue
    for pid in sorted(pids):
        try:
            yield psutil.Process(pid)
        except psutil.NoSuchProcess:
            continue


def _process_row(proc: psutil.Process, ctx: QueryContext, now: float) -> tuple[Any, ...]:
    used = ctx.is_used
    name = _value(proc.name) if used("name") else None
    path = _value(proc.exe) if used("path") or used("on_disk") else None
    on_disk = None
    if used("on_disk"):
        on_disk = -1 if not path else (1 if os.path.exists(path) else 0)
    argv = _value(proc.cmdline) if used("cmdline") else None
    status = _value(proc.status) if used("state") else None
    cwd = _value(proc.cwd) if used("cwd") else None
    uids = gids = None
    if hasattr(proc, "uids") and ctx.any_used(("uid", "euid", "suid")):
        uids = _value(proc.uids)
    if hasattr(proc, "gids") and ctx.any_used(("gid", "egid", "sgid")):
        gids = _value(proc.gids)
    memory = _value(proc.memory_info) if ctx.any_used(("resident_size", "total_size")) else None
    cpu = _value(proc.cpu_times) if ctx.any_used(("user_time", "system_time")) else None
    io = None
    if hasattr(proc, "io_counters") and ctx.any_used(("disk_bytes_read", "disk_bytes_written")):
        io = _value(proc.io_counters)
    created = _value(proc.create_time) if ctx.any_used(("start_time", "elapsed_time")) else None
    pgroup = None
    if used("pgroup") and hasattr(os, "getpgid"):
        try:
            pgroup = os.getpgid(proc.pid)
        except OSError:
            pgroup = None
    windows: list[int | None] = [None] * 7
    if psutil.WINDOWS:
        windows[4] = int(now - created) if created is not None else None
        windows[5] = _value(proc.num_handles) if used("handle_count") else None  # type: ignore[attr-defined]
    return (
        proc.pid,
        name,
        path,
        " ".join(argv) if argv is not None else None,
        _STATE_LETTERS.get(status, status) if status is not None else None,
        cwd,
        None,  # psutil has no view of a process's root directory
        uids.real if uids else None,
        gids.real if gids else None,
        uids.effective if uids else None,
        gids.effective if gids else None,
        uids.saved if uids else None,
        gids.saved if gids else None,
        on_disk,
        None,  # wired memory is not exposed by psutil
        memory.rss if memory else None,
        memory.vms if memory else None,
        int(cpu.user * 1000) if cpu else None,
        int(cpu.system * 1000) if cpu else None,
        io.read_bytes if io else None,
        io.write_bytes if io else None,
        int(created) if created is not None else (-1 if used("start_time") else None),
        _value(proc.ppid) if used("parent") else None,
        pgroup,
        _value(proc.num_threads) if used("threads") else None,
        _value(proc.nice) if used("nice") else None,
        *windows,
        *_DARWIN_COLUMNS,
        None,  # cgroup_path is read from /proc by the Linux generator only
    )


def gen_processes(ctx: QueryContext) -> Iterator[tuple[Any, ...]]:
    now = time.time()
    for proc in _processes(ctx):
        try:
            with proc.oneshot():
                row = _process_row(proc, ctx, now)
        except psutil.NoSuchProcess:
            continue
        yield row


def gen_process_envs(ctx: QueryContext) -> Iterator[tuple[int, str, str]]:
    for proc in _processes(ctx):
        try:
            env = proc.environ()
        except (psutil.NoSuchProcess, psutil.AccessDenied) as exc:
            log.debug("no environment for pid %s: %s", proc.pid, exc)
            continue
        for key, value in env.items():
            yield proc.pid, key, value


def gen_process_open_files(ctx: QueryContext) -> Iterator[tuple[int, int, str]]:
    for proc in _processes(ctx):
        try:
            files = proc.open_files()
        except (psutil.NoSuchProcess, psutil.AccessDenied) as exc:
            log.debug("no open files for pid %s: %s", proc.pid, exc)
            continue
        for item in files:
            yield proc.pid, item.fd, item.path


def _address(text: str) -> str:
    return text if text.startswith("0x") else "0x" + text


def gen_process_memory_map(ctx: QueryContext) -> Iterator[tuple[Any, ...]]:
    for proc in _processes(ctx):
        try:
            regions = proc.memory_maps(grouped=False)
        except (psutil.NoSuchProcess, psutil.AccessDenied) as exc:
            log.debug("no memory map for pid %s: %s", proc.pid, exc)
            continue
        for region in regions:
            addr: str = region.addr  # type: ignore[attr-defined]
            start, dash, end = addr.partition("-")
            path: str = region.path
            yield (
                proc.pid,
                _address(start),
                _address(end) if dash else None,
                region.perms,  # type: ignore[attr-defined]
                None,  # psutil gives no file offset, device or inode
                None,
                None,
                path,
                1 if path.startswith("[") else 0,
            )
