"""Portable (psutil and standard library) generators for the system tables.

These serve macOS and Windows, and Linux when ``HOSTQL_PORTABLE=1``.  psutil is
imported inside each generator so that importing this module stays cheap.
"""

from __future__ import annotations

import logging
import os
import platform
import socket
import sys
import time
from collections.abc import Iterator

from hostql.sql.context import QueryContext

log = logging.getLogger(__name__)


def gen_load_average(ctx: QueryContext) -> Iterator[tuple[str, str]]:
    try:
        loads = os.getloadavg()
    except (AttributeError, OSError):
        log.debug("load_average: getloadavg is not available here")
        return
    # osquery prints the averages with C's "%f": six decimals.
    for period, value in zip(("1m", "5m", "15m"), loads):
        yield period, f"{value:.6f}"


def gen_uptime(ctx: QueryContext) -> Iterator[tuple[int, int, int, int, int]]:
    import psutil

    total = max(int(time.time() - psutil.boot_time()), 0)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    yield days, hours, minutes, seconds, total


def _clock_ticks() -> int:
    # psutil reports seconds; osquery reports the kernel's clock ticks.
    try:
        return int(os.sysconf("SC_CLK_TCK"))
    except (AttributeError, ValueError, OSError):
        return 100


_CPU_STATES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal", "guest", "guest_nice")


def gen_cpu_time(ctx: QueryContext) -> Iterator[tuple[int, ...]]:
    import psutil

    hz = _clock_ticks()
    for core, times in enumerate(psutil.cpu_times(percpu=True)):
        # States the platform does not track (iowait on macOS, ...) count as 0.
        yield (core, *(round(getattr(times, state, 0.0) * hz) for state in _CPU_STATES))


def gen_memory_info(ctx: QueryContext) -> Iterator[dict[str, int | None]]:
    import psutil

    vm = psutil.virtual_memory()
    swap = psutil.swap_memory()
    yield {
        "memory_total": vm.total,
        "memory_free": vm.free,
        "memory_available": vm.available,
        "buffers": getattr(vm, "buffers", None),
        "cached": getattr(vm, "cached", None),
        "active": getattr(vm, "active", None),
        "inactive": getattr(vm, "inactive", None),
        "swap_total": swap.total,
        "swap_free": swap.free,
    }


def gen_mounts(ctx: QueryContext) -> Iterator[tuple[object, ...]]:
    import psutil

    for part in psutil.disk_partitions(all=True):
        sizes: tuple[int, ...] = (0, 0, 0, 0, 0, 0)
        if part.fstype != "autofs" and hasattr(os, "statvfs"):
            try:
                st = os.statvfs(part.mountpoint)
                sizes = (st.f_bsize, st.f_blocks, st.f_bfree, st.f_bavail, st.f_files, st.f_ffree)
            except OSError as exc:
                log.debug("mounts: statvfs(%s) failed: %s", part.mountpoint, exc)
        device = part.device
        alias = os.path.realpath(device) if device.startswith("/") and os.path.exists(device) else device
        yield (device, alias, part.mountpoint, part.fstype, *sizes, part.opts)


# osquery's resource names, in its (alphabetical) order; missing ones are skipped.
_RLIMITS = (
    "as", "core", "cpu", "data", "fsize", "kqueues", "locks", "memlock", "msgqueue", "nice",
    "nofile", "npts", "nproc", "rss", "rtprio", "sbsize", "sigpending", "stack", "swap", "umtxp",
)  # fmt: skip


def gen_ulimit_info(ctx: QueryContext) -> Iterator[tuple[str, str, str]]:
    try:
        import resource
    except ImportError:
        log.debug("ulimit_info: no resource limits on this platform")
        return

    def text(value: int) -> str:
        return "unlimited" if value == resource.RLIM_INFINITY else str(value)

    for name in _RLIMITS:
        limit = getattr(resource, f"RLIMIT_{name.upper()}", None)
        if limit is None:
            continue
        try:
            soft, hard = resource.getrlimit(limit)
        except (OSError, ValueError):
            continue
        yield name, text(soft), text(hard)


def gen_system_info(ctx: QueryContext) -> Iterator[dict[str, object]]:
    import psutil

    hostname = socket.gethostname().strip()
    logical = psutil.cpu_count() or -1
    yield {
        "hostname": hostname,
        "computer_name": hostname,
        "local_hostname": hostname,
        # No portable source of a hardware UUID: left empty rather than invented.
        "uuid": "",
        "cpu_type": platform.machine(),
        "cpu_logical_cores": logical,
        "cpu_physical_cores": psutil.cpu_count(logical=False) or logical,
        "physical_memory": psutil.virtual_memory().total,
    }


def _version_parts(version: str) -> dict[str, int | None]:
    parts = version.split(".", 2)
    return {col: int(p) if p.isdigit() else None for col, p in zip(("major", "minor", "patch"), parts)}


_OS_RELEASE_KEYS = (
    ("NAME", "name"),
    ("VERSION", "version"),
    ("BUILD_ID", "build"),
    ("ID", "platform"),
    ("ID_LIKE", "platform_like"),
    ("VERSION_CODENAME", "codename"),
)


def os_version_row() -> dict[str, object]:
    row: dict[str, object] = {"name": "Unknown", "major": 0, "minor": 0, "patch": 0, "platform": "posix"}
    row["arch"] = platform.machine()
    if sys.platform == "darwin":
        version = platform.mac_ver()[0]
        row.update(name="macOS", version=version, platform="darwin", platform_like="darwin")
        row.update(_version_parts(version))
    elif sys.platform == "win32":
        version = platform.version()
        row.update(name=f"Microsoft Windows {platform.release()}", version=version)
        row.update(platform="windows", platform_like="windows")
        parts = version.split(".")
        row.update(_version_parts(".".join(parts[:2])))
        row["build"] = parts[2] if len(parts) > 2 else None
    else:
        try:
            release = platform.freedesktop_os_release()
        except OSError:
            log.debug("os_version: no os-release file")
            return row
        for key, column in _OS_RELEASE_KEYS:
            if key in release:
                row[column] = release[key]
        if "VERSION_ID" in release:
            row.update(_version_parts(release["VERSION_ID"]))
    return row


def gen_os_version(ctx: QueryContext) -> Iterator[dict[str, object]]:
    yield os_version_row()


def gen_kernel_info(ctx: QueryContext) -> Iterator[dict[str, object]]:
    # Only the release is portable; the boot command line is not.
    yield {"version": platform.release()}
