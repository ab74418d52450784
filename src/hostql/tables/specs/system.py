"""Table specs: the operating system, kernel, clock, CPU, memory and mounts.

Data only: this module is imported at every shell start, so it imports nothing
but :mod:`hostql.tables.spec`.
"""

from __future__ import annotations

from hostql.tables.spec import (
    BIGINT,
    DARWIN,
    INTEGER,
    LINUX,
    LINUX_ONLY,
    POSIX_PLATFORMS,
    TEXT,
    WINDOWS,
    Column,
    TableSpec,
    table,
)

_LINUX = "hostql.tables.linux.system"
_PORTABLE = "hostql.tables.portable.system"
_SMBIOS = "hostql.tables.linux.sys_smbios"
_OSINFO = "hostql.tables.linux.sys_osinfo"
_SYSCTL = "hostql.tables.linux.sys_sysctl"

_ONLY_WINDOWS = frozenset({WINDOWS})
_ONLY_DARWIN = frozenset({DARWIN})
_ONLY_LINUX = frozenset({LINUX})

TABLES: list[TableSpec] = [
    table(
        "system_info",
        "One row identifying this machine: host names, CPU summary, installed memory and the"
        " vendor, model and serial numbers the firmware reports for the system and its board.",
        [
            Column("hostname", TEXT, "Host name as the kernel reports it"),
            Column(
                "uuid",
                TEXT,
                "System UUID from the firmware (DMI product UUID); empty when the firmware gives none",
                collate="NOCASE",
            ),
            Column("cpu_type", TEXT, "Machine architecture, as in uname -m (for example x86_64)"),
            Column("cpu_subtype", TEXT, "CPU model number from /proc/cpuinfo"),
            Column("cpu_brand", TEXT, "Full CPU brand string (vendor and model name)"),
            Column("cpu_physical_cores", INTEGER, "Count of distinct physical cores"),
            Column("cpu_logical_cores", INTEGER, "Count of online logical CPUs (hardware threads)"),
            Column("cpu_sockets", INTEGER, "Count of populated CPU sockets"),
            Column("cpu_microcode", TEXT, "Loaded CPU microcode revision"),
            Column("physical_memory", BIGINT, "Usable RAM in bytes"),
            Column("hardware_vendor", TEXT, "Maker of the system, from firmware"),
            Column("hardware_model", TEXT, "Product name of the system, from firmware"),
            Column("hardware_version", TEXT, "Product version of the system, from firmware"),
            Column("hardware_serial", TEXT, "Serial number of the system, from firmware (readable by root only)"),
            Column("board_vendor", TEXT, "Maker of the main board"),
            Column("board_model", TEXT, "Product name of the main board"),
            Column("board_version", TEXT, "Revision of the main board"),
            Column("board_serial", TEXT, "Serial number of the main board (readable by root only)"),
            Column("computer_name", TEXT, "Short, human-facing machine name"),
            Column("local_hostname", TEXT, "Name the machine uses for itself on the local network"),
            Column(
                "emulated_cpu_type",
                TEXT,
                "CPU type the OS emulates for this process (Windows on ARM)",
                platforms=_ONLY_WINDOWS,
            ),
        ],
        linux=f"{_LINUX}:gen_system_info",
        portable=f"{_PORTABLE}:gen_system_info",
    ),
    table(
        "os_version",
        "One row naming the installed operating system release: distribution, version numbers,"
        " codename and architecture.",
        [
            Column("name", TEXT, "Operating system or distribution name"),
            Column("version", TEXT, "Release as written for people, e.g. '12 (bookworm)'", collate="VERSION"),
            Column("major", INTEGER, "First number of the release version"),
            Column("minor", INTEGER, "Second number of the release version"),
            Column("patch", INTEGER, "Third number of the release version, 0 when absent"),
            Column("build", TEXT, "Build identifier of the release, if the OS names one"),
            Column("platform", TEXT, "Short lower-case OS identifier (os-release ID), e.g. ubuntu"),
            Column("platform_like", TEXT, "Identifiers of the distributions this one derives from"),
            Column("codename", TEXT, "Release codename"),
            Column("arch", TEXT, "Machine architecture of the running kernel"),
            Column(
                "extra", TEXT, "Additional release qualifier (macOS rapid security responses)", platforms=_ONLY_DARWIN
            ),
            Column("install_date", BIGINT, "When the OS was installed, unix time", platforms=_ONLY_WINDOWS),
            Column("revision", INTEGER, "Update build revision number", platforms=_ONLY_WINDOWS),
            Column(
                "pid_with_namespace",
                INTEGER,
                "Read the release of the mount namespace this process lives in (containers)",
                additional=True,
                hidden=True,
                platforms=_ONLY_LINUX,
            ),
            Column(
                "mount_namespace_id",
                TEXT,
                "Inode of the mount namespace the row was read from",
                hidden=True,
                platforms=_ONLY_LINUX,
            ),
        ],
        linux=f"{_OSINFO}:gen_os_version",
        portable=f"{_PORTABLE}:gen_os_version",
    ),
    table(
        "platform_info",
        "Firmware (BIOS or UEFI) identity from the SMBIOS tables: vendor, version, release date"
        " and where the firmware image sits.",
        [
            Column("vendor", TEXT, "Firmware vendor"),
            Column("version", TEXT, "Firmware version string", collate="VERSION"),
            Column("date", TEXT, "Firmware release date as the firmware states it"),
            Column("revision", TEXT, "Firmware major.minor release"),
            Column("extra", TEXT, "Other platform-specific firmware details"),
            Column("firmware_type", TEXT, "How the machine booted: uefi or bios"),
            Column("address", TEXT, "Segment address where the firmware image is mapped", platforms=POSIX_PLATFORMS),
            Column("size", TEXT, "Size of the firmware ROM in bytes", platforms=POSIX_PLATFORMS),
            Column("volume_size", INTEGER, "Size of the firmware volume, 0 when unknown", platforms=POSIX_PLATFORMS),
        ],
        linux=f"{_SMBIOS}:gen_platform_info",
    ),
    table(
        "kernel_info",
        "The running kernel: its release, boot command line, image path and root device.",
        [
            Column("version", TEXT, "Kernel release (uname -r)", collate="VERSION"),
            Column("arguments", TEXT, "Kernel command line without the image and root= arguments"),
            Column("path", TEXT, "Kernel image the boot loader started (BOOT_IMAGE=)"),
            Column("device", TEXT, "Root device given on the command line (root=)"),
        ],
        linux=f"{_OSINFO}:gen_kernel_info",
        portable=f"{_PORTABLE}:gen_kernel_info",
        cacheable=True,
    ),
    table(
        "uptime",
        "How long the system has been running since boot, whole and split into days, hours, minutes and seconds.",
        [
            Column("days", INTEGER, "Whole days since boot"),
            Column("hours", INTEGER, "Hours past the whole days (0-23)"),
            Column("minutes", INTEGER, "Minutes past the whole hours (0-59)"),
            Column("seconds", INTEGER, "Seconds past the whole minutes (0-59)"),
            Column("total_seconds", BIGINT, "Seconds since boot"),
        ],
        linux=f"{_LINUX}:gen_uptime",
        portable=f"{_PORTABLE}:gen_uptime",
    ),
    table(
        "time",
        "The current time: calendar parts in UTC, unix time, several text renderings and the local time zone.",
        [
            Column("weekday", TEXT, "Day of the week in UTC, e.g. Monday"),
            Column("year", INTEGER, "Year in UTC"),
            Column("month", INTEGER, "Month in UTC (1-12)"),
            Column("day", INTEGER, "Day of the month in UTC"),
            Column("hour", INTEGER, "Hour in UTC (0-23)"),
            Column("minutes", INTEGER, "Minute in UTC (0-59)"),
            Column("seconds", INTEGER, "Second in UTC (0-60)"),
            Column("timezone", TEXT, "Zone of the calendar columns; always UTC"),
            Column("local_timezone", TEXT, "Abbreviation of the system's local time zone"),
            Column("unix_time", INTEGER, "Seconds since 1970-01-01 UTC"),
            Column("timestamp", TEXT, "Time as in result logs, e.g. 'Mon May  2 22:27:32 2016 UTC'"),
            Column("datetime", TEXT, "Time in ISO 8601 form, e.g. 2016-05-02T22:27:32Z", aliases=("date_time",)),
            Column("iso_8601", TEXT, "Time in ISO 8601 form (same as datetime)"),
            Column("win_timestamp", BIGINT, "Time in 100-nanosecond units (Windows FILETIME)", platforms=_ONLY_WINDOWS),
        ],
        portable="hostql.tables.common.clock:gen_time",
        utility=True,
    ),
    table(
        "cpu_time",
        "Cumulative time each CPU core has spent in each execution state since boot, in clock ticks.",
        [
            Column("core", INTEGER, "Core number"),
            Column("user", BIGINT, "Ticks running user code"),
            Column("nice", BIGINT, "Ticks running user code at lowered priority"),
            Column("system", BIGINT, "Ticks running kernel code"),
            Column("idle", BIGINT, "Ticks with nothing to run"),
            Column("iowait", BIGINT, "Idle ticks while disk or other I/O was outstanding"),
            Column("irq", BIGINT, "Ticks handling hardware interrupts"),
            Column("softirq", BIGINT, "Ticks handling deferred (soft) interrupts"),
            Column("steal", BIGINT, "Ticks the hypervisor gave to other guests while this one wanted the CPU"),
            Column("guest", BIGINT, "Ticks spent running virtual CPUs of guests this kernel hosts"),
            Column("guest_nice", BIGINT, "Ticks spent running low-priority guest virtual CPUs"),
        ],
        linux=f"{_LINUX}:gen_cpu_time",
        portable=f"{_PORTABLE}:gen_cpu_time",
        platforms=POSIX_PLATFORMS,
    ),
    table(
        "cpu_info",
        "One row per physical processor package, from the firmware's SMBIOS processor records"
        " (on Linux, /proc/cpuinfo when no SMBIOS table is readable).",
        [
            Column("device_id", TEXT, "Name given to the processor, e.g. CPU0"),
            Column("model", TEXT, "Processor model string"),
            Column("manufacturer", TEXT, "Processor maker"),
            Column("processor_type", TEXT, "SMBIOS processor kind: 3 central, 4 math, 5 DSP, 6 video"),
            Column("cpu_status", INTEGER, "SMBIOS processor status byte (socket populated, enabled or disabled)"),
            Column("number_of_cores", TEXT, "Cores in the package"),
            Column("logical_processors", INTEGER, "Hardware threads in the package"),
            Column("address_width", TEXT, "Address width in bits: 64 or 32"),
            Column("current_clock_speed", INTEGER, "Current clock speed in MHz"),
            Column("max_clock_speed", INTEGER, "Highest supported clock speed in MHz"),
            Column("socket_designation", TEXT, "Label of the board socket holding the processor"),
            Column("availability", TEXT, "Availability and state of the processor", platforms=_ONLY_WINDOWS),
            Column("load_percentage", INTEGER, "Current use of the processor in percent", platforms=_ONLY_WINDOWS),
            Column("number_of_efficiency_cores", INTEGER, "Efficiency cores (Apple silicon)", platforms=_ONLY_DARWIN),
            Column("number_of_performance_cores", INTEGER, "Performance cores (Apple silicon)", platforms=_ONLY_DARWIN),
        ],
        linux=f"{_SMBIOS}:gen_cpu_info",
    ),
    table(
        "memory_info",
        "One row of system-wide memory and swap counters from /proc/meminfo, converted to bytes.",
        [
            Column("memory_total", BIGINT, "Usable RAM in bytes"),
            Column("memory_free", BIGINT, "RAM in bytes that holds nothing at all"),
            Column(
                "memory_available", BIGINT, "Kernel estimate of RAM in bytes that new programs can get without swapping"
            ),
            Column("buffers", BIGINT, "RAM in bytes used as block-device buffers"),
            Column("cached", BIGINT, "RAM in bytes used by the page cache"),
            Column("swap_cached", BIGINT, "Bytes that were swapped out and back in but are still in swap"),
            Column("active", BIGINT, "Bytes of memory used recently and rarely reclaimed"),
            Column("inactive", BIGINT, "Bytes of memory not used recently, first in line for reclaim"),
            Column("swap_total", BIGINT, "Total swap space in bytes"),
            Column("swap_free", BIGINT, "Unused swap space in bytes"),
        ],
        linux=f"{_LINUX}:gen_memory_info",
        portable=f"{_PORTABLE}:gen_memory_info",
        platforms=LINUX_ONLY,
    ),
    table(
        "load_average",
        "System load averages over one, five and fifteen minutes.",
        [
            Column("period", TEXT, "Averaging window: 1m, 5m or 15m"),
            Column(
                "average",
                TEXT,
                "Mean count of runnable (and, on Linux, uninterruptible) tasks over the window, six decimals",
            ),
        ],
        portable=f"{_PORTABLE}:gen_load_average",
        platforms=POSIX_PLATFORMS,
    ),
    table(
        "ulimit_info",
        "Resource limits (as getrlimit reports them) that apply to the hostql process and anything it starts.",
        [
            Column("type", TEXT, "Resource name, e.g. nofile, stack, core"),
            Column("soft_limit", TEXT, "Limit currently enforced, or 'unlimited'"),
            Column("hard_limit", TEXT, "Ceiling the soft limit may be raised to, or 'unlimited'"),
        ],
        portable=f"{_PORTABLE}:gen_ulimit_info",
        platforms=POSIX_PLATFORMS,
    ),
    table(
        "system_controls",
        "Kernel tunables (sysctl): each one's current value and the value the sysctl"
        " configuration files would set at boot.",
        [
            Column("name", TEXT, "Dotted tunable name, e.g. kernel.hostname", index=True),
            Column("oid", TEXT, "Numeric MIB of the tunable (BSD/macOS only; empty on Linux)", additional=True),
            Column("subsystem", TEXT, "First part of the name, e.g. kernel, net, vm", additional=True),
            Column("current_value", TEXT, "Value the kernel reports now"),
            Column("config_value", TEXT, "Value assigned in sysctl.conf or sysctl.d, if any"),
            Column("type", TEXT, "Value type; always string on Linux"),
            Column("field_name", TEXT, "Member of a structured (opaque) value", platforms=_ONLY_DARWIN),
        ],
        linux=f"{_SYSCTL}:gen_system_controls",
        platforms=POSIX_PLATFORMS,
    ),
    table(
        "kernel_modules",
        "Kernel modules currently loaded, as listed in /proc/modules.",
        [
            Column("name", TEXT, "Module name"),
            Column("size", BIGINT, "Memory the module occupies, in bytes"),
            Column("used_by", TEXT, "Modules that depend on this one, comma separated, or '-'"),
            Column("status", TEXT, "Load state: Live, Loading or Unloading"),
            Column("address", TEXT, "Kernel address the module is loaded at (0 unless root)"),
        ],
        linux=f"{_LINUX}:gen_kernel_modules",
        platforms=LINUX_ONLY,
    ),
    table(
        "mounts",
        "Filesystems mounted in hostql's mount namespace, with their options and block and inode usage.",
        [
            Column("device", TEXT, "Source of the mount as the kernel records it (device node or pseudo name)"),
            Column("device_alias", TEXT, "Source with symbolic links resolved"),
            Column("path", TEXT, "Directory the filesystem is mounted on"),
            Column("type", TEXT, "Filesystem type, e.g. ext4, tmpfs"),
            Column("blocks_size", BIGINT, "Size of one block in bytes"),
            Column("blocks", BIGINT, "Size of the filesystem in blocks"),
            Column("blocks_free", BIGINT, "Free blocks, including those reserved for root"),
            Column("blocks_available", BIGINT, "Free blocks unprivileged users may use"),
            Column("inodes", BIGINT, "Total inodes"),
            Column("inodes_free", BIGINT, "Free inodes"),
            Column("flags", TEXT, "Mount options, comma separated"),
        ],
        linux=f"{_LINUX}:gen_mounts",
        portable=f"{_PORTABLE}:gen_mounts",
        platforms=POSIX_PLATFORMS,
    ),
]
