"""routes on Linux: rtnetlink route dump, /proc/net route files as fallback."""

from __future__ import annotations

import logging
import os
import socket
import struct
from collections.abc import Iterator
from typing import Any

from hostql.sql.context import QueryContext
from hostql.tables.linux.net_rtnl import AF_INET, AF_INET6, RouteEntry, index_name

log = logging.getLogger(__name__)

# rtm_type values and the names osquery gives them (everything else: "other").
RTN_UNICAST, RTN_LOCAL, RTN_BROADCAST, RTN_ANYCAST, RTN_UNREACHABLE = 1, 2, 3, 4, 7
ROUTE_TYPES = {RTN_UNICAST: "gateway", RTN_LOCAL: "local", RTN_BROADCAST: "broadcast", RTN_ANYCAST: "anycast"}
# Flags of /proc/net/ipv6_route entries used to recover the route type.
RTF_REJECT = 0x0200
RTF_LOCAL = 0x80000000
_IPV4 = struct.Struct("=I")


def parse_ipv4_routes(text: str, names: dict[str, int]) -> list[RouteEntry]:
    """Parse /proc/net/route (main table only; addresses in host byte order).

    ``names`` maps interface names to indexes so entries look like netlink's.
    """
    out: list[RouteEntry] = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 11:
            continue
        try:
            dst = _IPV4.pack(int(fields[1], 16))
            gateway = _IPV4.pack(int(fields[2], 16))
            prefix = bin(int(fields[7], 16)).count("1")
            metric, mtu = int(fields[6]), int(fields[8])
        except ValueError:
            log.debug("skipping malformed route line %r", line)
            continue
        out.append(RouteEntry(AF_INET, prefix, RTN_UNICAST, 0, dst if prefix else None,
                              gateway if gateway != b"\0\0\0\0" else None, None, names.get(fields[0]),
                              metric or None, mtu or None, None))
    return out


def parse_ipv6_routes(text: str, names: dict[str, int]) -> list[RouteEntry]:
    """Parse /proc/net/ipv6_route: dst len src len next-hop metric ref use flags dev."""
    out: list[RouteEntry] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 10:
            continue
        try:
            dst = bytes.fromhex(fields[0])
            prefix = int(fields[1], 16)
            gateway = bytes.fromhex(fields[4])
            metric, flags = int(fields[5], 16), int(fields[8], 16)
        except ValueError:
            log.debug("skipping malformed ipv6 route line %r", line)
            continue
        rtype = RTN_LOCAL if flags & RTF_LOCAL else RTN_UNREACHABLE if flags & RTF_REJECT else RTN_UNICAST
        out.append(RouteEntry(AF_INET6, prefix, rtype, 0, dst if prefix else None,
                              gateway if any(gateway) else None, None, names.get(fields[9]), metric, None, None))
    return out


def read_proc_routes(root: str = "/") -> list[RouteEntry]:
    """Routes from /proc/net/route and /proc/net/ipv6_route under ``root``."""
    names: dict[str, int] = {}
    sys_net = os.path.join(root, "sys", "class", "net")
    try:
        for name in os.listdir(sys_net):
            try:
                with open(os.path.join(sys_net, name, "ifindex")) as handle:
                    names[name] = int(handle.read())
            except (OSError, ValueError):
                continue
    except OSError:
        pass
    out: list[RouteEntry] = []
    for name, parser in (("route", parse_ipv4_routes), ("ipv6_route", parse_ipv6_routes)):
        try:
            with open(os.path.join(root, "proc", "net", name)) as handle:
                out.extend(parser(handle.read(), names))
        except OSError as exc:
            log.debug("cannot read /proc/net/%s: %s", name, exc)
    return out


def route_row(entry: RouteEntry, names: dict[int, str | None]) -> tuple[Any, ...]:
    """A routes row from a route record, with osquery's conventions."""
    family = socket.AF_INET if entry.family == AF_INET else socket.AF_INET6
    if entry.destination is not None:
        destination = socket.inet_ntop(family, entry.destination)
        # osquery leaves host routes (/32, /128) with netmask 0.
        netmask = entry.dst_len if entry.dst_len not in (32, 128) else 0
    else:
        destination = "0.0.0.0" if entry.family == AF_INET else "::"
        netmask = entry.dst_len
    return (
        destination,
        netmask,
        socket.inet_ntop(family, entry.gateway) if entry.gateway else None,
        socket.inet_ntop(family, entry.prefsrc) if entry.prefsrc else None,
        entry.flags,
        index_name(entry.oif, names),
        entry.mtu or 0,
        _signed32(entry.priority or 0),
        ROUTE_TYPES.get(entry.type, "other"),
        entry.hoplimit or 0,
    )


def _signed32(value: int) -> int:
    # osquery reads the metric as a C int, so 0xffffffff shows as -1.
    return value - (1 << 32) if value >= 1 << 31 else value


def gen_routes(ctx: QueryContext) -> Iterator[tuple[Any, ...]]:
    from hostql.tables.linux.net_netlink import NetlinkError
    from hostql.tables.linux.net_rtnl import dump_routes

    try:
        entries = dump_routes()
    except NetlinkError as exc:
        log.debug("route netlink dump failed (%s); reading /proc/net route files", exc)
        entries = read_proc_routes()
    names: dict[int, str | None] = {}
    for entry in entries:
        yield route_row(entry, names)
