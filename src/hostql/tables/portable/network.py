"""Network tables through psutil, for platforms without a native generator.

psutil cannot see socket inodes, namespaces or the owning fd everywhere, so
those columns stay NULL (or -1 for fd, as osquery does for unknown owners).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from typing import Any

from hostql.sql.context import QueryContext

log = logging.getLogger(__name__)

# psutil's TCP status strings -> osquery's state names.
_TCP_STATES = {
    "ESTABLISHED": "ESTABLISHED", "SYN_SENT": "SYN_SENT", "SYN_RECV": "SYN_RECV",
    "FIN_WAIT1": "FIN_WAIT1", "FIN_WAIT2": "FIN_WAIT2", "TIME_WAIT": "TIME_WAIT", "CLOSE": "CLOSED",
    "CLOSE_WAIT": "CLOSE_WAIT", "LAST_ACK": "LAST_ACK", "LISTEN": "LISTEN", "CLOSING": "CLOSING",
}


def _connections() -> list[Any]:
    import psutil

    try:
        return list(psutil.net_connections(kind="all"))
    except (psutil.AccessDenied, OSError) as exc:
        log.debug("psutil.net_connections failed: %s", exc)
        return []


def _protocol(conn: Any) -> int:
    if conn.family == socket.AF_UNIX:
        return 0
    return socket.IPPROTO_TCP if conn.type == socket.SOCK_STREAM else socket.IPPROTO_UDP


def _endpoint(addr: Any) -> tuple[str, int]:
    if addr and not isinstance(addr, str):
        return addr[0], addr[1]
    return "", 0


def _socket_rows(pid_filter: set[int] | None) -> Iterator[tuple[Any, ...]]:
    for conn in _connections():
        pid = conn.pid if conn.pid is not None else -1
        if pid_filter is not None and pid not in pid_filter:
            continue
        family = int(conn.family)
        protocol = _protocol(conn)
        fd = conn.fd if conn.fd is not None and conn.fd >= 0 else -1
        if family == socket.AF_UNIX:
            path = conn.laddr if isinstance(conn.laddr, str) else ""
            yield (pid, fd, None, family, 0, "", "", 0, 0, path, "", None)
            continue
        laddr, lport = _endpoint(conn.laddr)
        raddr, rport = _endpoint(conn.raddr)
        if not raddr:
            raddr = "0.0.0.0" if family == socket.AF_INET else "::"
        state = _TCP_STATES.get(conn.status, "UNKNOWN") if protocol == socket.IPPROTO_TCP else ""
        yield (pid, fd, None, family, protocol, laddr, raddr, lport, rport, "", state, None)


def gen_process_open_sockets(ctx: QueryContext) -> Iterator[tuple[Any, ...]]:
    pids: set[int] = set()
    for value in ctx.equals("pid"):
        try:
            pids.add(int(value))
        except (TypeError, ValueError):
            continue
    yield from _socket_rows(pids if pids and -1 not in pids else None)


def gen_listening_ports(ctx: QueryContext) -> Iterator[tuple[Any, ...]]:
    for pid, fd, sock, family, protocol, laddr, _r, lport, rport, path, state, ns in _socket_rows(None):
        if family == socket.AF_UNIX:
            if path:
                yield (pid, 0, protocol, family, None, fd, 0, path, ns)
        elif rport == 0 and (protocol != socket.IPPROTO_TCP or state == "LISTEN"):
            yield (pid, lport, protocol, family, laddr, fd, sock, None, ns)


def _mask_text(mask: str | None) -> str | None:
    return mask if mask else None


def gen_interface_addresses(ctx: QueryContext) -> Iterator[tuple[Any, ...]]:
    import psutil

    stats = psutil.net_if_stats()
    for name, addrs in psutil.net_if_addrs().items():
        flags = getattr(stats.get(name), "flags", "") or ""
        broadcast_capable = "broadcast" in flags.split(",")
        for addr in addrs:
            if addr.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            broadcast = point_to_point = None
            if addr.broadcast or getattr(addr, "ptp", None):
                other = addr.broadcast or addr.ptp
                if broadcast_capable:
                    broadcast = other
                else:
                    point_to_point = other
            yield (name, addr.address, _mask_text(addr.netmask), broadcast, point_to_point, "unknown", None)


def gen_interface_details(ctx: QueryContext) -> Iterator[tuple[Any, ...]]:
    import psutil

    stats = psutil.net_if_stats()
    counters = psutil.net_io_counters(pernic=True)
    macs: dict[str, str] = {}
    link_family = getattr(psutil, "AF_LINK", None)
    for name, addrs in psutil.net_if_addrs().items():
        for addr in addrs:
            if addr.family == link_family and addr.address:
                macs[name] = addr.address.replace("-", ":").lower()
    for name in sorted(set(stats) | set(counters)):
        stat = stats.get(name)
        io = counters.get(name)
        mtu = stat.mtu if stat else 0
        speed = stat.speed if stat and stat.speed > 0 else 0
        yield (
            name, macs.get(name, "00:00:00:00:00:00"), None, mtu, 0, None,
            io.packets_recv if io else None, io.packets_sent if io else None,
            io.bytes_recv if io else None, io.bytes_sent if io else None,
            io.errin if io else None, io.errout if io else None,
            io.dropin if io else None, io.dropout if io else None,
            None, -1, speed, None,
            *((None,) * 17),
        )
