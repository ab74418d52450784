"""arp_cache on Linux: the IPv4 neighbour table in /proc/net/arp."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

from hostql.sql.context import QueryContext

log = logging.getLogger(__name__)

# Flags ATF_COM | ATF_PERM: a completed, static entry.
_PERMANENT_FLAGS = "0x6"


def parse_arp(text: str) -> list[tuple[str, str, str, str]]:
    """Rows (address, mac, interface, permanent) from /proc/net/arp content.

    Columns: IP address, HW type, Flags, HW address, Mask, Device.
    """
    rows: list[tuple[str, str, str, str]] = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) != 6:
            continue
        rows.append((fields[0], fields[3], fields[5], "1" if fields[2] == _PERMANENT_FLAGS else "0"))
    return rows


def read_arp(root: str = "/") -> list[tuple[str, str, str, str]]:
    path = os.path.join(root, "proc", "net", "arp")
    try:
        with open(path) as handle:
            return parse_arp(handle.read())
    except OSError as exc:
        log.debug("cannot read %s: %s", path, exc)
        return []


def gen_arp_cache(ctx: QueryContext) -> Iterator[tuple[str, str, str, str]]:
    yield from read_arp()
