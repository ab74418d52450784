"""Socket tables from /proc/<pid>/net text files.

Used for network namespaces other than ours (netlink only sees the caller's
namespace), for the protocols inet_diag does not cover here (raw, ping,
UDP-Lite, packet sockets), and as the fallback when netlink is unavailable.
"""

from __future__ import annotations

import logging
import os
import struct

from hostql.tables.linux.sockdiag import AF_INET, AF_INET6, AF_UNIX, SocketEntry

log = logging.getLogger(__name__)

AF_PACKET = 17
IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_UDPLITE = 136
IPPROTO_RAW = 255

# The /proc/net file name of each protocol osquery reports (IPv6 adds "6").
PROTOCOL_FILES: dict[int, str] = {
    IPPROTO_ICMP: "icmp",
    IPPROTO_TCP: "tcp",
    IPPROTO_UDP: "udp",
    IPPROTO_UDPLITE: "udplite",
    IPPROTO_RAW: "raw",
}

_IPV4 = struct.Struct("=I")
_IPV6 = struct.Struct("=4I")


def net_dir(root: str = "/", pid: int | None = None) -> str:
    """``/proc/net`` (our namespace) or ``/proc/<pid>/net`` under ``root``."""
    return os.path.join(root, "proc", "net") if pid is None else os.path.join(root, "proc", str(pid), "net")


def decode_address(text: str, family: int) -> str:
    """An address as /proc/net prints it: 32-bit words in host byte order."""
    import socket

    if family == AF_INET:
        return socket.inet_ntop(socket.AF_INET, _IPV4.pack(int(text, 16)))
    words = [int(text[i:i + 8], 16) for i in range(0, 32, 8)]
    return socket.inet_ntop(socket.AF_INET6, _IPV6.pack(*words))


def parse_inet(text: str, family: int, protocol: int) -> list[SocketEntry]:
    """Parse /proc/net/{tcp,udp,raw,icmp,udplite}[6] content."""
    out: list[SocketEntry] = []
    cache: dict[str, str] = {}
    lines = text.splitlines()
    for line in lines[1:]:
        fields = line.split()
        if len(fields) < 10:
            continue
        local, _, lport = fields[1].partition(":")
        remote, _, rport = fields[2].partition(":")
        try:
            laddr = cache.get(local) or cache.setdefault(local, decode_address(local, family))
            raddr = cache.get(remote) or cache.setdefault(remote, decode_address(remote, family))
            out.append(SocketEntry(family, protocol, laddr, int(lport, 16), raddr, int(rport, 16),
                                   int(fields[3], 16), int(fields[9]), ""))
        except (ValueError, OSError):
            log.debug("skipping malformed socket line %r", line)
    return out


def parse_unix(text: str) -> list[SocketEntry]:
    """Parse /proc/net/unix: Num RefCount Protocol Flags Type St Inode [Path]."""
    out: list[SocketEntry] = []
    for line in text.splitlines()[1:]:
        fields = line.split(None, 7)
        if len(fields) < 7:
            continue
        try:
            out.append(SocketEntry(AF_UNIX, int(fields[2], 16), "", 0, "", 0, int(fields[5], 16),
                                   int(fields[6]), fields[7] if len(fields) > 7 else ""))
        except ValueError:
            log.debug("skipping malformed unix socket line %r", line)
    return out


def parse_packet(text: str) -> list[SocketEntry]:
    """Parse /proc/net/packet: sk RefCnt Type Proto Iface R Rmem User Inode."""
    out: list[SocketEntry] = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 9:
            continue
        try:
            out.append(SocketEntry(AF_PACKET, int(fields[3], 16), "", 0, "", 0, -1, int(fields[8]), ""))
        except ValueError:
            log.debug("skipping malformed packet socket line %r", line)
    return out


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            return handle.read()
    except OSError as exc:
        log.debug("cannot read %s: %s", path, exc)
        return None


def read_inet(directory: str, family: int, protocol: int) -> list[SocketEntry]:
    name = PROTOCOL_FILES[protocol] + ("6" if family == AF_INET6 else "")
    text = _read(os.path.join(directory, name))
    return parse_inet(text, family, protocol) if text else []


def read_unix(directory: str) -> list[SocketEntry]:
    text = _read(os.path.join(directory, "unix"))
    return parse_unix(text) if text else []


def read_packet(directory: str) -> list[SocketEntry]:
    text = _read(os.path.join(directory, "packet"))
    return parse_packet(text) if text else []


def read_all(directory: str, protocols: tuple[int, ...] = tuple(PROTOCOL_FILES),
             unix: bool = True, packet: bool = True) -> list[SocketEntry]:
    """Every socket listed under one ``net`` directory, in osquery's order."""
    out: list[SocketEntry] = []
    for protocol in protocols:
        out.extend(read_inet(directory, AF_INET, protocol))
        out.extend(read_inet(directory, AF_INET6, protocol))
    if unix:
        out.extend(read_unix(directory))
    if packet:
        out.extend(read_packet(directory))
    return out
