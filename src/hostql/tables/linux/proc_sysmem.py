"""System-wide memory tables on Linux: memory_map and shared_memory."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

from hostql.sql.context import QueryContext
from hostql.tables.common.rootfs import read_text

log = logging.getLogger(__name__)

# ipc_perm.mode flags the kernel keeps next to the permission bits.
SHM_DEST = 0o1000
SHM_LOCKED = 0o2000


def firmware_memmap(root: str = "/") -> list[tuple[str, str, str]]:
    """(type, start, end) per region of /sys/firmware/memmap, osquery's source."""
    base = os.path.join(root, "sys", "firmware", "memmap")
    try:
        names = sorted((n for n in os.listdir(base) if n.isdigit()), key=int)
    except OSError as exc:
        log.debug("no firmware memory map at %s: %s", base, exc)
        return []
    regions = []
    for name in names:
        values = [read_text(os.path.join(base, name, part)) for part in ("type", "start", "end")]
        kind, start, end = (v.strip() if v is not None else None for v in values)
        if kind is None or start is None or end is None:
            continue
        regions.append((kind, start, end))
    return regions


def _hex(digits: str) -> str:
    """iomem's zero-padded hex in the firmware map's style: 0x9fbff."""
    return "0x" + (digits.lstrip("0").lower() or "0")


def iomem_top_level(text: str) -> list[tuple[str, str, str]]:
    """(name, start, end) of the unindented lines of /proc/iomem.

    Unprivileged readers see every address as zero; such lines carry no
    information and are dropped.
    """
    regions = []
    for line in text.splitlines():
        if not line or line[0].isspace():
            continue
        span, sep, name = line.partition(" : ")
        start, dash, end = span.strip().partition("-")
        if not sep or not dash:
            continue
        try:
            if int(start, 16) == 0 and int(end, 16) == 0:
                continue
        except ValueError:
            continue
        regions.append((name.strip(), _hex(start), _hex(end)))
    return regions


def memory_map_rows(root: str = "/") -> list[tuple[str, str, str]]:
    regions = firmware_memmap(root)
    if regions:
        return regions
    # Without the firmware map (some virtual machines, containers) the
    # top level of /proc/iomem describes the same physical layout.
    text = read_text(os.path.join(root, "proc", "iomem"))
    return iomem_top_level(text) if text else []


def gen_memory_map(ctx: QueryContext) -> list[tuple[str, str, str]]:
    return memory_map_rows()


def parse_sysvipc_shm(text: str) -> Iterator[tuple[Any, ...]]:
    """Rows of shared_memory from /proc/sysvipc/shm, columns found by header name."""
    lines = text.splitlines()
    if not lines:
        return
    header = lines[0].split()
    for line in lines[1:]:
        values = line.split()
        if len(values) != len(header):
            continue
        try:
            seg = {k: int(v, 8) if k == "perms" else int(v) for k, v in zip(header, values)}
        except ValueError:
            continue
        mode = seg.get("perms", 0)
        yield (
            seg.get("shmid"),
            seg.get("uid"),
            seg.get("cuid"),
            seg.get("lpid"),
            seg.get("cpid"),
            seg.get("atime"),
            seg.get("dtime"),
            seg.get("ctime"),
            format(mode & 0o7777, "04o"),
            seg.get("size"),
            seg.get("nattch"),
            "dest" if mode & SHM_DEST else "",
            1 if mode & SHM_LOCKED else 0,
        )


def shared_memory_rows(root: str = "/") -> Iterator[tuple[Any, ...]]:
    text = read_text(os.path.join(root, "proc", "sysvipc", "shm"))
    if text is None:
        return iter(())
    return parse_sysvipc_shm(text)


def gen_shared_memory(ctx: QueryContext) -> Iterator[tuple[Any, ...]]:
    return shared_memory_rows()
