"""rtnetlink dumps of interface addresses and routes (NETLINK_ROUTE).

Only what the network tables need: the address and route messages decoded
into small records.  Interface indexes are named with ``socket.if_indextoname``.
"""

from __future__ import annotations

import socket
import struct
from typing import NamedTuple

from hostql.tables.linux import net_netlink as nl

NETLINK_ROUTE = 0
RTM_NEWADDR = 20
RTM_GETADDR = 22
RTM_NEWROUTE = 24
RTM_GETROUTE = 26
AF_INET = 2
AF_INET6 = 10

IFA_ADDRESS, IFA_LOCAL, IFA_LABEL, IFA_BROADCAST = 1, 2, 3, 4
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_PREFSRC, RTA_METRICS = 1, 4, 5, 6, 7, 8
RTAX_MTU, RTAX_HOPLIMIT = 2, 10

_IFADDRMSG = struct.Struct("=BBBBI")
_RTMSG = struct.Struct("=BBBBBBBBI")
_U32 = struct.Struct("=I")


class AddressEntry(NamedTuple):
    family: int
    prefixlen: int
    ifindex: int
    address: bytes | None  # IFA_ADDRESS
    local: bytes | None  # IFA_LOCAL (present on IPv4 and point-to-point links)
    broadcast: bytes | None
    label: str | None


class RouteEntry(NamedTuple):
    family: int
    dst_len: int
    type: int
    flags: int
    destination: bytes | None
    gateway: bytes | None
    prefsrc: bytes | None
    oif: int | None
    priority: int | None
    mtu: int | None
    hoplimit: int | None


def dump_addresses() -> list[AddressEntry]:
    """Every IPv4 and IPv6 address, in the kernel's order (IPv4 first)."""
    out: list[AddressEntry] = []
    sock = nl.open_socket(NETLINK_ROUTE)
    try:
        for kind, data, start, end in nl.dump(sock, RTM_GETADDR, _IFADDRMSG.pack(0, 0, 0, 0, 0)):
            if kind != RTM_NEWADDR:
                continue
            family, prefixlen, _flags, _scope, index = _IFADDRMSG.unpack_from(data, start)
            if family not in (AF_INET, AF_INET6):
                continue
            values: dict[int, bytes] = {}
            for attr, vstart, vend in nl.attributes(data, start + _IFADDRMSG.size, end):
                if attr in (IFA_ADDRESS, IFA_LOCAL, IFA_LABEL, IFA_BROADCAST):
                    values[attr] = data[vstart:vend]
            label = values.get(IFA_LABEL)
            out.append(AddressEntry(family, prefixlen, index, values.get(IFA_ADDRESS), values.get(IFA_LOCAL),
                                    values.get(IFA_BROADCAST),
                                    label.split(b"\0", 1)[0].decode() if label is not None else None))
    finally:
        sock.close()
    return out


def dump_routes() -> list[RouteEntry]:
    """Every IPv4 and IPv6 route of every routing table."""
    out: list[RouteEntry] = []
    sock = nl.open_socket(NETLINK_ROUTE)
    try:
        for kind, data, start, end in nl.dump(sock, RTM_GETROUTE, _RTMSG.pack(0, 0, 0, 0, 0, 0, 0, 0, 0)):
            if kind != RTM_NEWROUTE:
                continue
            family, dst_len, _src_len, _tos, _table, _proto, _scope, rtype, flags = _RTMSG.unpack_from(data, start)
            if family not in (AF_INET, AF_INET6):
                continue  # multicast routing families have no place in this table
            dst = gateway = prefsrc = None
            oif = priority = mtu = hoplimit = None
            for attr, vstart, vend in nl.attributes(data, start + _RTMSG.size, end):
                if attr == RTA_DST:
                    dst = data[vstart:vend]
                elif attr == RTA_GATEWAY:
                    gateway = data[vstart:vend]
                elif attr == RTA_PREFSRC:
                    prefsrc = data[vstart:vend]
                elif attr == RTA_OIF:
                    oif = _U32.unpack_from(data, vstart)[0]
                elif attr == RTA_PRIORITY:
                    priority = _U32.unpack_from(data, vstart)[0]
                elif attr == RTA_METRICS:
                    for metric, mstart, _mend in nl.attributes(data, vstart, vend):
                        if metric == RTAX_MTU:
                            mtu = _U32.unpack_from(data, mstart)[0]
                        elif metric == RTAX_HOPLIMIT:
                            hoplimit = _U32.unpack_from(data, mstart)[0]
            out.append(RouteEntry(family, dst_len, rtype, flags, dst, gateway, prefsrc, oif, priority, mtu,
                                  hoplimit))
    finally:
        sock.close()
    return out


def index_name(index: int | None, cache: dict[int, str | None]) -> str | None:
    """Interface name for an index (None when it vanished meanwhile)."""
    if index is None:
        return None
    if index not in cache:
        try:
            cache[index] = socket.if_indextoname(index)
        except OSError:
            cache[index] = None
    return cache[index]
