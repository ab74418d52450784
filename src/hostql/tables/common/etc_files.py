"""Readers of the name-service files: hosts, services, protocols and resolv.conf.

The files share one shape (whitespace-separated fields, ``#`` comments) and one
location question, so their parsers and generators live together.  Every reader
takes ``root`` so tests can point it at a fake tree, and so ``pid_with_namespace``
can read a container's files through ``/proc/<pid>/root``.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

from hostql.sql.context import QueryContext
from hostql.tables.common.rootfs import read_text

log = logging.getLogger(__name__)

# Windows keeps these files under the system root, and names the protocols file
# "protocol"; it also has a second hosts file written by Internet Connection Sharing.
_WINDOWS_NAMES = {"hosts": ("hosts", "hosts.ics"), "services": ("services",), "protocols": ("protocol",)}


def etc_paths(kind: str, root: str = "/", windows: bool | None = None) -> list[str]:
    """Files to read for ``kind`` (hosts, services, protocols, resolv.conf), in order."""
    if windows is None:
        windows = sys.platform == "win32"
    if windows:
        # Windows environment names are case-insensitive; SYSTEMROOT is %SystemRoot%.
        system_root = os.environ.get("SYSTEMROOT", r"C:\Windows")
        base = os.path.join(system_root, "System32", "drivers", "etc")
        return [os.path.join(base, name) for name in _WINDOWS_NAMES.get(kind, (kind,))]
    return [os.path.join(root, "etc", kind)]


# --- hosts -------------------------------------------------------------------


def parse_hosts(text: str) -> list[tuple[str, str | None]]:
    """(address, hostnames) per entry; hostnames joined by one space, None when absent."""
    rows: list[tuple[str, str | None]] = []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        rows.append((fields[0], " ".join(fields[1:]) if len(fields) > 1 else None))
    return rows


# --- services and protocols --------------------------------------------------


def _split_comment(line: str) -> tuple[list[str], str | None]:
    """Fields before the first ``#``, and the comment pieces after it.

    Several ``#`` on a line are kept as separate pieces joined by `` # ``, so
    the text survives with its separators but without stray whitespace.
    """
    head, *rest = line.split("#")
    pieces = [p.strip() for p in rest if p.strip()]
    return head.split(), " # ".join(pieces) if pieces else None


def parse_services(text: str) -> list[tuple[str, int, str, str, str | None]]:
    """(name, port, protocol, aliases, comment) per service line."""
    rows: list[tuple[str, int, str, str, str | None]] = []
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        fields, comment = _split_comment(line)
        if len(fields) < 2:
            continue
        port_text, slash, protocol = fields[1].partition("/")
        if not slash or "/" in protocol or not port_text.isdigit():
            continue
        rows.append((fields[0], int(port_text), protocol, " ".join(fields[2:]), comment))
    return rows


def parse_protocols(text: str) -> list[tuple[str, int, str | None, str | None]]:
    """(name, number, alias, comment) per protocol line."""
    rows: list[tuple[str, int, str | None, str | None]] = []
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        fields, comment = _split_comment(line)
        if len(fields) < 2 or not fields[1].isdigit():
            continue
        rows.append((fields[0], int(fields[1]), fields[2] if len(fields) > 2 else None, comment))
    return rows


# --- resolv.conf ---------------------------------------------------------------

# glibc's resolver limits and option bits (resolv.h); options are what res_init()
# leaves in _res.options, which is what osquery reports.
MAXNS = 3
MAXDNSRCH = 6
MAXRESOLVSORT = 10
RES_INIT = 0x1
RES_DEBUG = 0x2
RES_USEVC = 0x8
RES_RECURSE = 0x40
RES_DEFNAMES = 0x80
RES_DNSRCH = 0x200
RES_ROTATE = 0x4000
RES_USE_EDNS0 = 0x100000
RES_SNGLKUP = 0x200000
RES_SNGLKUPREOP = 0x400000
RES_NOTLDQUERY = 0x1000000
RES_NORELOAD = 0x2000000
RES_TRUSTAD = 0x4000000
RES_NOAAAA = 0x8000000
RES_DEFAULT_OPTIONS = RES_INIT | RES_RECURSE | RES_DEFNAMES | RES_DNSRCH

# Matched by prefix in this order, as glibc does ("single-request-reopen" first).
_OPTION_FLAGS: tuple[tuple[str, int], ...] = (
    ("rotate", RES_ROTATE),
    ("edns0", RES_USE_EDNS0),
    ("single-request-reopen", RES_SNGLKUPREOP),
    ("single-request", RES_SNGLKUP),
    ("no_tld_query", RES_NOTLDQUERY),
    ("no-tld-query", RES_NOTLDQUERY),
    ("no-reload", RES_NORELOAD),
    ("use-vc", RES_USEVC),
    ("trust-ad", RES_TRUSTAD),
    ("no-aaaa", RES_NOAAAA),
    ("debug", RES_DEBUG),
)


@dataclass(slots=True)
class ResolverConfig:
    nameservers: list[str] = field(default_factory=list)
    search: list[str] = field(default_factory=list)
    sortlist: list[tuple[str, str]] = field(default_factory=list)
    options: int = RES_DEFAULT_OPTIONS


def _option_bits(tokens: list[str]) -> int:
    bits = 0
    for token in tokens:
        for name, flag in _OPTION_FLAGS:
            if token.startswith(name):
                bits |= flag
                break
    return bits


def _mask_text(mask: int) -> str:
    """Prefix length for a contiguous mask, else the dotted mask as written."""
    inverted = ~mask & 0xFFFFFFFF
    if inverted & (inverted + 1) == 0:
        return str(32 - inverted.bit_length())
    return socket.inet_ntoa(mask.to_bytes(4, "big"))


def _classful_mask(address: int) -> int:
    # glibc's net_mask(): the historic class of the address decides the mask.
    if address >> 31 == 0:
        return 0xFF000000
    if address >> 30 == 0b10:
        return 0xFFFF0000
    return 0xFFFFFF00


def _parse_sort_entry(entry: str) -> tuple[str, str] | None:
    cut = len(entry)
    for sep in "/&;":
        pos = entry.find(sep)
        if pos != -1:
            cut = min(cut, pos)
    try:
        packed = socket.inet_aton(entry[:cut])
    except OSError:
        return None
    address = int.from_bytes(packed, "big")
    mask = _classful_mask(address)
    if cut < len(entry) and entry[cut] in "/&":
        try:
            mask = int.from_bytes(socket.inet_aton(entry[cut + 1 :]), "big")
        except OSError:
            pass
    return socket.inet_ntoa(packed), _mask_text(mask)


def _valid_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _keyword(line: str, name: str) -> bool:
    # glibc matches the keyword followed by a space or tab.
    return line.startswith(name) and len(line) > len(name) and line[len(name)] in " \t"


def parse_resolv_conf(text: str, hostname: str | None = None) -> ResolverConfig:
    """The resolver state glibc's res_init() builds from ``text``.

    Differences kept on purpose: no loopback server is invented when the file
    names none, and the LOCALDOMAIN/RES_OPTIONS environment of this process is
    ignored (it is not the host's configuration).  Without search/domain lines
    the domain part of ``hostname`` becomes the search list, as in glibc.
    """
    config = ResolverConfig()
    explicit_search = False
    for line in text.splitlines():
        if not line or line[0] in ";#":
            continue
        fields = line.split()
        if _keyword(line, "domain") and len(fields) > 1:
            config.search = [fields[1]]
            explicit_search = True
        elif _keyword(line, "search") and len(fields) > 1:
            config.search = fields[1 : 1 + MAXDNSRCH]
            explicit_search = True
        elif _keyword(line, "nameserver") and len(fields) > 1:
            if len(config.nameservers) < MAXNS and _valid_ip(fields[1]):
                config.nameservers.append(fields[1])
        elif _keyword(line, "sortlist"):
            for entry in fields[1:]:
                parsed = _parse_sort_entry(entry)
                if parsed and len(config.sortlist) < MAXRESOLVSORT:
                    config.sortlist.append(parsed)
        elif _keyword(line, "options"):
            config.options |= _option_bits(fields[1:])
    if not explicit_search and hostname and "." in hostname:
        config.search = [hostname.split(".", 1)[1]]
    return config


def resolver_rows(config: ResolverConfig) -> Iterator[tuple[int, str, str, str | None, int]]:
    """(id, type, address, netmask, options) rows; ids count within each type."""
    for i, server in enumerate(config.nameservers):
        bits = 128 if ":" in server else 32
        yield i, "nameserver", server, str(bits), config.options
    for i, (address, mask) in enumerate(config.sortlist):
        yield i, "sortlist", address, mask, config.options
    for i, domain in enumerate(config.search):
        yield i, "search", domain, None, config.options


# --- generators ------------------------------------------------------------------


def _views(ctx: QueryContext) -> Iterator[tuple[str, int]]:
    """(root, pid_with_namespace) pairs: the host, or each requested process's view."""
    wanted = ctx.equals("pid_with_namespace")
    if not wanted:
        yield "/", 0
        return
    for value in wanted:
        try:
            pid = int(value)
        except (TypeError, ValueError):
            continue
        root = f"/proc/{pid}/root"
        if pid <= 0 or not os.path.isdir(root):
            log.debug("no mount namespace view for pid %s", value)
            continue
        yield root, pid


def _read_all(kind: str, root: str, windows: bool | None) -> Iterator[str]:
    for path in etc_paths(kind, root, windows):
        text = read_text(path)
        if text is not None:
            yield text


def read_hosts(root: str = "/", windows: bool | None = None) -> list[tuple[str, str | None]]:
    return [row for text in _read_all("hosts", root, windows) for row in parse_hosts(text)]


def read_services(root: str = "/", windows: bool | None = None) -> list[tuple[str, int, str, str, str | None]]:
    return [row for text in _read_all("services", root, windows) for row in parse_services(text)]


def read_protocols(root: str = "/", windows: bool | None = None) -> list[tuple[str, int, str | None, str | None]]:
    return [row for text in _read_all("protocols", root, windows) for row in parse_protocols(text)]


def gen_etc_hosts(ctx: QueryContext) -> Iterator[tuple[str, str | None, int]]:
    for root, pid in _views(ctx):
        for address, names in read_hosts(root):
            yield address, names, pid


def gen_etc_services(ctx: QueryContext) -> Iterator[tuple[str, int, str, str, str | None]]:
    yield from read_services()


def gen_etc_protocols(ctx: QueryContext) -> Iterator[tuple[str, int, str | None, str | None]]:
    yield from read_protocols()


def read_resolvers(root: str = "/", hostname: str | None = None) -> ResolverConfig | None:
    """The resolver configuration under ``root``, or None without a resolv.conf."""
    text = read_text(os.path.join(root, "etc", "resolv.conf"))
    return None if text is None else parse_resolv_conf(text, hostname)


def gen_dns_resolvers(ctx: QueryContext) -> Iterator[tuple[int, str, str, str | None, int, int]]:
    for root, pid in _views(ctx):
        # Another namespace's host name is not visible from its files; only the
        # host view gets glibc's host-name search-domain default.
        config = read_resolvers(root, socket.gethostname() if pid == 0 else None)
        if config is None:
            continue
        for row in resolver_rows(config):
            yield (*row, pid)
