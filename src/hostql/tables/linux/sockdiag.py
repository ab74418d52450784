"""Read the kernel's socket tables through NETLINK_SOCK_DIAG.

``inet_diag`` lists TCP and UDP sockets of one address family per request and
``unix_diag`` lists UNIX sockets with their bound names.  Everything comes from
the network namespace of the calling process.  A dump of every TCP and UDP
socket costs a few hundred microseconds, several times less than parsing
``/proc/net/{tcp,udp}[6]`` (see ``bench/bench_sockets.py``).
"""

from __future__ import annotations

import socket
import struct
from typing import NamedTuple

from hostql.tables.linux import net_netlink as nl

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
TCPDIAG_GETSOCK = 18  # legacy request: TCP of every family in one dump
UNIX_DIAG_NAME = 0
UDIAG_SHOW_NAME = 0x1
AF_UNIX = 1
AF_INET = 2
AF_INET6 = 10
TCP_LISTEN = 10

# Every TCP state 1..11 (bit n = state n).  TCP_NEW_SYN_RECV (12) is added by
# the kernel when SYN_RECV is asked for; TCP_BOUND_INACTIVE (13) is left out
# because /proc/net/tcp does not list bound-only sockets either.
TCP_ALL_STATES = 0xFFF
ALL_STATES = 0xFFFFFFFF

# inet_diag_req_v2: family, protocol, ext, pad, states, then a zeroed sockid (48 bytes).
_INET_REQ = struct.Struct("=BBBBI48x")
# Legacy inet_diag_req: family, src_len, dst_len, ext, sockid (48), states, dbs.
_COMPAT_REQ = struct.Struct("=BBBB48xII")
# unix_diag_req: family, protocol, pad, states, inode, show flags, cookie.
_UNIX_REQ = struct.Struct("=BBHIII8x")
# inet_diag_msg up to the inode: family, state, timer, retrans, sport, dport,
# src (16), dst (16), ifindex, cookie (8), expires, rqueue, wqueue, uid, inode.
_INET_MSG = struct.Struct("=BBBB2H16s16sI8xIIIII")
# unix_diag_msg: family, type, state, pad, inode, cookie.
_UNIX_MSG = struct.Struct("=BBBBI8x")


class SocketEntry(NamedTuple):
    """One kernel socket, whatever source it was read from.

    ``state`` is the kernel's state number (TCP states for TCP; -1 where the
    source has none).  ``path`` is only meaningful for UNIX sockets.
    """

    family: int
    protocol: int
    local_address: str
    local_port: int
    remote_address: str
    remote_port: int
    state: int
    inode: int
    path: str


class SockDiag:
    """One NETLINK_SOCK_DIAG socket reused for several dumps.

    >>> with SockDiag() as diag:
    ...     tcp4 = diag.inet(socket.AF_INET, socket.IPPROTO_TCP)
    """

    def __init__(self) -> None:
        self._sock = nl.open_socket(NETLINK_SOCK_DIAG)
        self._seq = 0
        # Addresses repeat a lot (0.0.0.0, 127.0.0.1, ::): format each once.
        self._names: dict[bytes, str] = {}

    def __enter__(self) -> SockDiag:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._sock.close()

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def inet(self, family: int, protocol: int, states: int | None = None) -> list[SocketEntry]:
        """All sockets of ``family`` and ``protocol`` in the ``states`` bit mask.

        ``family`` 0 (TCP only) asks for IPv4 and IPv6 together through the
        older TCPDIAG_GETSOCK request: the kernel then walks its (possibly
        huge) established-connection hash table once instead of once per
        family, which is most of the cost of a TCP dump.
        """
        if states is None:
            states = TCP_ALL_STATES if protocol == socket.IPPROTO_TCP else ALL_STATES
        if family == 0:
            if protocol != socket.IPPROTO_TCP:
                raise ValueError("both families at once is only possible for TCP")
            msg_type, request = TCPDIAG_GETSOCK, _COMPAT_REQ.pack(0, 0, 0, 0, states, 0)
        else:
            msg_type, request = SOCK_DIAG_BY_FAMILY, _INET_REQ.pack(family, protocol, 0, 0, states)
        names = self._names
        ntop = socket.inet_ntop
        unpack = _INET_MSG.unpack_from
        out: list[SocketEntry] = []
        append = out.append
        for _kind, data, start, _end in nl.dump(self._sock, msg_type, request, self._next_seq()):
            fam, state, _t, _r, sport, dport, src, dst, _if, _e, _rq, _wq, _uid, inode = unpack(data, start)
            if fam == AF_INET:
                src = src[:4]
                dst = dst[:4]
            local = names.get(src)
            if local is None:
                local = names[src] = ntop(fam, src)
            remote = names.get(dst)
            if remote is None:
                remote = names[dst] = ntop(fam, dst)
            # Ports are in network byte order inside the native-order struct.
            append(SocketEntry(fam, protocol, local, _swap16(sport), remote, _swap16(dport), state, inode, ""))
        return out

    def unix(self) -> list[SocketEntry]:
        """All UNIX sockets with their bound names (abstract names start with '@')."""
        request = _UNIX_REQ.pack(AF_UNIX, 0, 0, ALL_STATES, 0, UDIAG_SHOW_NAME)
        unpack = _UNIX_MSG.unpack_from
        out: list[SocketEntry] = []
        for _kind, data, start, end in nl.dump(self._sock, SOCK_DIAG_BY_FAMILY, request, self._next_seq()):
            _fam, _type, state, _pad, inode = unpack(data, start)
            path = ""
            for attr, vstart, vend in nl.attributes(data, start + _UNIX_MSG.size, end):
                if attr == UNIX_DIAG_NAME:
                    path = unix_name(data[vstart:vend])
            append_entry = SocketEntry(AF_UNIX, 0, "", 0, "", 0, state, inode, path)
            out.append(append_entry)
        return out


def _swap16(value: int) -> int:
    return ((value & 0xFF) << 8) | (value >> 8)


def unix_name(raw: bytes) -> str:
    """A UNIX socket name as /proc/net/unix prints it.

    Abstract names begin with a NUL byte; the kernel prints every NUL in
    them as '@'.  Path names may carry a trailing NUL terminator.
    """
    if not raw:
        return ""
    if raw[0] == 0:
        return raw.replace(b"\0", b"@").decode("utf-8", "surrogateescape")
    return raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def dump_inet_sockets(listening_only: bool = False) -> list[SocketEntry]:
    """Every TCP and UDP socket (IPv4 and IPv6) over one netlink socket.

    ``listening_only`` asks for TCP sockets in LISTEN state only, which spares
    the kernel its walk of the established-connection table.
    """
    with SockDiag() as diag:
        out = diag.inet(0, socket.IPPROTO_TCP, (1 << TCP_LISTEN) if listening_only else None)
        out.extend(diag.inet(AF_INET, socket.IPPROTO_UDP))
        out.extend(diag.inet(AF_INET6, socket.IPPROTO_UDP))
        return out
