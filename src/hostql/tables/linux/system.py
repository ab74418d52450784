"""Linux generators: system_info, uptime, cpu_time, memory_info, kernel_modules, mounts.

Every reader takes ``root`` so tests can point it at a fake /proc, /sys or /etc
tree.  Values follow osquery's Linux tables; what the host cannot tell us is
left NULL rather than guessed.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from hostql.sql.context import QueryContext
from hostql.tables.common.host_identity import host_uuid

log = logging.getLogger(__name__)


def read_text(root: str | os.PathLike[str], relative: str) -> str | None:
    """Contents of ``root``/``relative``, or None when missing or unreadable."""
    try:
        return (Path(root) / relative.lstrip("/")).read_text(errors="replace")
    except OSError:
        return None


# ---------------------------------------------------------------- system_info

# DMI attributes exposed by the kernel under /sys/class/dmi/id, by column.
_DMI_COLUMNS = {
    "hardware_vendor": "sys_vendor",
    "hardware_model": "product_name",
    "hardware_version": "product_version",
    "hardware_serial": "product_serial",
    "board_vendor": "board_vendor",
    "board_model": "board_name",
    "board_version": "board_version",
    "board_serial": "board_serial",
}

@dataclass
class CpuSummary:
    """Facts about the CPUs taken from /proc/cpuinfo."""

    brand: str | None = None
    subtype: str | None = None
    microcode: str | None = None
    siblings: int | None = None
    physical_cores: int | None = None
    packages: int | None = None


def parse_cpuinfo_summary(text: str) -> CpuSummary:
    """Brand, model number, microcode and core counts from /proc/cpuinfo."""
    summary = CpuSummary()
    cores: set[tuple[str, str]] = set()
    packages: set[str] = set()
    physical_id = ""
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        # The first processor block describes the CPU; later blocks repeat it.
        if key == "model name" and summary.brand is None:
            summary.brand = value
        elif key == "model" and summary.subtype is None:
            summary.subtype = value
        elif key == "microcode" and summary.microcode is None:
            summary.microcode = value
        elif key == "siblings" and summary.siblings is None and value.isdigit():
            summary.siblings = int(value)
        elif key == "physical id":
            physical_id = value
            packages.add(value)
        elif key == "core id":
            cores.add((physical_id, value))
    if cores:
        summary.physical_cores = len(cores)
    if packages:
        summary.packages = len(packages)
    return summary


def read_dmi_id(root: str = "/") -> dict[str, str]:
    """The system and board identity columns from /sys/class/dmi/id."""
    values: dict[str, str] = {}
    for column, attribute in _DMI_COLUMNS.items():
        text = read_text(root, f"sys/class/dmi/id/{attribute}")
        if text is not None:
            values[column] = text.strip()
    # Lenovo swaps model and version relative to other vendors; osquery
    # swaps them back so hardware_model holds the human model name.
    if values.get("hardware_vendor", "").lower() == "lenovo":
        model, version = values.get("hardware_model"), values.get("hardware_version")
        if model is not None and version is not None:
            values["hardware_model"], values["hardware_version"] = version, model
    return values


def meminfo_kib(text: str) -> dict[str, int]:
    """/proc/meminfo as {field: value}; values are in KiB where the kernel says kB."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, sep, rest = line.partition(":")
        parts = rest.split()
        if sep and parts and parts[0].isdigit():
            values[key.strip()] = int(parts[0])
    return values


def system_info_row(ctx: QueryContext, root: str = "/") -> dict[str, object]:
    hostname = socket.gethostname().strip()
    row: dict[str, object] = {
        "hostname": hostname,
        "computer_name": hostname,
        "local_hostname": hostname,
        "cpu_type": os.uname().machine,
        "cpu_subtype": "0",
    }
    if ctx.is_used("uuid"):
        row["uuid"] = host_uuid(ctx.runtime, root)
    logical = os.cpu_count()
    row["cpu_logical_cores"] = logical if logical else -1
    cpuinfo = read_text(root, "proc/cpuinfo")
    if cpuinfo is not None:
        cpu = parse_cpuinfo_summary(cpuinfo)
        row["cpu_brand"] = cpu.brand
        if cpu.subtype is not None:
            row["cpu_subtype"] = cpu.subtype
        row["cpu_microcode"] = cpu.microcode
        # Cores are unique (package, core) pairs; without topology lines
        # (some VMs, non-x86) each logical CPU is its own core.
        row["cpu_physical_cores"] = cpu.physical_cores or logical
        if logical and cpu.siblings:
            row["cpu_sockets"] = max(logical // cpu.siblings, 1)
    meminfo = read_text(root, "proc/meminfo")
    if meminfo is not None:
        total = meminfo_kib(meminfo).get("MemTotal")
        row["physical_memory"] = total * 1024 if total is not None else -1
    if ctx.any_used(_DMI_COLUMNS):
        dmi = read_dmi_id(root)
        if not dmi:
            log.debug("system_info: /sys/class/dmi/id absent; hardware and board columns left NULL")
        row.update(dmi)
    return row


def gen_system_info(ctx: QueryContext) -> Iterator[dict[str, object]]:
    yield system_info_row(ctx)


# --------------------------------------------------------------------- uptime


def uptime_row(total: int) -> tuple[int, int, int, int, int]:
    """(days, hours, minutes, seconds, total_seconds) for whole seconds of uptime."""
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    return days, hours, minutes, seconds, total


def read_uptime(root: str = "/") -> int | None:
    """Whole seconds since boot from /proc/uptime."""
    text = read_text(root, "proc/uptime")
    if not text or not text.split():
        return None
    try:
        return int(float(text.split()[0]))
    except ValueError:
        return None


def gen_uptime(ctx: QueryContext) -> Iterator[tuple[int, int, int, int, int]]:
    total = read_uptime()
    if total is None:
        log.debug("uptime: /proc/uptime unreadable")
        return
    yield uptime_row(total)


# ------------------------------------------------------------------- cpu_time

CpuTimeRow = tuple[int, int, int, int, int, int, int, int, int, int, int]


def parse_proc_stat(text: str) -> Iterator[CpuTimeRow]:
    """Per-core tick counters from /proc/stat (the aggregate 'cpu' line is skipped)."""
    for line in text.splitlines():
        words = line.split()
        if not words or not words[0].startswith("cpu") or words[0] == "cpu":
            continue
        core = words[0][3:]
        # Lines need at least user..softirq; older kernels lack the last three.
        if not core.isdigit() or len(words) < 8:
            continue
        try:
            counters = [int(w) for w in words[1:11]]
        except ValueError:
            continue
        counters += [0] * (10 - len(counters))
        yield (int(core), *counters)  # type: ignore[misc]


def gen_cpu_time(ctx: QueryContext) -> Iterator[CpuTimeRow]:
    text = read_text("/", "proc/stat")
    if text is None:
        log.debug("cpu_time: /proc/stat unreadable")
        return
    yield from parse_proc_stat(text)


# ---------------------------------------------------------------- memory_info

_MEMINFO_FIELDS = (
    ("memory_total", "MemTotal"),
    ("memory_free", "MemFree"),
    ("memory_available", "MemAvailable"),
    ("buffers", "Buffers"),
    ("cached", "Cached"),
    ("swap_cached", "SwapCached"),
    ("active", "Active"),
    ("inactive", "Inactive"),
    ("swap_total", "SwapTotal"),
    ("swap_free", "SwapFree"),
)


def memory_info_row(text: str) -> tuple[int | None, ...]:
    """memory_info columns in bytes from /proc/meminfo text."""
    kib = meminfo_kib(text)
    return tuple(kib[key] * 1024 if key in kib else None for _, key in _MEMINFO_FIELDS)


def gen_memory_info(ctx: QueryContext) -> Iterator[tuple[int | None, ...]]:
    text = read_text("/", "proc/meminfo")
    if text is None:
        log.debug("memory_info: /proc/meminfo unreadable")
        return
    yield memory_info_row(text)


# ------------------------------------------------------------- kernel_modules


def parse_proc_modules(text: str) -> Iterator[tuple[str, int | None, str, str, str]]:
    """(name, size, used_by, status, address) per line of /proc/modules."""
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 6:
            continue
        # used_by lists dependents as "a,b," with a trailing comma; osquery drops it.
        name, size, _refcount, used_by, status, address = fields[:6]
        yield name, int(size) if size.isdigit() else None, used_by.rstrip(","), status, address


def gen_kernel_modules(ctx: QueryContext) -> Iterator[tuple[str, int | None, str, str, str]]:
    text = read_text("/", "proc/modules")
    if text is None:
        log.debug("kernel_modules: /proc/modules absent (kernel without module support?)")
        return
    yield from parse_proc_modules(text)


# --------------------------------------------------------------------- mounts


def unescape_mount_field(field: str) -> str:
    """Undo the octal escapes (\\040 space, \\011 tab, \\012 newline, \\134 backslash)."""
    if "\\" not in field:
        return field
    out: list[str] = []
    i = 0
    while i < len(field):
        chunk = field[i + 1 : i + 4]
        if field[i] == "\\" and len(chunk) == 3 and all(c in "01234567" for c in chunk):
            out.append(chr(int(chunk, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


@dataclass(frozen=True)
class MountEntry:
    device: str
    path: str
    type: str
    flags: str


def parse_proc_mounts(text: str) -> Iterator[MountEntry]:
    """Entries of /proc/mounts (fstab format: device path type options dump pass)."""
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        device, path, fstype, options = (unescape_mount_field(f) for f in fields[:4])
        yield MountEntry(device, path, fstype, options)


def device_alias(device: str) -> str:
    """The device with symbolic links resolved (e.g. /dev/mapper/x -> /dev/dm-0)."""
    if device.startswith("/") and os.path.exists(device):
        return os.path.realpath(device)
    return device


MountRow = tuple[str, str, str, str, int, int, int, int, int, int, str]


def mount_row(entry: MountEntry, with_stats: bool = True) -> MountRow:
    sizes = (0, 0, 0, 0, 0, 0)
    # statfs on autofs would trigger the automount; osquery skips it as well.
    if with_stats and entry.type != "autofs":
        try:
            st = os.statvfs(entry.path)
            sizes = (st.f_bsize, st.f_blocks, st.f_bfree, st.f_bavail, st.f_files, st.f_ffree)
        except OSError as exc:
            log.debug("mounts: statvfs(%s) failed: %s", entry.path, exc)
    return (entry.device, device_alias(entry.device), entry.path, entry.type, *sizes, entry.flags)


_STAT_COLUMNS = ("blocks_size", "blocks", "blocks_free", "blocks_available", "inodes", "inodes_free")


def gen_mounts(ctx: QueryContext) -> Iterator[MountRow]:
    text = read_text("/", "proc/mounts")
    if text is None:
        log.debug("mounts: /proc/mounts unreadable")
        return
    with_stats = ctx.any_used(_STAT_COLUMNS)
    for entry in parse_proc_mounts(text):
        yield mount_row(entry, with_stats)
