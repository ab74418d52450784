"""Linux generators: os_version (from os-release) and kernel_info (from /proc).

Readers take ``root``; for os_version that is also how a container's view is
read: ``pid_with_namespace = N`` reads the files under /proc/N/root.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator

from hostql.sql.context import QueryContext
from hostql.tables.linux.system import read_text

log = logging.getLogger(__name__)

# os-release keys and the column each one fills.
_OS_RELEASE_COLUMNS = {
    "NAME": "name",
    "VERSION": "version",
    "BUILD_ID": "build",
    "ID": "platform",
    "ID_LIKE": "platform_like",
    "VERSION_CODENAME": "codename",
}

# The old Red Hat release line, e.g. "CentOS release 6.10 (Final)".
_REDHAT_RELEASE = re.compile(r"([\w+\s]+) .* ([0-9]+)\.([0-9]+)\.?(\w+)?")


def _unquote(value: str) -> str:
    # os-release values may be quoted with either quote character (shell syntax).
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _version_number(part: str) -> int | None:
    return int(part) if part.isdigit() else None


def parse_os_release(text: str) -> dict[str, object]:
    """Columns of os_version from the text of an os-release file."""
    row: dict[str, object] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            continue
        key, value = key.strip(), _unquote(value.strip())
        if key == "VERSION_ID":
            # "22.04" -> major 22, minor 4; a third part, if any, is the patch.
            parts = value.split(".", 2)
            for column, part in zip(("major", "minor", "patch"), parts):
                row[column] = _version_number(part)
        elif key in _OS_RELEASE_COLUMNS:
            row[_OS_RELEASE_COLUMNS[key]] = value
        elif "CODENAME" in key:
            # Distributions add their own codename keys (UBUNTU_CODENAME, ...).
            row["codename"] = value
    return row


def parse_legacy_release(text: str, platform: str) -> dict[str, object]:
    """Columns from /etc/redhat-release or /etc/gentoo-release, which win over os-release."""
    content = " ".join(text.split())
    row: dict[str, object] = {"platform": platform, "platform_like": platform, "version": content, "build": ""}
    match = _REDHAT_RELEASE.search(content)
    if match:
        row["name"] = match.group(1)
        row["major"] = int(match.group(2))
        row["minor"] = int(match.group(3))
        patch = match.group(4)
        row["patch"] = _version_number(patch) if patch else 0
    return row


def os_version_row(root: str = "/") -> dict[str, object]:
    """The os_version row for the filesystem tree at ``root``."""
    row: dict[str, object] = {"name": "Unknown", "major": 0, "minor": 0, "patch": 0, "platform": "posix"}
    text = read_text(root, "etc/os-release")
    if text:
        row.update(parse_os_release(text))
    else:
        log.debug("os_version: no os-release under %s", root)
    row["arch"] = os.uname().machine
    for relative, platform in (("etc/redhat-release", "rhel"), ("etc/gentoo-release", "gentoo")):
        legacy = read_text(root, relative)
        if legacy is not None:
            row.update(parse_legacy_release(legacy, platform))
            break
    return row


def _mount_namespace(pid: int) -> str | None:
    try:
        link = os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None
    # "mnt:[4026531840]" -> "4026531840"
    return link[link.find("[") + 1 : -1] if "[" in link else link


def gen_os_version(ctx: QueryContext) -> Iterator[dict[str, object]]:
    pids = ctx.equals("pid_with_namespace")
    if not pids:
        row = os_version_row()
        row["pid_with_namespace"] = 0
        yield row
        return
    for pid in sorted(p for p in pids if isinstance(p, int)):
        root = f"/proc/{pid}/root"
        if not os.path.isdir(root):
            log.debug("os_version: process %s has no readable root", pid)
            continue
        row = os_version_row(root)
        row["pid_with_namespace"] = pid
        row["mount_namespace_id"] = _mount_namespace(pid)
        yield row


# ---------------------------------------------------------------- kernel_info


def parse_cmdline(text: str) -> dict[str, str]:
    """path (BOOT_IMAGE=), device (root=) and the remaining arguments of a kernel command line."""
    row: dict[str, str] = {}
    rest: list[str] = []
    for arg in text.split():
        if arg.startswith("BOOT_IMAGE="):
            row["path"] = arg[len("BOOT_IMAGE=") :]
        elif arg.startswith("root="):
            row["device"] = arg[len("root=") :]
        else:
            rest.append(arg)
    row["arguments"] = " ".join(rest)
    return row


def kernel_version(root: str = "/") -> str:
    """Kernel release from /proc/version ("Linux version 6.1.0 ..."), else uname."""
    text = read_text(root, "proc/version")
    if text:
        words = text.split()
        if len(words) > 2 and words[1] == "version":
            return words[2]
    return os.uname().release


def kernel_info_row(root: str = "/") -> dict[str, str]:
    row: dict[str, str] = {"version": kernel_version(root)}
    cmdline = read_text(root, "proc/cmdline")
    if cmdline is not None:
        row.update(parse_cmdline(cmdline))
    else:
        log.debug("kernel_info: /proc/cmdline unreadable")
    return row


def gen_kernel_info(ctx: QueryContext) -> Iterator[dict[str, str]]:
    yield kernel_info_row()
