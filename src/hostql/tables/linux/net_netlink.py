"""Netlink dump requests over the stdlib ``socket`` module.

One job: send a dump request on a netlink socket and hand back each reply
message in place (type, buffer, payload offsets), so callers parse the
payloads with ``struct.unpack_from`` without copying.  pyroute2 would do this
too but costs far more to import than a whole table scan.
"""

from __future__ import annotations

import errno
import socket
import struct
from collections.abc import Iterator

NLMSG_HDR = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
NLA_HDR = struct.Struct("=HH")  # attribute length, attribute type
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300  # NLM_F_ROOT | NLM_F_MATCH

# Large enough that the kernel packs many messages per datagram (fewer syscalls).
_RECV_SIZE = 1 << 17
_TIMEOUT = 2.0


class NetlinkError(OSError):
    """The kernel refused or does not support the request."""


def open_socket(protocol: int) -> socket.socket:
    """A bound netlink socket; raises ``NetlinkError`` if netlink is unavailable."""
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, protocol)
    except (OSError, AttributeError) as exc:
        raise NetlinkError(getattr(exc, "errno", errno.EAFNOSUPPORT), f"netlink unavailable: {exc}") from exc
    try:
        sock.settimeout(_TIMEOUT)
        sock.bind((0, 0))
    except OSError as exc:
        sock.close()
        raise NetlinkError(exc.errno, f"netlink bind failed: {exc}") from exc
    return sock


def dump(sock: socket.socket, msg_type: int, payload: bytes, seq: int = 1
         ) -> Iterator[tuple[int, bytes, int, int]]:
    """Send one dump request; yield ``(type, buffer, start, end)`` per reply.

    ``buffer[start:end]`` is the message payload (after the netlink header).
    """
    header = NLMSG_HDR.pack(NLMSG_HDR.size + len(payload), msg_type, NLM_F_REQUEST | NLM_F_DUMP, seq, 0)
    try:
        sock.send(header + payload)
    except OSError as exc:
        raise NetlinkError(exc.errno, f"netlink send failed: {exc}") from exc
    unpack = NLMSG_HDR.unpack_from
    hsize = NLMSG_HDR.size
    while True:
        try:
            data = sock.recv(_RECV_SIZE)
        except OSError as exc:  # includes socket.timeout
            raise NetlinkError(getattr(exc, "errno", None) or errno.ETIMEDOUT, f"netlink recv failed: {exc}") from exc
        if not data:
            raise NetlinkError(errno.EIO, "netlink closed")
        offset = 0
        size = len(data)
        while offset + hsize <= size:
            length, kind, _flags, rseq, _port = unpack(data, offset)
            if length < hsize:
                raise NetlinkError(errno.EIO, "malformed netlink message")
            if rseq != seq:  # a stray reply to an earlier request: not ours
                offset += (length + 3) & ~3
                continue
            if kind == NLMSG_DONE:
                return
            if kind == NLMSG_ERROR:
                (code,) = struct.unpack_from("=i", data, offset + hsize)
                if code == 0:  # an acknowledgement, not an error
                    return
                raise NetlinkError(-code, f"netlink error {-code}: {errno.errorcode.get(-code, '?')}")
            yield kind, data, offset + hsize, offset + length
            offset += (length + 3) & ~3


def attributes(data: bytes, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """Yield ``(type, value_start, value_end)`` for each attribute in a range."""
    unpack = NLA_HDR.unpack_from
    while start + 4 <= end:
        length, kind = unpack(data, start)
        if length < 4:
            return
        yield kind & 0x3FFF, start + 4, start + length  # drop NESTED/BYTEORDER bits
        start += (length + 3) & ~3
