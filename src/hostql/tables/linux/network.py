"""interface_addresses, interface_details and interface_ipv6 on Linux.

Addresses come from an rtnetlink dump (what getifaddrs(3) reads); link
properties and counters from /sys/class/net and /proc/net/dev, which take a
``root`` so they can be tested on a fake tree.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from typing import Any

from hostql.sql.context import QueryContext

log = logging.getLogger(__name__)

IFF_BROADCAST = 0x2
IFF_UP = 0x1
IFF_RUNNING = 0x40
IFF_LOWER_UP = 0x10000
IFF_DORMANT = 0x20000
BLANK_MAC = "00:00:00:00:00:00"
SPEED_UNKNOWN = 0xFFFFFFFF


def _read(path: str) -> str | None:
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError:
        return None


def _read_int(path: str, base: int = 10) -> int | None:
    text = _read(path)
    if text is None:
        return None
    try:
        return int(text, base)
    except ValueError:
        return None


def list_interfaces(root: str = "/") -> list[str]:
    """Interface names under /sys/class/net, in interface index order."""
    base = os.path.join(root, "sys", "class", "net")
    try:
        names = os.listdir(base)
    except OSError:
        return []
    indexed = [(_read_int(os.path.join(base, n, "ifindex")) or 0, n) for n in names]
    return [n for _, n in sorted(indexed)]


def read_net_dev(root: str = "/") -> dict[str, list[int]]:
    """Counters per interface from /proc/net/dev (8 receive then 8 transmit)."""
    text = _read(os.path.join(root, "proc", "net", "dev"))
    counters: dict[str, list[int]] = {}
    for line in (text or "").splitlines()[2:]:
        name, sep, rest = line.partition(":")
        if not sep:
            continue
        try:
            counters[name.strip()] = [int(x) for x in rest.split()]
        except ValueError:
            continue
    return counters


def link_flags(root: str, name: str) -> int:
    """The flags getifaddrs reports: sysfs flags plus the operational bits.

    /sys/class/net/<if>/flags holds the configured flags only; the kernel
    adds RUNNING, LOWER_UP and DORMANT from the carrier and operstate.
    """
    base = os.path.join(root, "sys", "class", "net", name)
    flags = _read_int(os.path.join(base, "flags"), 16) or 0
    if flags & IFF_UP:
        operstate = _read(os.path.join(base, "operstate"))
        if operstate in ("up", "unknown"):
            flags |= IFF_RUNNING
        if operstate == "dormant":
            flags |= IFF_DORMANT
        if _read(os.path.join(base, "carrier")) == "1":
            flags |= IFF_LOWER_UP
    return flags


def _mac(text: str | None) -> str:
    # osquery prints the first six bytes of the hardware address, zeros when absent.
    if not text:
        return BLANK_MAC
    octets = text.split(":")[:6]
    octets += ["00"] * (6 - len(octets))
    return ":".join(octets)


def _pci_slot(name: str) -> str:
    """Bus address the driver reports through ethtool (-1 when it has none)."""
    import array
    import fcntl
    import struct

    siocethtool, ethtool_gdrvinfo = 0x8946, 0x3
    # struct ethtool_drvinfo: cmd, driver[32], version[32], fw_version[32],
    # bus_info[32], erom_version[32], reserved2[12], five u32 counters.
    buf = array.array("B", struct.pack("=I", ethtool_gdrvinfo) + bytes(192))
    address, _ = buf.buffer_info()
    request = struct.pack("16sP", name.encode()[:15], address)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            fcntl.ioctl(sock.fileno(), siocethtool, request)
    except OSError:
        return "-1"
    return bytes(buf[4 + 96:4 + 128]).split(b"\0", 1)[0].decode(errors="replace")


def details_rows(ctx: QueryContext, root: str = "/") -> Iterator[tuple[Any, ...]]:
    base = os.path.join(root, "sys", "class", "net")
    counters = read_net_dev(root)
    want_speed = ctx.is_used("link_speed")
    want_pci = ctx.is_used("pci_slot") and root == "/"
    windows: tuple[None, ...] = (None,) * 17
    for name in list_interfaces(root):
        ifdir = os.path.join(base, name)
        stats = counters.get(name, [])
        if len(stats) < 16:
            stats = [0] * 16
        speed = 0
        if want_speed:
            value = _read_int(os.path.join(ifdir, "speed"))
            if value is not None and 0 < value < SPEED_UNKNOWN:
                speed = value
        yield (
            name,
            _mac(_read(os.path.join(ifdir, "address"))),
            # osquery stores the ARPHRD type through an unsigned char: loopback (772) shows as 4.
            (_read_int(os.path.join(ifdir, "type")) or 0) & 0xFF,
            _read_int(os.path.join(ifdir, "mtu")) or 0,
            0,  # SIOCGIFMETRIC always answers 0 on Linux
            link_flags(root, name),
            stats[1], stats[9], stats[0], stats[8], stats[2], stats[10], stats[3], stats[11], stats[13],
            -1,  # Linux keeps no last-change time for interfaces
            speed,
            (_pci_slot(name) if want_pci else None),
            *windows,
        )


def gen_interface_details(ctx: QueryContext) -> Iterator[tuple[Any, ...]]:
    yield from details_rows(ctx)


def _mask(family: int, prefix: int) -> str:
    bits = 32 if family == socket.AF_INET else 128
    value = ((1 << bits) - 1) ^ ((1 << (bits - prefix)) - 1) if prefix else 0
    return socket.inet_ntop(family, value.to_bytes(bits // 8, "big"))


def _address_text(family: int, raw: bytes, name: str | None) -> str:
    text = socket.inet_ntop(family, raw)
    # getnameinfo adds the scope to link-local IPv6 addresses, as glibc fills it.
    if family == socket.AF_INET6 and name and (
            (raw[0] == 0xFE and raw[1] & 0xC0 == 0x80) or (raw[0] == 0xFF and raw[1] & 0x0F == 0x2)):
        text += "%" + name
    return text


def gen_interface_addresses(ctx: QueryContext, root: str = "/") -> Iterator[tuple[Any, ...]]:
    from hostql.tables.linux.net_netlink import NetlinkError
    from hostql.tables.linux.net_rtnl import dump_addresses, index_name

    try:
        entries = dump_addresses()
    except NetlinkError as exc:
        log.debug("address netlink dump failed: %s; interface_addresses has no rows", exc)
        return
    names: dict[int, str | None] = {}
    broadcast_capable: dict[str, bool] = {}
    for entry in entries:
        family = socket.AF_INET if entry.family == 2 else socket.AF_INET6
        link = index_name(entry.ifindex, names)
        name = entry.label if entry.family == 2 and entry.label else link
        # glibc: with IFA_LOCAL, IFA_LOCAL is the address and IFA_ADDRESS the
        # other end; IFA_BROADCAST, when present, takes that slot.
        address: bytes | None
        other: bytes | None
        if entry.local is not None:
            address, other = entry.local, entry.address
        else:
            address, other = entry.address, None
        if entry.broadcast is not None:
            other = entry.broadcast
        if address is None:
            continue
        broadcast = point_to_point = None
        if other is not None and link is not None:
            if link not in broadcast_capable:
                flags = _read_int(os.path.join(root, "sys", "class", "net", link, "flags"), 16) or 0
                broadcast_capable[link] = bool(flags & IFF_BROADCAST)
            other_text = _address_text(family, other, link)
            if broadcast_capable[link]:
                broadcast = other_text
            else:
                point_to_point = other_text
        yield (name, _address_text(family, address, link), _mask(family, entry.prefixlen), broadcast,
               point_to_point, "unknown", None)


def _ipv6_setting(root: str, interface: str, key: str) -> int:
    value = _read_int(os.path.join(root, "proc", "sys", "net", "ipv6", "conf", interface, key))
    return -1 if value is None else value


def ipv6_rows(root: str = "/") -> Iterator[tuple[str, int, int, int, int]]:
    """One row per interface; effective values combine per-interface and global sysctls."""
    redirect_all = _ipv6_setting(root, "all", "accept_redirects")
    for name in list_interfaces(root):
        forwarding = _ipv6_setting(root, name, "forwarding")
        redirect = _ipv6_setting(root, name, "accept_redirects")
        # Redirects: both settings must allow them on a router, either on a host.
        redirect_accept = int(bool(redirect_all and redirect) if forwarding else bool(redirect_all or redirect))
        accept_ra = _ipv6_setting(root, name, "accept_ra")
        # accept_ra=2 accepts even when forwarding; 1 only on a host.
        rtadv = 1 if accept_ra == 2 else int(bool(accept_ra) and not forwarding)
        yield name, _ipv6_setting(root, name, "hop_limit"), forwarding, redirect_accept, rtadv


def gen_interface_ipv6(ctx: QueryContext) -> Iterator[tuple[str, int, int, int, int]]:
    yield from ipv6_rows()
