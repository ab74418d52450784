"""Linux generators from firmware tables: platform_info and cpu_info.

osquery reads the raw SMBIOS table the kernel exports at
/sys/firmware/dmi/tables/DMI.  When that is not readable, platform_info falls
back to the BIOS strings under /sys/class/dmi/id and cpu_info to /proc/cpuinfo
(one row per physical package); columns neither source can state stay NULL.
Firecracker-style VMs have neither DMI source, so platform_info is empty there.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from hostql.sql.context import QueryContext
from hostql.tables.linux.system import read_text

log = logging.getLogger(__name__)

DMI_TABLE = "sys/firmware/dmi/tables/DMI"
_END_OF_TABLE = 127
_BIOS = 0
_PROCESSOR = 4

# SMBIOS processor types osquery names in device_id (CPU0, CPU1, ...).
_PROCESSOR_NAMES = {3: "CPU", 4: "MATH", 5: "DSP", 6: "GPU"}


@dataclass(frozen=True)
class Structure:
    """One SMBIOS structure: its formatted bytes (header included) and its strings."""

    type: int
    data: bytes
    strings: tuple[str, ...]

    def byte(self, offset: int) -> int | None:
        return self.data[offset] if offset < len(self.data) else None

    def word(self, offset: int) -> int | None:
        if offset + 2 > len(self.data):
            return None
        return int.from_bytes(self.data[offset : offset + 2], "little")

    def string(self, offset: int) -> str:
        """The string a formatted byte points at (1-based); "" for 0 or a bad index."""
        index = self.byte(offset)
        if not index or index > len(self.strings):
            return ""
        return self.strings[index - 1].rstrip()


def parse_smbios(blob: bytes) -> Iterator[Structure]:
    """Walk a raw SMBIOS structure table."""
    pos = 0
    while pos + 4 <= len(blob):
        kind, length = blob[pos], blob[pos + 1]
        if length < 4 or pos + length > len(blob):
            return  # corrupt table: stop rather than read garbage
        data = blob[pos : pos + length]
        # The string set follows the formatted area and ends with two NULs.
        end = blob.find(b"\x00\x00", pos + length)
        if end < 0:
            return
        area = blob[pos + length : end]
        strings = tuple(s.decode("latin-1") for s in area.split(b"\x00") if s) if area else ()
        yield Structure(kind, data, strings)
        if kind == _END_OF_TABLE:
            return
        pos = end + 2


def read_smbios(root: str = "/") -> list[Structure] | None:
    """All structures of the exported table, or None when it cannot be read."""
    try:
        blob = (Path(root) / DMI_TABLE).read_bytes()
    except OSError:
        return None
    return list(parse_smbios(blob)) if blob else None


def firmware_type(root: str = "/") -> str:
    # The kernel creates /sys/firmware/efi only when it was started by UEFI.
    return "uefi" if os.path.isdir(Path(root) / "sys/firmware/efi") else "bios"


# -------------------------------------------------------------- platform_info


def bios_row(s: Structure, fw_type: str) -> dict[str, object]:
    address = s.word(0x06)
    rom_blocks = s.byte(0x09)
    major, minor = s.byte(0x14), s.byte(0x15)
    return {
        "vendor": s.string(0x04),
        "version": s.string(0x05),
        "date": s.string(0x08),
        "revision": f"{major}.{minor}" if major is not None and minor is not None else None,
        "extra": "",
        "firmware_type": fw_type,
        "address": f"0x{address:04x}" if address is not None else None,
        # The ROM size byte counts 64 KiB blocks minus one.
        "size": str((rom_blocks + 1) * 64 * 1024) if rom_blocks is not None else None,
        "volume_size": 0,
    }


def platform_info_rows(root: str = "/") -> list[dict[str, object]]:
    fw_type = firmware_type(root)
    structures = read_smbios(root)
    if structures is not None:
        return [bios_row(s, fw_type) for s in structures if s.type == _BIOS and len(s.data) >= 0x12]
    vendor = read_text(root, "sys/class/dmi/id/bios_vendor")
    version = read_text(root, "sys/class/dmi/id/bios_version")
    if vendor is None and version is None:
        log.debug("platform_info: no SMBIOS table and no /sys/class/dmi/id; no rows")
        return []
    date = read_text(root, "sys/class/dmi/id/bios_date")
    release = read_text(root, "sys/class/dmi/id/bios_release")
    return [
        {
            "vendor": (vendor or "").strip(),
            "version": (version or "").strip(),
            "date": date.strip() if date is not None else None,
            "revision": release.strip() if release is not None else None,
            "extra": "",
            "firmware_type": fw_type,
            "volume_size": 0,
        }
    ]


def gen_platform_info(ctx: QueryContext) -> Iterator[dict[str, object]]:
    yield from platform_info_rows()


# ------------------------------------------------------------------- cpu_info


def processor_rows(structures: list[Structure]) -> list[dict[str, object]]:
    """cpu_info rows from SMBIOS processor (type 4) structures, numbered as osquery does."""
    rows: list[dict[str, object]] = []
    counter = 0
    for s in structures:
        if s.type != _PROCESSOR or len(s.data) < 0x1A:
            continue
        kind = s.byte(0x05)
        row: dict[str, object] = {
            "socket_designation": s.string(0x04),
            "model": s.string(0x10),
            "manufacturer": s.string(0x07),
            "processor_type": str(kind) if kind is not None else None,
            "cpu_status": s.byte(0x18),
            "current_clock_speed": s.word(0x16),
            "max_clock_speed": s.word(0x14),
        }
        # Core/thread counts and characteristics arrived with SMBIOS 2.5.
        cores, threads, traits = s.byte(0x23), s.byte(0x25), s.word(0x26)
        if cores is not None:
            row["number_of_cores"] = str(cores)
        row["logical_processors"] = threads
        if traits is not None:
            row["address_width"] = "64" if traits & 0x4 else "32"
        if kind in _PROCESSOR_NAMES:
            row["device_id"] = f"{_PROCESSOR_NAMES[kind]}{counter}"
            counter += 1
        rows.append(row)
    return rows


def _max_mhz(root: str, cpu: str) -> int | None:
    text = read_text(root, f"sys/devices/system/cpu/cpu{cpu}/cpufreq/cpuinfo_max_freq")
    return int(text) // 1000 if text and text.strip().isdigit() else None


def _mhz(text: str | None) -> int | None:
    try:
        return int(float(text)) if text else None
    except ValueError:
        return None


def cpuinfo_rows(text: str, root: str = "/") -> list[dict[str, object]]:
    """cpu_info rows from /proc/cpuinfo: one per physical package (its first logical CPU)."""
    rows: list[dict[str, object]] = []
    seen: set[str] = set()
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip()] = value.strip()
        if "processor" not in fields:
            continue
        package = fields.get("physical id", "0")
        if package in seen:
            continue
        seen.add(package)
        mhz = fields.get("cpu MHz")
        flags = fields.get("flags")
        rows.append(
            {
                "device_id": f"CPU{len(rows)}",
                "model": fields.get("model name"),
                "manufacturer": fields.get("vendor_id"),
                # Every CPU the kernel lists is a central processor (SMBIOS type 3).
                "processor_type": "3",
                "number_of_cores": fields.get("cpu cores"),
                "logical_processors": int(fields["siblings"]) if fields.get("siblings", "").isdigit() else None,
                # x86 sets the "lm" (long mode) flag on 64-bit capable CPUs.
                "address_width": ("64" if "lm" in flags.split() else "32") if flags is not None else None,
                "current_clock_speed": _mhz(mhz),
                "max_clock_speed": _max_mhz(root, fields["processor"]),
            }
        )
    return rows


def cpu_info_rows(root: str = "/") -> list[dict[str, object]]:
    structures = read_smbios(root)
    if structures is not None:
        return processor_rows(structures)
    text = read_text(root, "proc/cpuinfo")
    if text is None:
        log.debug("cpu_info: neither SMBIOS nor /proc/cpuinfo readable")
        return []
    log.debug("cpu_info: no SMBIOS table; using /proc/cpuinfo")
    return cpuinfo_rows(text, root)


def gen_cpu_info(ctx: QueryContext) -> Iterator[dict[str, object]]:
    yield from cpu_info_rows()
