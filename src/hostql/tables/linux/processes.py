"""Linux generators for processes, process_envs, process_open_files,
process_memory_map and process_namespaces, read straight from /proc.

``processes`` is the hot table: it opens only the files the query's columns
need, honours ``pid =``/``IN`` constraints and yields tuples in spec order.
Each generator has a ``*_rows(ctx, root)`` twin so tests can aim it at a fake
/proc tree.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

from hostql.sql.context import QueryContext
from hostql.tables.linux import procfs
from hostql.tables.linux.procfs import VANISHED

log = logging.getLogger(__name__)

# /proc reports memory in kB (1024 bytes).  osquery appends "000" instead,
# which under-reports by 2.4%; we report true bytes.
_KB = 1024
_DELETED = " (deleted)"

# Columns of other platforms (Windows then macOS), always NULL on Linux.
_FOREIGN = (None,) * 12

_STAT_COLUMNS = frozenset(
    {"name", "state", "user_time", "system_time", "start_time", "parent", "pgroup", "threads", "nice"}
)
# status is the costliest file the kernel renders; statm gives the two common
# memory figures for less than half the price, so status is read only for
# the credential columns and locked memory.
_STATUS_COLUMNS = frozenset({"uid", "gid", "euid", "egid", "suid", "sgid", "wired_size"})
_MEMORY_COLUMNS = frozenset({"resident_size", "total_size"})
_IO_COLUMNS = frozenset({"disk_bytes_read", "disk_bytes_written"})


def _on_disk(path: str | None, exe_link: str) -> tuple[int, str | None]:
    """osquery's tri-state for the executable, and the path with a stale suffix removed.

    The kernel appends " (deleted)" to the exe link of a removed binary; only if
    a file of that exact name exists *and* is the same inode is it kept.
    """
    if not path:
        return -1, path
    if not path.endswith(_DELETED):
        return (1 if os.path.exists(path) else 0), path
    try:
        on_disk = os.stat(path)
    except OSError:
        return 0, path[: -len(_DELETED)]
    try:
        running = os.stat(exe_link)
    except OSError:
        return -1, path
    if (on_disk.st_dev, on_disk.st_ino) == (running.st_dev, running.st_ino):
        return 1, path
    return 0, path[: -len(_DELETED)]


def process_rows(ctx: QueryContext, root: str = "/") -> Iterator[tuple[Any, ...]]:
    """Rows of ``processes`` read from ``root``/proc."""
    used = ctx.columns_used
    need_stat = not used.isdisjoint(_STAT_COLUMNS)
    need_status = not used.isdisjoint(_STATUS_COLUMNS)
    need_statm = not need_status and not used.isdisjoint(_MEMORY_COLUMNS)
    page = procfs.PAGE_SIZE
    need_io = not used.isdisjoint(_IO_COLUMNS)
    need_on_disk = "on_disk" in used
    need_exe = need_on_disk or "path" in used
    need_cmdline = "cmdline" in used
    need_cwd = "cwd" in used
    need_root = "root" in used
    need_cgroup = "cgroup_path" in used
    need_start = "start_time" in used
    boot = procfs.boot_time(root) if need_start else None
    tck = procfs.CLK_TCK
    read = procfs.read_file
    proc = procfs.proc_dir(root)
    foreign = _FOREIGN

    for pid in procfs.select_pids(ctx.equals("pid"), root):
        base = f"{proc}/{pid}/"
        name = state = start_time = None
        user_time = system_time = parent = pgroup = threads = nice = None
        uid = gid = euid = egid = suid = sgid = wired = resident = total = None
        path = cmdline = cwd = root_dir = cgroup = None
        on_disk = None
        disk_read = disk_written = None
        try:
            if need_stat:
                parsed = procfs.parse_stat(read(base + "stat"))
                if parsed is not None:
                    name, fields = parsed
                    state = fields[0].decode()
                    parent = int(fields[1])
                    pgroup = int(fields[2])
                    user_time = int(fields[11]) * 1000 // tck
                    system_time = int(fields[12]) * 1000 // tck
                    nice = int(fields[16])
                    threads = int(fields[17])
                    if need_start:
                        start_time = boot + int(fields[19]) // tck if boot is not None else -1
            if need_status:
                try:
                    status = read(base + "status")
                except PermissionError:
                    status = b""
                ids = procfs.status_ids(status, b"Uid")
                if ids is not None:
                    uid, euid, suid = ids
                ids = procfs.status_ids(status, b"Gid")
                if ids is not None:
                    gid, egid, sgid = ids
                kb = procfs.status_kb(status, b"VmLck")
                wired = kb * _KB if kb is not None else None
                kb = procfs.status_kb(status, b"VmRSS")
                resident = kb * _KB if kb is not None else None
                kb = procfs.status_kb(status, b"VmSize")
                total = kb * _KB if kb is not None else None
            elif need_statm:
                size_pages, resident_pages = procfs.parse_statm(read(base + "statm"))
                if size_pages:  # kernel threads have no address space at all
                    total = size_pages * page
                    resident = resident_pages * page
            if need_cmdline:
                try:
                    cmdline = procfs.parse_cmdline(read(base + "cmdline"))
                except PermissionError:
                    cmdline = None
            if need_io:
                try:
                    io = procfs.parse_io(read(base + "io"))
                except PermissionError:
                    io = {}
                disk_read = io.get(b"read_bytes")
                written = io.get(b"write_bytes")
                if written is not None:
                    disk_written = written - io.get(b"cancelled_write_bytes", 0)
            if need_cgroup:
                try:
                    cgroup = procfs.parse_cgroup(read(base + "cgroup"))
                except PermissionError:
                    cgroup = None
        except VANISHED:
            continue
        except (OSError, ValueError, IndexError) as exc:
            log.debug("skipping pid %s: %s", pid, exc)
            continue
        if need_exe:
            path = procfs.read_link(base + "exe")
            if path == "" and not os.path.isdir(base):
                continue  # not a kernel thread without an executable: the process exited
            if need_on_disk or (path and path.endswith(_DELETED)):
                on_disk, path = _on_disk(path, base + "exe")
        if need_cwd:
            cwd = procfs.read_link(base + "cwd")
        if need_root:
            root_dir = procfs.read_link(base + "root")
        yield (
            pid, name, path, cmdline, state, cwd, root_dir, uid, gid, euid, egid, suid, sgid,
            on_disk, wired, resident, total, user_time, system_time, disk_read, disk_written,
            start_time, parent, pgroup, threads, nice, *foreign, cgroup,
        )


def gen_processes(ctx: QueryContext) -> Iterator[tuple[Any, ...]]:
    return process_rows(ctx)


def process_env_rows(ctx: QueryContext, root: str = "/") -> Iterator[tuple[int, str, str]]:
    proc = procfs.proc_dir(root)
    for pid in procfs.select_pids(ctx.equals("pid"), root):
        try:
            data = procfs.read_file(f"{proc}/{pid}/environ")
        except VANISHED:
            continue
        except OSError as exc:
            log.debug("cannot read environment of pid %s: %s", pid, exc)
            continue
        for key, value in procfs.parse_environ(data):
            yield pid, key, value


def gen_process_envs(ctx: QueryContext) -> Iterator[tuple[int, str, str]]:
    return process_env_rows(ctx)


def open_file_rows(ctx: QueryContext, root: str = "/") -> Iterator[tuple[int, int, str]]:
    proc = procfs.proc_dir(root)
    for pid in procfs.select_pids(ctx.equals("pid"), root):
        try:
            fds = procfs.list_fds(root, pid)
        except OSError as exc:
            log.debug("cannot list descriptors of pid %s: %s", pid, exc)
            continue
        base = f"{proc}/{pid}/fd/"
        for fd in fds:
            try:
                target = os.readlink(f"{base}{fd}")
            except OSError:
                # Closed since the listing (our own listdir descriptor, for one).
                continue
            yield pid, fd, target


def gen_process_open_files(ctx: QueryContext) -> Iterator[tuple[int, int, str]]:
    return open_file_rows(ctx)


def memory_map_rows(ctx: QueryContext, root: str = "/") -> Iterator[tuple[Any, ...]]:
    proc = procfs.proc_dir(root)
    for pid in procfs.select_pids(ctx.equals("pid"), root):
        try:
            data = procfs.read_records(f"{proc}/{pid}/maps")
        except OSError as exc:
            log.debug("cannot read memory map of pid %s: %s", pid, exc)
            continue
        for region in procfs.parse_maps(data):
            yield (pid, *region)


def gen_process_memory_map(ctx: QueryContext) -> Iterator[tuple[Any, ...]]:
    return memory_map_rows(ctx)


def namespace_rows(ctx: QueryContext, root: str = "/") -> Iterator[tuple[Any, ...]]:
    proc = procfs.proc_dir(root)
    for pid in procfs.select_pids(ctx.equals("pid"), root):
        base = f"{proc}/{pid}/ns/"
        inodes: list[str | None] = []
        for kind in procfs.NAMESPACES:
            try:
                inode = procfs.namespace_inode(os.readlink(base + kind))
            except OSError:
                inode = None
            inodes.append(str(inode) if inode is not None else None)
        if not any(inodes) and not os.path.isdir(f"{proc}/{pid}"):
            continue  # exited while we looked
        yield (pid, *inodes)


def gen_process_namespaces(ctx: QueryContext) -> Iterator[tuple[Any, ...]]:
    return namespace_rows(ctx)
