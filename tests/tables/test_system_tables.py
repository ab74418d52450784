"""System tables against ground truth the test computes itself.

Live tests read /proc, /sys and /etc with their own small parsers (or ask the
standard library) and compare with what the tables return; parser tests run the
readers on fake trees under tmp_path; portable tests force the psutil
generators with HOSTQL_PORTABLE=1.
"""

from __future__ import annotations

import os
import re
import resource
import shlex
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hostql.sql.connection import Connection
from hostql.sql.context import QueryContext
from hostql.tables.common import clock
from hostql.tables.linux import sys_osinfo, sys_smbios, sys_sysctl
from hostql.tables.linux import system as linux_system
from hostql.tables.registry import get_spec


def _rows(db: Any, sql: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = db.execute(sql).as_dicts()
    return result


def _one(db: Any, sql: str) -> dict[str, Any]:
    rows = _rows(db, sql)
    assert len(rows) == 1, rows
    return rows[0]


def _meminfo_bytes(key: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name == key:
            return int(rest.split()[0]) * 1024
    raise KeyError(key)


def _write(root: Path, relative: str, text: str | bytes) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)


def _os_release() -> dict[str, str]:
    """/etc/os-release parsed with shell quoting rules (independent of the table code)."""
    values: dict[str, str] = {}
    path = Path("/etc/os-release")
    for line in path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            parsed = shlex.split(value)
            values[key.strip()] = parsed[0] if parsed else ""
    return values


@pytest.fixture
def portable(monkeypatch: pytest.MonkeyPatch) -> Iterator[Connection]:
    monkeypatch.setenv("HOSTQL_PORTABLE", "1")
    conn = Connection()
    yield conn
    conn.close()


# ------------------------------------------------------------------ live: identity


def test_system_info_live(db: Any) -> None:
    row = _one(db, "SELECT * FROM system_info")
    assert row["hostname"] == socket.gethostname()
    assert row["computer_name"] == socket.gethostname()
    assert row["cpu_type"] == os.uname().machine
    assert row["cpu_logical_cores"] == os.cpu_count()
    assert row["physical_memory"] == _meminfo_bytes("MemTotal")
    model_names = [
        line.split(":", 1)[1].strip()
        for line in Path("/proc/cpuinfo").read_text().splitlines()
        if line.startswith("model name")
    ]
    if model_names:
        assert row["cpu_brand"] == model_names[0]
    assert 1 <= row["cpu_physical_cores"] <= row["cpu_logical_cores"]
    uuid_file = Path("/sys/class/dmi/id/product_uuid")
    machine_id = Path("/etc/machine-id")
    if uuid_file.is_file() and os.access(uuid_file, os.R_OK):
        assert row["uuid"].lower() == uuid_file.read_text().strip().lower()
    elif machine_id.is_file() and len(machine_id.read_text().strip()) == 32:
        assert row["uuid"].replace("-", "").lower() == machine_id.read_text().strip()
    else:
        assert row["uuid"] == ""
    vendor_file = Path("/sys/class/dmi/id/sys_vendor")
    expected_vendor = vendor_file.read_text().strip() if vendor_file.is_file() else None
    assert row["hardware_vendor"] == expected_vendor


def test_os_version_live(db: Any) -> None:
    row = _one(db, "SELECT * FROM os_version")
    release = _os_release()
    assert row["name"] == release.get("NAME", "Unknown")
    assert row["version"] == release.get("VERSION")
    assert row["platform"] == release.get("ID", "posix")
    assert row["platform_like"] == release.get("ID_LIKE")
    assert row["codename"] == release.get("VERSION_CODENAME")
    assert row["arch"] == os.uname().machine
    parts = release.get("VERSION_ID", "0").split(".")
    assert row["major"] == int(parts[0])
    assert row["minor"] == (int(parts[1]) if len(parts) > 1 else 0)


def test_os_version_pid_with_namespace_reads_that_root(db: Any) -> None:
    pid = os.getpid()
    row = _one(db, f"SELECT *, pid_with_namespace, mount_namespace_id FROM os_version WHERE pid_with_namespace = {pid}")
    plain = _one(db, "SELECT * FROM os_version")
    assert row["pid_with_namespace"] == pid
    assert row["name"] == plain["name"] and row["version"] == plain["version"]
    inode = re.search(r"\[(\d+)\]", os.readlink(f"/proc/{pid}/ns/mnt"))
    assert inode and row["mount_namespace_id"] == inode.group(1)


def test_kernel_info_live(db: Any) -> None:
    row = _one(db, "SELECT * FROM kernel_info")
    assert row["version"] == os.uname().release
    cmdline = Path("/proc/cmdline").read_text().split()
    expected = [a for a in cmdline if not a.startswith(("BOOT_IMAGE=", "root="))]
    assert row["arguments"] == " ".join(expected)
    image = [a.split("=", 1)[1] for a in cmdline if a.startswith("BOOT_IMAGE=")]
    assert row["path"] == (image[0] if image else None)


# --------------------------------------------------------------------- live: clocks


def test_uptime_live(db: Any) -> None:
    before = float(Path("/proc/uptime").read_text().split()[0])
    row = _one(db, "SELECT * FROM uptime")
    after = float(Path("/proc/uptime").read_text().split()[0])
    assert int(before) - 1 <= row["total_seconds"] <= after + 1
    total = row["days"] * 86400 + row["hours"] * 3600 + row["minutes"] * 60 + row["seconds"]
    assert total == row["total_seconds"]
    assert 0 <= row["hours"] < 24 and 0 <= row["minutes"] < 60 and 0 <= row["seconds"] < 60


def test_time_live(db: Any) -> None:
    row = _one(db, "SELECT *, date_time FROM time")
    assert abs(row["unix_time"] - time.time()) <= 2
    utc = time.gmtime(row["unix_time"])
    assert (row["year"], row["month"], row["day"]) == (utc.tm_year, utc.tm_mon, utc.tm_mday)
    assert (row["hour"], row["minutes"], row["seconds"]) == (utc.tm_hour, utc.tm_min, utc.tm_sec)
    assert row["timezone"] == "UTC"
    assert row["local_timezone"] == (time.strftime("%Z", time.localtime(row["unix_time"])) or "UTC")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", row["datetime"])
    assert row["datetime"] == row["iso_8601"] == row["date_time"]
    assert time.strptime(row["timestamp"], "%a %b %d %H:%M:%S %Y UTC")[:6] == utc[:6]
    assert row["weekday"] == ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"][utc.tm_wday]


def test_time_formats_for_a_known_instant() -> None:
    row = clock.time_row(1462228052.7)  # Mon, 2 May 2016 22:27:32 UTC
    assert row["timestamp"] == "Mon May  2 22:27:32 2016 UTC"
    assert row["datetime"] == row["iso_8601"] == "2016-05-02T22:27:32Z"
    assert row["unix_time"] == 1462228052
    assert row["weekday"] == "Monday"
    assert "win_timestamp" not in row
    assert clock.time_row(0.0, True)["win_timestamp"] == 116444736000000000


# ------------------------------------------------------------------ live: CPU/memory


def _proc_stat_cores() -> dict[int, list[int]]:
    cores: dict[int, list[int]] = {}
    for line in Path("/proc/stat").read_text().splitlines():
        m = re.match(r"cpu(\d+)\s+(.*)", line)
        if m:
            cores[int(m.group(1))] = [int(v) for v in m.group(2).split()]
    return cores


def test_cpu_time_live(db: Any) -> None:
    before = _proc_stat_cores()
    rows = _rows(db, "SELECT * FROM cpu_time")
    after = _proc_stat_cores()
    assert sorted(r["core"] for r in rows) == sorted(before)
    columns = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal", "guest", "guest_nice"]
    for row in rows:
        for i, col in enumerate(columns):
            # iowait may go backwards on some kernels; every other counter only grows.
            if i < len(before[row["core"]]) and col != "iowait":
                assert before[row["core"]][i] <= row[col] <= after[row["core"]][i], (row, col)


def test_cpu_info_live(db: Any) -> None:
    rows = _rows(db, "SELECT * FROM cpu_info")
    if sys_smbios.read_smbios() is not None:
        # With an SMBIOS table the rows are its processor records.
        assert all(r["processor_type"] is not None for r in rows)
        return
    text = Path("/proc/cpuinfo").read_text()
    packages = {line.split(":")[1].strip() for line in text.splitlines() if line.startswith("physical id")}
    assert len(rows) == max(len(packages), 1)
    models = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")]
    if models:
        assert rows[0]["model"] == models[0]
    assert rows[0]["device_id"] == "CPU0"


def test_memory_info_live(db: Any) -> None:
    row = _one(db, "SELECT * FROM memory_info")
    assert row["memory_total"] == _meminfo_bytes("MemTotal")
    assert row["swap_total"] == _meminfo_bytes("SwapTotal")
    assert 0 < row["memory_free"] <= row["memory_total"]
    assert 0 < row["memory_available"] <= row["memory_total"]


def test_load_average_live(db: Any) -> None:
    rows = _rows(db, "SELECT * FROM load_average")
    assert [r["period"] for r in rows] == ["1m", "5m", "15m"]
    expected = [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]
    for row, value in zip(rows, expected):
        assert re.fullmatch(r"\d+\.\d{6}", row["average"])
        assert abs(float(row["average"]) - value) < 1.0


def test_ulimit_info_live(db: Any) -> None:
    rows = {r["type"]: r for r in _rows(db, "SELECT * FROM ulimit_info")}

    def text(v: int) -> str:
        return "unlimited" if v == resource.RLIM_INFINITY else str(v)

    for name in ("nofile", "stack", "core", "nproc", "as"):
        soft, hard = resource.getrlimit(getattr(resource, f"RLIMIT_{name.upper()}"))
        assert (rows[name]["soft_limit"], rows[name]["hard_limit"]) == (text(soft), text(hard))
    assert list(rows) == sorted(rows)


# ---------------------------------------------------------------- live: kernel state


def test_system_controls_by_name(db: Any) -> None:
    row = _one(db, "SELECT * FROM system_controls WHERE name = 'kernel.hostname'")
    assert row["current_value"] == Path("/proc/sys/kernel/hostname").read_text().strip()
    assert row["subsystem"] == "kernel" and row["type"] == "string" and row["oid"] is None


def test_system_controls_subsystem_and_scan(db: Any) -> None:
    rows = _rows(db, "SELECT name FROM system_controls WHERE subsystem = 'vm'")
    expected = {
        ".".join(Path(d, f).relative_to("/proc/sys").parts) for d, _, files in os.walk("/proc/sys/vm") for f in files
    }
    assert {r["name"] for r in rows} == expected
    assert _one(db, "SELECT count(*) AS n FROM system_controls WHERE name LIKE 'kernel.%'")["n"] > 10


def test_kernel_modules_live(db: Any) -> None:
    rows = _rows(db, "SELECT * FROM kernel_modules")
    path = Path("/proc/modules")
    if not path.exists():
        assert rows == []
        return
    lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
    assert [r["name"] for r in rows] == [f[0] for f in lines]
    assert [r["size"] for r in rows] == [int(f[1]) for f in lines]


def test_mounts_live(db: Any) -> None:
    rows = _rows(db, "SELECT * FROM mounts")
    mounts = [line.split() for line in Path("/proc/mounts").read_text().splitlines()]
    assert len(rows) == len(mounts)
    root = [r for r in rows if r["path"] == "/"]
    assert root
    st = os.statvfs("/")
    row = root[-1]
    assert row["blocks_size"] == st.f_bsize
    assert row["blocks"] == st.f_blocks
    assert row["inodes"] == st.f_files
    # Free counts move as other processes write; allow slack.
    assert abs(row["blocks_free"] - st.f_bfree) < 100_000
    last_root = [m for m in mounts if m[1] == "/"][-1]
    assert (row["device"], row["type"], row["flags"]) == (last_root[0], last_root[2], last_root[3])


def test_platform_info_live(db: Any) -> None:
    rows = _rows(db, "SELECT * FROM platform_info")
    has_table = os.access("/sys/firmware/dmi/tables/DMI", os.R_OK)
    vendor_file = Path("/sys/class/dmi/id/bios_vendor")
    if not has_table and not vendor_file.exists():
        assert rows == []
        return
    assert rows and rows[0]["vendor"] == vendor_file.read_text().strip()


# -------------------------------------------------------------------- fake trees


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            'NAME="Ubuntu"\nVERSION="22.04.3 LTS (Jammy Jellyfish)"\nID=ubuntu\nID_LIKE=debian\n'
            'VERSION_ID="22.04"\nVERSION_CODENAME=jammy\nUBUNTU_CODENAME=jammy\n',
            {"name": "Ubuntu", "version": "22.04.3 LTS (Jammy Jellyfish)", "major": 22, "minor": 4,
             "patch": 0, "platform": "ubuntu", "platform_like": "debian", "codename": "jammy"},
        ),
        (
            "# comment=ignored\nNAME='Fedora Linux'\nVERSION_ID=39\nID=fedora\nBUILD_ID=abc\n",
            {"name": "Fedora Linux", "major": 39, "minor": 0, "platform": "fedora", "build": "abc"},
        ),
        (
            'NAME="Arch Linux"\nID=arch\nBUILD_ID=rolling\n',
            {"name": "Arch Linux", "major": 0, "minor": 0, "patch": 0, "platform": "arch", "codename": None},
        ),
        (
            'NAME="Debian"\nVERSION_ID="1.2.3"\n',
            {"major": 1, "minor": 2, "patch": 3, "platform": "posix"},
        ),
        ("", {"name": "Unknown", "platform": "posix", "major": 0}),
    ],
)  # fmt: skip
def test_os_release_variants(tmp_path: Path, text: str, expected: dict[str, Any]) -> None:
    _write(tmp_path, "etc/os-release", text)
    row = sys_osinfo.os_version_row(str(tmp_path))
    for key, value in expected.items():
        assert row.get(key) == value, key
    assert row["arch"] == os.uname().machine


def test_redhat_release_overrides(tmp_path: Path) -> None:
    _write(tmp_path, "etc/os-release", 'NAME="CentOS Linux"\nID="centos"\nVERSION_ID="7"\n')
    _write(tmp_path, "etc/redhat-release", "CentOS Linux release 7.9.2009 (Core)\n")
    row = sys_osinfo.os_version_row(str(tmp_path))
    assert row["platform"] == "rhel" and row["platform_like"] == "rhel"
    assert (row["major"], row["minor"], row["patch"]) == (7, 9, 2009)
    assert row["version"] == "CentOS Linux release 7.9.2009 (Core)"
    assert row["name"] == "CentOS Linux"


def test_kernel_info_fake_tree(tmp_path: Path) -> None:
    _write(tmp_path, "proc/version", "Linux version 5.15.0-91-generic (buildd@lcy02) #101 SMP\n")
    _write(tmp_path, "proc/cmdline", "BOOT_IMAGE=/boot/vmlinuz-5.15.0 root=UUID=abcd ro  quiet splash\n")
    row = sys_osinfo.kernel_info_row(str(tmp_path))
    assert row == {
        "version": "5.15.0-91-generic",
        "path": "/boot/vmlinuz-5.15.0",
        "device": "UUID=abcd",
        "arguments": "ro quiet splash",
    }


def test_proc_stat_parser() -> None:
    text = (
        "cpu  10 20 30 40 50 60 70 80 90 100\n"
        "cpu0 1 2 3 4 5 6 7 8 9 10\n"
        "cpu1 11 12 13 14 15 16 17\n"
        "cpu2 bad\n"
        "intr 1 2 3\n"
        "cpu3 21 22 23 24 25 26 27 28\n"
    )
    assert list(linux_system.parse_proc_stat(text)) == [
        (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10),
        (1, 11, 12, 13, 14, 15, 16, 17, 0, 0, 0),
        (3, 21, 22, 23, 24, 25, 26, 27, 28, 0, 0),
    ]


def test_meminfo_parser() -> None:
    text = (
        "MemTotal:        2048 kB\nMemFree:    1024 kB\nMemAvailable:  1500 kB\nBuffers: 10 kB\n"
        "Cached: 20 kB\nSwapCached: 0 kB\nActive: 30 kB\nInactive: 40 kB\nSwapTotal: 4096 kB\n"
        "SwapFree: 4000 kB\nHugePages_Total: 0\n"
    )
    row = linux_system.memory_info_row(text)
    assert row == tuple(v * 1024 for v in (2048, 1024, 1500, 10, 20, 0, 30, 40, 4096, 4000))
    assert linux_system.memory_info_row("MemTotal: 8 kB\n")[1:] == (None,) * 9


def test_mounts_parser_unescapes(tmp_path: Path) -> None:
    text = (
        "/dev/sda1 /media/my\\040disk ext4 rw,relatime 0 0\n"
        "server:/share\\011x /mnt/back\\134slash nfs4 ro 0 0\n"
        "short line\n"
    )
    entries = list(linux_system.parse_proc_mounts(text))
    assert [(e.device, e.path, e.type, e.flags) for e in entries] == [
        ("/dev/sda1", "/media/my disk", "ext4", "rw,relatime"),
        ("server:/share\tx", "/mnt/back\\slash", "nfs4", "ro"),
    ]
    # A real directory gets statvfs numbers; autofs is never stat'ed.
    row = linux_system.mount_row(linux_system.MountEntry("none", str(tmp_path), "tmpfs", "rw"))
    assert row[4] == os.statvfs(tmp_path).f_bsize and row[5] == os.statvfs(tmp_path).f_blocks
    auto = linux_system.mount_row(linux_system.MountEntry("auto", str(tmp_path), "autofs", "rw"))
    assert auto[4:10] == (0, 0, 0, 0, 0, 0)


def test_device_alias_resolves_links(tmp_path: Path) -> None:
    target = tmp_path / "dm-0"
    target.write_text("")
    (tmp_path / "link").symlink_to(target)
    assert linux_system.device_alias(str(tmp_path / "link")) == str(target)
    assert linux_system.device_alias("tmpfs") == "tmpfs"


def test_proc_modules_parser() -> None:
    text = (
        "nf_nat 57344 2 xt_MASQUERADE,nft_chain_nat, Live 0xffffffffc0a1b000\n"
        "crc32_pclmul 16384 0 - Live 0x0000000000000000 (E)\n"
        "broken 1\n"
    )
    assert list(linux_system.parse_proc_modules(text)) == [
        ("nf_nat", 57344, "xt_MASQUERADE,nft_chain_nat", "Live", "0xffffffffc0a1b000"),
        ("crc32_pclmul", 16384, "-", "Live", "0x0000000000000000"),
    ]


def test_sysctl_config_and_lookup(tmp_path: Path) -> None:
    _write(tmp_path, "proc/sys/kernel/hostname", "fakehost\n")
    _write(tmp_path, "proc/sys/net/ipv4/ip_forward", "0\n")
    _write(tmp_path, "proc/sys/net/ipv4/tcp_syncookies", "1\n")
    _write(tmp_path, "etc/sysctl.conf", "# comment\n; other\nnet.ipv4.ip_forward = 1\nkernel/hostname=fromconf\n")
    _write(tmp_path, "usr/lib/sysctl.d/50-default.conf", "net.ipv4.tcp_syncookies = 0\nkernel.pid_max = 9\n")
    # Same file name in /etc hides the /usr/lib one entirely.
    _write(tmp_path, "etc/sysctl.d/50-default.conf", "-net.ipv4.tcp_syncookies=1\n")
    _write(tmp_path, "etc/sysctl.d/10-ignored.txt", "kernel.pid_max = 1\n")
    config = sys_sysctl.read_sysctl_config(str(tmp_path))
    assert config == {"net.ipv4.ip_forward": "1", "kernel.hostname": "fromconf", "net.ipv4.tcp_syncookies": "1"}

    rows = list(sys_sysctl.system_controls(str(tmp_path), names=["kernel.hostname", "no.such", "../etc"]))
    assert rows == [("kernel.hostname", None, "kernel", "fakehost", "fromconf", "string", None)]
    names = [r[0] for r in sys_sysctl.system_controls(str(tmp_path), subsystems=["net"])]
    assert names == ["net.ipv4.ip_forward", "net.ipv4.tcp_syncookies"]
    assert len(list(sys_sysctl.system_controls(str(tmp_path)))) == 3


def test_cpuinfo_summary_two_sockets() -> None:
    blocks = []
    for cpu in range(8):
        package, core = divmod(cpu, 4)
        blocks.append(
            f"processor\t: {cpu}\nvendor_id\t: GenuineIntel\nmodel\t\t: 85\n"
            f"model name\t: Intel(R) Xeon(R) Gold\nmicrocode\t: 0x5003604\nphysical id\t: {package}\n"
            f"siblings\t: 4\ncore id\t\t: {core // 2}\ncpu cores\t: 2\ncpu MHz\t\t: 2100.000\nflags\t\t: fpu lm\n"
        )
    text = "\n".join(blocks)
    summary = linux_system.parse_cpuinfo_summary(text)
    assert (summary.brand, summary.subtype, summary.microcode) == ("Intel(R) Xeon(R) Gold", "85", "0x5003604")
    assert (summary.siblings, summary.physical_cores, summary.packages) == (4, 4, 2)
    rows = sys_smbios.cpuinfo_rows(text, "/nonexistent")
    assert [r["device_id"] for r in rows] == ["CPU0", "CPU1"]
    assert rows[0]["number_of_cores"] == "2" and rows[0]["logical_processors"] == 4
    assert rows[0]["address_width"] == "64" and rows[0]["current_clock_speed"] == 2100
    assert rows[0]["max_clock_speed"] is None


def test_system_info_fake_dmi(tmp_path: Path) -> None:
    dmi = {
        "sys_vendor": "LENOVO\n",
        "product_name": "20XW00A1\n",
        "product_version": "ThinkPad X1 Carbon\n",
        "board_vendor": "LENOVO\n",
        "board_name": "20XW\n",
        "product_uuid": "03000200-0400-0500-0006-000700080009\n",
    }
    for name, value in dmi.items():
        _write(tmp_path, f"sys/class/dmi/id/{name}", value)
    _write(tmp_path, "proc/meminfo", "MemTotal: 100 kB\n")
    spec = get_spec("system_info")
    row = linux_system.system_info_row(QueryContext.for_table(spec), str(tmp_path))
    # Lenovo's model and version are swapped back; the placeholder UUID is dropped.
    assert row["hardware_model"] == "ThinkPad X1 Carbon" and row["hardware_version"] == "20XW00A1"
    assert row["board_model"] == "20XW" and "hardware_serial" not in row
    # No machine-id in the fake tree either, and no runtime: nothing to report.
    assert row["uuid"] == "" and row["physical_memory"] == 102400
    _write(tmp_path, "etc/machine-id", "3d1219c7c4c5404aaa1f6d2a48adfda4\n")
    row = linux_system.system_info_row(QueryContext.for_table(spec), str(tmp_path))
    assert row["uuid"] == "3D1219C7-C4C5-404A-AA1F-6D2A48ADFDA4"
    _write(tmp_path, "sys/class/dmi/id/product_uuid", "4c4c4544-0042-3510-8052-b4c04f564433\n")
    row = linux_system.system_info_row(QueryContext.for_table(spec), str(tmp_path))
    assert row["uuid"] == "4C4C4544-0042-3510-8052-B4C04F564433"


def _smbios_structure(kind: int, body: bytes, strings: list[str]) -> bytes:
    header = struct.pack("<BBH", kind, 4 + len(body), 0x100 + kind)
    text = b"".join(s.encode() + b"\x00" for s in strings) or b"\x00"
    return header + body + text + b"\x00"


def _bios_body() -> bytes:
    body = bytearray(0x18 - 4)
    body[0x04 - 4] = 1  # vendor string
    body[0x05 - 4] = 2  # version string
    body[0x06 - 4 : 0x08 - 4] = struct.pack("<H", 0xE800)
    body[0x08 - 4] = 3  # date string
    body[0x09 - 4] = 0x0F  # 16 * 64 KiB
    body[0x14 - 4], body[0x15 - 4] = 4, 17
    return bytes(body)


def _processor_body() -> bytes:
    body = bytearray(0x30 - 4)
    body[0x04 - 4] = 1  # socket
    body[0x05 - 4] = 3  # central processor
    body[0x07 - 4] = 2  # manufacturer
    body[0x10 - 4] = 3  # version (model)
    body[0x14 - 4 : 0x16 - 4] = struct.pack("<H", 4000)
    body[0x16 - 4 : 0x18 - 4] = struct.pack("<H", 2400)
    body[0x18 - 4] = 0x41
    body[0x23 - 4], body[0x25 - 4] = 8, 16
    body[0x26 - 4 : 0x28 - 4] = struct.pack("<H", 0x04)
    return bytes(body)


def test_smbios_platform_and_cpu_info(tmp_path: Path) -> None:
    blob = (
        _smbios_structure(0, _bios_body(), ["ACME Firmware", "1.2.3  ", "01/02/2023"])
        + _smbios_structure(4, _processor_body(), ["CPU Socket 0", "ACME", "ACME Turbo 9000"])
        + _smbios_structure(4, bytes(0x1A - 4), [])  # an empty socket without strings
        + _smbios_structure(127, b"", [])
    )
    _write(tmp_path, sys_smbios.DMI_TABLE, blob)
    (tmp_path / "sys/firmware/efi").mkdir(parents=True)
    assert sys_smbios.platform_info_rows(str(tmp_path)) == [
        {
            "vendor": "ACME Firmware",
            "version": "1.2.3",
            "date": "01/02/2023",
            "revision": "4.17",
            "extra": "",
            "firmware_type": "uefi",
            "address": "0xe800",
            "size": str(16 * 64 * 1024),
            "volume_size": 0,
        }
    ]
    rows = sys_smbios.cpu_info_rows(str(tmp_path))
    assert len(rows) == 2
    assert rows[0] == {
        "socket_designation": "CPU Socket 0",
        "model": "ACME Turbo 9000",
        "manufacturer": "ACME",
        "processor_type": "3",
        "cpu_status": 0x41,
        "current_clock_speed": 2400,
        "max_clock_speed": 4000,
        "number_of_cores": "8",
        "logical_processors": 16,
        "address_width": "64",
        "device_id": "CPU0",
    }
    # Type 0 (unknown) processors get no device_id, as in osquery.
    assert "device_id" not in rows[1] and rows[1]["model"] == ""


def test_platform_info_without_firmware_tables(tmp_path: Path) -> None:
    assert sys_smbios.platform_info_rows(str(tmp_path)) == []
    _write(tmp_path, "sys/class/dmi/id/bios_vendor", "SeaBIOS\n")
    _write(tmp_path, "sys/class/dmi/id/bios_version", "1.16.0\n")
    rows = sys_smbios.platform_info_rows(str(tmp_path))
    assert rows[0]["vendor"] == "SeaBIOS" and rows[0]["firmware_type"] == "bios"


def test_uptime_split() -> None:
    assert linux_system.uptime_row(2 * 86400 + 3 * 3600 + 4 * 60 + 5) == (2, 3, 4, 5, 183845)


# ----------------------------------------------------------------------- portable


def test_portable_memory_and_mounts(portable: Connection) -> None:
    row = _one(portable, "SELECT * FROM memory_info")
    assert row["memory_total"] == _meminfo_bytes("MemTotal")
    assert row["swap_total"] == _meminfo_bytes("SwapTotal")
    rows = _rows(portable, "SELECT * FROM mounts WHERE path = '/'")
    assert rows
    st = os.statvfs("/")
    assert rows[-1]["blocks"] == st.f_blocks and rows[-1]["blocks_size"] == st.f_bsize


def test_portable_uptime_cpu_time_load(portable: Connection) -> None:
    proc_uptime = float(Path("/proc/uptime").read_text().split()[0])
    row = _one(portable, "SELECT * FROM uptime")
    assert abs(row["total_seconds"] - proc_uptime) <= 3
    before = _proc_stat_cores()
    rows = _rows(portable, "SELECT * FROM cpu_time")
    assert len(rows) == len(before)
    for r in rows:
        assert abs(r["user"] - before[r["core"]][0]) <= 200  # ticks; two seconds of slack
    assert [r["period"] for r in _rows(portable, "SELECT * FROM load_average")] == ["1m", "5m", "15m"]


def test_portable_identity(portable: Connection) -> None:
    info = _one(portable, "SELECT * FROM system_info")
    assert info["hostname"] == socket.gethostname()
    assert info["physical_memory"] == _meminfo_bytes("MemTotal")
    assert info["cpu_logical_cores"] == os.cpu_count()
    version = _one(portable, "SELECT * FROM os_version")
    release = _os_release()
    assert version["name"] == release.get("NAME") and version["platform"] == release.get("ID")
    assert _one(portable, "SELECT version FROM kernel_info")["version"] == os.uname().release
    assert {r["type"] for r in _rows(portable, "SELECT * FROM ulimit_info")} >= {"nofile", "stack"}


def test_system_controls_skips_values_when_unused(tmp_path: Path) -> None:
    _write(tmp_path, "proc/sys/kernel/hostname", "fakehost\n")
    rows = list(sys_sysctl.system_controls(str(tmp_path), read_values=False))
    assert rows == [("kernel.hostname", None, "kernel", None, None, "string", None)]
