"""listening_ports and process_open_sockets on Linux.

Sockets of our own network namespace come from netlink sock_diag (TCP, UDP,
UNIX) plus the small /proc/net files for raw, ping, UDP-Lite and packet
sockets; sockets of other namespaces come from /proc/<pid>/net of one process
living there.  Owners (pid, fd) are found by scanning /proc/<pid>/fd only when
the query needs them, as osquery does it for every query.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from hostql.sql.context import QueryContext
from hostql.tables.linux import net_procfs
from hostql.tables.linux.net_owners import list_pids, net_namespace, socket_owners
from hostql.tables.linux.net_procfs import AF_PACKET, IPPROTO_ICMP, IPPROTO_RAW, IPPROTO_TCP, IPPROTO_UDPLITE
from hostql.tables.linux.sockdiag import AF_INET, AF_INET6, AF_UNIX, SocketEntry

log = logging.getLogger(__name__)

# osquery's names for the kernel TCP states (index = state number).
TCP_STATE_NAMES = ("UNKNOWN", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2",
                   "TIME_WAIT", "CLOSED", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING")
# Protocols inet_diag does not dump for us; their /proc/net files are tiny.
_PROCFS_ONLY = (IPPROTO_ICMP, IPPROTO_UDPLITE, IPPROTO_RAW)


def state_text(entry: SocketEntry) -> str:
    """The ``state`` column: TCP state names, NONE for packet sockets, else empty."""
    if entry.family == AF_PACKET:
        return "NONE"
    if entry.protocol == IPPROTO_TCP and entry.family in (AF_INET, AF_INET6):
        state = entry.state
        return TCP_STATE_NAMES[state] if 0 < state < len(TCP_STATE_NAMES) else "UNKNOWN"
    return ""


def own_namespace_sockets(root: str = "/", listening_only: bool = False) -> list[SocketEntry]:
    """Every socket of our network namespace, netlink first, /proc/net otherwise.

    ``listening_only`` lets netlink skip TCP sockets that are not listening
    (they can never be listening ports); the /proc fallback reads them all.
    """
    directory = net_procfs.net_dir(root)
    if root == "/":
        try:
            from hostql.tables.linux.sockdiag import SockDiag, dump_inet_sockets

            entries = dump_inet_sockets(listening_only)
            with SockDiag() as diag:
                unix = diag.unix()
        except OSError as exc:
            log.debug("sock_diag netlink unavailable (%s); reading %s", exc, directory)
        else:
            for protocol in _PROCFS_ONLY:
                entries.extend(net_procfs.read_inet(directory, AF_INET, protocol))
                entries.extend(net_procfs.read_inet(directory, AF_INET6, protocol))
            entries.extend(unix)
            entries.extend(net_procfs.read_packet(directory))
            return entries
    return net_procfs.read_all(directory)


def _pid_filter(ctx: QueryContext) -> set[int] | None:
    """pids the query pins down with = / IN, or None to report every socket.

    As in osquery, asking for pid -1 (sockets without a known owner) turns
    the filter off.
    """
    pids: set[int] = set()
    for value in ctx.equals("pid"):
        try:
            pids.add(int(value))
        except (TypeError, ValueError):
            continue
    if not pids or -1 in pids:
        return None
    return pids


def collect(ctx: QueryContext, root: str = "/", listening_only: bool = False
            ) -> Iterator[tuple[SocketEntry, Any, Any, str]]:
    """Yield ``(socket, pid, fd, net_namespace)`` for every socket to report."""
    pid_filter = _pid_filter(ctx)
    need_owners = pid_filter is not None or ctx.any_used(("pid", "fd"))
    pids = sorted(pid_filter) if pid_filter is not None else list_pids(root)
    own_ns = net_namespace(root, "self")
    # Namespace inode -> pid whose /proc/<pid>/net shows it (None: ours).
    namespaces: dict[int | None, int | None] = {}
    if pid_filter is None:
        namespaces[own_ns] = None
    for pid in pids:
        ns = net_namespace(root, pid)
        if ns is None or ns in namespaces:
            continue
        namespaces[ns] = None if ns == own_ns else pid
    owners = socket_owners(root, pids) if need_owners else {}
    unknown: Any = -1 if need_owners else None
    for ns, shown_by in namespaces.items():
        if shown_by is None:
            entries = own_namespace_sockets(root, listening_only)
        else:
            entries = net_procfs.read_all(net_procfs.net_dir(root, shown_by))
        ns_text = str(ns) if ns else "0"
        for entry in entries:
            owner = owners.get(entry.inode)
            if owner is not None:
                yield entry, owner[0], owner[1], ns_text
            elif pid_filter is None:
                yield entry, unknown, unknown, ns_text


def gen_process_open_sockets(ctx: QueryContext, root: str = "/") -> Iterator[tuple[Any, ...]]:
    for entry, pid, fd, ns in collect(ctx, root):
        yield (pid, fd, entry.inode, entry.family, entry.protocol, entry.local_address,
               entry.remote_address, entry.local_port, entry.remote_port, entry.path,
               state_text(entry), ns)


def gen_listening_ports(ctx: QueryContext, root: str = "/") -> Iterator[tuple[Any, ...]]:
    """osquery's rule: named UNIX sockets, and IP sockets with no remote port."""
    for entry, pid, fd, ns in collect(ctx, root, listening_only=True):
        family = entry.family
        if family == AF_UNIX:
            if entry.path:
                # osquery reports UNIX sockets with port 0 and socket 0.
                yield (pid, 0, entry.protocol, family, None, fd, 0, entry.path, ns)
        elif family in (AF_INET, AF_INET6):
            if entry.remote_port == 0 and (entry.protocol != IPPROTO_TCP or entry.state == 10):
                yield (pid, entry.local_port, entry.protocol, family, entry.local_address, fd,
                       entry.inode, None, ns)
        else:
            yield (pid, entry.local_port, entry.protocol, family, entry.local_address, fd,
                   entry.inode, None, ns)
