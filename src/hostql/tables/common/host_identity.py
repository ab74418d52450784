"""The host UUID, shared by system_info, osquery_info and enrollment.

osquery reads the firmware (DMI) system UUID and, where there is none, makes a
random one and keeps it in its database.  hostql prefers a real identifier
over a random one: the firmware UUID, else the OS installation's machine-id
(systemd/D-Bus, stable across reboots and agent reinstalls), else the UUID the
agent keeps in its state store (``Runtime.host_uuid``), else empty.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from hostql.runtime import Runtime

# Firmware fills these in when the vendor did not set a UUID.
PLACEHOLDER_UUIDS = frozenset(
    {
        "00000000-0000-0000-0000-000000000000",
        "ffffffff-ffff-ffff-ffff-ffffffffffff",
        "03000200-0400-0500-0006-000700080009",
        "00020003-0004-0005-0006-000700080009",
    }
)
MACHINE_ID_FILES = ("etc/machine-id", "var/lib/dbus/machine-id")


def _read(root: str, relative: str) -> str | None:
    try:
        with open(os.path.join(root, relative), encoding="utf-8", errors="replace") as fh:
            return fh.read().replace("\x00", "").strip()
    except OSError:
        return None


def firmware_uuid(root: str = "/") -> str:
    """The DMI system UUID, or "" when absent, unreadable or a placeholder."""
    value = _read(root, "sys/class/dmi/id/product_uuid") or ""
    return "" if value.lower() in PLACEHOLDER_UUIDS else value.upper()


def machine_id_uuid(root: str = "/") -> str:
    """The 128-bit machine-id written as a UUID, or ""."""
    for relative in MACHINE_ID_FILES:
        text = (_read(root, relative) or "").lower()
        if len(text) == 32 and all(c in "0123456789abcdef" for c in text) and text.strip("0"):
            return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}".upper()
    return ""


def host_uuid(runtime: Runtime | None = None, root: str = "/") -> str:
    """The host's UUID: firmware, else machine-id, else the agent's stored one."""
    return firmware_uuid(root) or machine_id_uuid(root) or (runtime.host_uuid if runtime is not None else "")
