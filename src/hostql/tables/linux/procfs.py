"""Low-level readers and parsers for /proc, shared by the process tables.

Everything here is plain functions over bytes so that tests can feed them a
fake tree under ``root``.  Files are read with ``os.open``/``os.read``: on the
hot path a Python file object costs more than the read itself.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from typing import Any

log = logging.getLogger(__name__)

# Files the kernel renders in one go (stat, status, io, cgroup, cmdline,
# environ) come back whole from one read when the buffer is large enough, so
# only a full buffer needs another read.  Record lists (maps) do not: the
# kernel hands them out a page or so at a time, see read_records.
_CHUNK = 65536

# Errors that mean "this process is gone": the row is skipped, not reported.
VANISHED = (FileNotFoundError, ProcessLookupError)

CLK_TCK: int = os.sysconf("SC_CLK_TCK")
PAGE_SIZE: int = os.sysconf("SC_PAGE_SIZE")

# The namespaces osquery reports, in the order of its columns.
NAMESPACES = ("cgroup", "ipc", "mnt", "net", "pid", "user", "uts")


def proc_dir(root: str = "/") -> str:
    return os.path.join(root, "proc")


def read_file(path: str) -> bytes:
    """Whole content of a file the kernel renders at once; raises OSError as os.open does."""
    fd = os.open(path, os.O_RDONLY)
    try:
        data = os.read(fd, _CHUNK)
        if len(data) < _CHUNK:
            return data
        parts = [data]
        while True:
            chunk = os.read(fd, _CHUNK)
            if not chunk:
                return b"".join(parts)
            parts.append(chunk)
    finally:
        os.close(fd)


def read_records(path: str) -> bytes:
    """Whole content of a record-list file (maps and the like): read to end of file."""
    fd = os.open(path, os.O_RDONLY)
    try:
        parts: list[bytes] = []
        while True:
            chunk = os.read(fd, _CHUNK)
            if not chunk:
                return b"".join(parts)
            parts.append(chunk)
    finally:
        os.close(fd)


def read_link(path: str) -> str | None:
    """Target of a /proc symlink: "" when it has none (kernel threads), None when denied.

    ``FileNotFoundError`` is swallowed: exe of a kernel thread does not resolve,
    which osquery reports as an empty path.
    """
    try:
        return os.readlink(path)
    except FileNotFoundError:
        return ""
    except PermissionError:
        return None
    except OSError:
        return ""


def all_pids(root: str = "/") -> list[int]:
    """Every process (thread-group leader) listed in /proc, in /proc's order."""
    try:
        names = os.listdir(proc_dir(root))
    except OSError as exc:
        log.debug("cannot list %s: %s", proc_dir(root), exc)
        return []
    return [int(n) for n in names if n.isdigit()]


def wanted_pids(values: Iterable[Any], root: str = "/") -> list[int]:
    """The pids named by ``pid =``/``IN`` constraints that exist, without duplicates."""
    found: set[int] = set()
    base = proc_dir(root)
    for value in values:
        try:
            pid = int(value)
        except (TypeError, ValueError):
            continue
        if pid > 0 and pid not in found and os.path.isdir(f"{base}/{pid}"):
            found.add(pid)
    return sorted(found)


def select_pids(equals: set[Any], root: str = "/") -> list[int]:
    """Pids to visit: the constrained ones if the query gave any, else all."""
    return wanted_pids(equals, root) if equals else all_pids(root)


def parse_stat(data: bytes) -> tuple[str, list[bytes]] | None:
    """Split /proc/<pid>/stat into (comm, fields after comm).

    comm may contain spaces and parentheses, so it ends at the *last* ')'.
    fields[0] is the state letter, fields[1] the parent pid, and so on.
    """
    open_at = data.find(b"(")
    close_at = data.rfind(b")")
    if open_at < 0 or close_at < open_at:
        return None
    fields = data[close_at + 2 :].split()
    if len(fields) < 20:
        return None
    return data[open_at + 1 : close_at].decode("utf-8", "replace"), fields


def status_value(data: bytes, key: bytes) -> bytes | None:
    """The text after ``key:`` in a /proc/<pid>/status style file, stripped."""
    at = data.find(b"\n" + key + b":")
    if at < 0:
        if not data.startswith(key + b":"):
            return None
        at = -1
    start = at + len(key) + 2
    end = data.find(b"\n", start)
    return (data[start:] if end < 0 else data[start:end]).strip()


def status_ids(data: bytes, key: bytes) -> tuple[int, int, int] | None:
    """(real, effective, saved) from a ``Uid:``/``Gid:`` status line."""
    value = status_value(data, key)
    if value is None:
        return None
    parts = value.split()
    if len(parts) < 3:
        return None
    return int(parts[0]), int(parts[1]), int(parts[2])


def status_kb(data: bytes, key: bytes) -> int | None:
    """A ``Vm*:  123 kB`` status value, in kB."""
    value = status_value(data, key)
    if not value:
        return None
    try:
        return int(value.split()[0])
    except ValueError:
        return None


def parse_statm(data: bytes) -> tuple[int, int]:
    """(total, resident) size in pages from /proc/<pid>/statm."""
    fields = data.split(None, 2)
    return int(fields[0]), int(fields[1])


def parse_io(data: bytes) -> dict[bytes, int]:
    """/proc/<pid>/io as a mapping of counter name to value."""
    out: dict[bytes, int] = {}
    for line in data.splitlines():
        key, sep, value = line.partition(b":")
        if sep:
            try:
                out[key.strip()] = int(value)
            except ValueError:
                continue
    return out


def parse_cmdline(data: bytes) -> str:
    """NUL-separated argv as one string with spaces, trailing separators trimmed."""
    return data.replace(b"\0", b" ").strip().decode("utf-8", "replace")


def parse_environ(data: bytes) -> Iterator[tuple[str, str]]:
    """(name, value) pairs of a NUL-separated environment block."""
    for entry in data.split(b"\0"):
        if not entry:
            # An empty entry ends the block, as it does for the C library.
            break
        key, _, value = entry.partition(b"=")
        yield key.decode("utf-8", "replace"), value.decode("utf-8", "replace")


def parse_cgroup(data: bytes) -> str:
    """Cgroup path from the first line of /proc/<pid>/cgroup (``id:controllers:path``)."""
    line = data.split(b"\n", 1)[0]
    parts = line.split(b":", 2)
    if len(parts) < 3:
        return ""
    return parts[2].decode("utf-8", "replace")


def boot_time(root: str = "/") -> int | None:
    """Boot time in Unix seconds from the ``btime`` line of /proc/stat."""
    try:
        data = read_file(os.path.join(proc_dir(root), "stat"))
    except OSError as exc:
        log.debug("cannot read boot time: %s", exc)
        return None
    for line in data.splitlines():
        if line.startswith(b"btime "):
            try:
                return int(line[6:])
            except ValueError:
                return None
    return None


MapsRow = tuple[str, str, str, int, str, int, str, int]


def parse_maps(data: bytes) -> Iterator[MapsRow]:
    """(start, end, permissions, offset, device, inode, path, pseudo) per maps line.

    Addresses keep the kernel's hex digits behind a ``0x``; a region with a
    name but no inode (``[heap]``, ``[stack]``, ...) is a pseudo region.
    """
    for line in data.splitlines():
        fields = line.split(None, 5)
        if len(fields) < 5:
            continue
        start, dash, end = fields[0].partition(b"-")
        if not dash:
            continue
        try:
            offset = int(fields[2], 16)
        except ValueError:
            offset = -1
        try:
            inode = int(fields[4])
        except ValueError:
            continue
        path = fields[5].strip().decode("utf-8", "replace") if len(fields) > 5 else ""
        pseudo = 1 if inode == 0 and path else 0
        yield (
            "0x" + start.decode(),
            "0x" + end.decode(),
            fields[1].decode(),
            offset,
            fields[3].decode(),
            inode,
            path,
            pseudo,
        )


def namespace_inode(link: str) -> int | None:
    """Inode number from a namespace link target such as ``net:[4026531840]``."""
    start = link.find(":[")
    if start < 0 or not link.endswith("]"):
        return None
    try:
        return int(link[start + 2 : -1])
    except ValueError:
        return None


def list_fds(root: str, pid: int) -> list[int]:
    """Open descriptor numbers of a process (raises OSError like listdir)."""
    return sorted(int(n) for n in os.listdir(f"{proc_dir(root)}/{pid}/fd") if n.isdigit())
