"""Which process holds which socket, and in which network namespace.

Sockets carry no owner; /proc/<pid>/fd/<n> symlinks read ``socket:[inode]``.
Scanning them is the expensive part of the socket tables, so callers only do
it when the query reads pid/fd or constrains pid.
"""

from __future__ import annotations

import os


def list_pids(root: str = "/") -> list[int]:
    """Every pid under ``root``/proc, in directory order."""
    try:
        names = os.listdir(os.path.join(root, "proc"))
    except OSError:
        return []
    return [int(n) for n in names if n.isdigit()]


def _link_inode(link: str, prefix: str) -> int | None:
    """The number in ``<prefix>[<number>]``, or None for another kind of link."""
    if not link.startswith(prefix) or not link.endswith("]"):
        return None
    try:
        return int(link[len(prefix):-1])
    except ValueError:
        return None


def net_namespace(root: str, pid: int | str) -> int | None:
    """Inode of the network namespace of ``pid`` ("self" for us), if readable."""
    try:
        link = os.readlink(os.path.join(root, "proc", str(pid), "ns", "net"))
    except OSError:
        return None
    return _link_inode(link, "net:[")


def socket_owners(root: str, pids: list[int]) -> dict[int, tuple[int, int]]:
    """Map socket inode -> (pid, fd) for the sockets open in ``pids``.

    A socket shared by several processes keeps the last one seen, as osquery
    does.  Processes that exit or deny access mid-scan are skipped.
    """
    owners: dict[int, tuple[int, int]] = {}
    readlink = os.readlink
    for pid in pids:
        fd_dir = os.path.join(root, "proc", str(pid), "fd")
        try:
            entries = os.listdir(fd_dir)
        except OSError:
            continue
        prefix = fd_dir + "/"
        for name in entries:
            try:
                link = readlink(prefix + name)
            except OSError:
                continue
            # Cheap prefix test before any parsing: most fds are not sockets.
            if link.startswith("socket:["):
                try:
                    owners[int(link[8:-1])] = (pid, int(name))
                except ValueError:
                    continue
    return owners
