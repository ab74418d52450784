"""Process tables against ground truth the test computes itself.

Live tests compare with what this process knows about itself (os.getpid(),
os.getppid(), the pipe, file and child it creates); parser tests run the
generators on a fake /proc tree under tmp_path.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hostql.sql.connection import Connection
from hostql.sql.context import Op, QueryContext
from hostql.tables.linux import proc_pipes, proc_sysmem, procfs
from hostql.tables.linux import processes as linux_processes
from hostql.tables.registry import get_spec

LIBC = ctypes.CDLL(None, use_errno=True)
SLEEP = shutil.which("sleep") or "/bin/sleep"


def _rows(db: Any, sql: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = db.execute(sql).as_dicts()
    return result


def _kernel_comm() -> str:
    """The process name as the kernel keeps it, via prctl (not via /proc)."""
    buf = ctypes.create_string_buffer(17)
    assert LIBC.prctl(16, buf, 0, 0, 0) == 0  # PR_GET_NAME
    return buf.value.decode()


@pytest.fixture
def child() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([SLEEP, "30"], env={"HOSTQL_TEST_MARK": "a=b c", "PATH": "/usr/bin:/bin"})
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=10)


# ---------------------------------------------------------------- processes


def test_own_process_row(db: Any) -> None:
    pid = os.getpid()
    rows = _rows(db, f"SELECT * FROM processes WHERE pid = {pid}")
    assert len(rows) == 1
    row = rows[0]
    assert row["name"] == _kernel_comm()
    assert row["cmdline"] == " ".join(sys.orig_argv)
    assert row["path"] == os.path.realpath(sys.executable)
    assert row["on_disk"] == 1
    assert row["cwd"] == os.getcwd()
    assert os.stat(row["root"]).st_ino == os.stat("/").st_ino
    assert row["state"] == "R"  # we are running while we read our own stat
    assert (row["uid"], row["euid"]) == (os.getuid(), os.geteuid())
    assert (row["gid"], row["egid"]) == (os.getgid(), os.getegid())
    assert (row["suid"], row["sgid"]) == (os.getresuid()[2], os.getresgid()[2])
    assert row["parent"] == os.getppid()
    assert row["pgroup"] == os.getpgrp()
    assert row["nice"] == os.getpriority(os.PRIO_PROCESS, 0)
    assert row["threads"] == len(os.listdir("/proc/self/task"))
    times = os.times()
    assert abs(row["user_time"] - times.user * 1000) <= 50
    assert abs(row["system_time"] - times.system * 1000) <= 50
    import psutil

    assert abs(row["start_time"] - psutil.Process().create_time()) <= 1
    rss = psutil.Process().memory_info().rss  # psutil reads statm, we read status
    assert abs(row["resident_size"] - rss) <= rss // 5
    assert row["total_size"] >= row["resident_size"]
    assert row["disk_bytes_read"] >= 0 and row["disk_bytes_written"] >= 0
    assert row["cgroup_path"].startswith("/")
    # Columns of macOS and Windows stay NULL here.
    hidden = _rows(db, f"SELECT elevated_token, handle_count, upid, translated FROM processes WHERE pid = {pid}")
    assert hidden == [dict.fromkeys(("elevated_token", "handle_count", "upid", "translated"))]


def test_child_appears_then_disappears(db: Any) -> None:
    proc = subprocess.Popen([SLEEP, "30"])
    try:
        rows = _rows(db, f"SELECT pid, name, cmdline, path, parent FROM processes WHERE pid = {proc.pid}")
        assert rows == [
            {
                "pid": proc.pid,
                "name": "sleep",
                "cmdline": f"{SLEEP} 30",
                "path": os.path.realpath(SLEEP),
                "parent": os.getpid(),
            }
        ]
        everyone = {r["pid"] for r in _rows(db, "SELECT pid FROM processes")}
        assert {os.getpid(), proc.pid} <= everyone
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert _rows(db, f"SELECT pid FROM processes WHERE pid = {proc.pid}") == []
    assert proc.pid not in {r["pid"] for r in _rows(db, "SELECT pid FROM processes")}


def test_pid_in_returns_exactly_those(db: Any, child: subprocess.Popen[bytes]) -> None:
    me = os.getpid()
    rows = _rows(db, f"SELECT pid, parent FROM processes WHERE pid IN ({me}, {child.pid}, 2147483646)")
    assert sorted(r["pid"] for r in rows) == sorted([me, child.pid])
    assert {r["pid"]: r["parent"] for r in rows}[child.pid] == me


def test_only_needed_files_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []
    real = procfs.read_file

    def spy(path: str) -> bytes:
        opened.append(path.rsplit("/", 1)[-1])
        return real(path)

    monkeypatch.setattr(procfs, "read_file", spy)
    rows = list(linux_processes.process_rows(_ctx("processes", {"pid", "name"}, (os.getpid(),))))
    assert [r[0] for r in rows] == [os.getpid()]
    assert opened == ["stat"]


def test_full_scan_matches_proc_listing(db: Any) -> None:
    import psutil

    before = set(psutil.pids())
    rows = _rows(db, "SELECT pid, name, cmdline FROM processes")
    after = set(psutil.pids())
    pids = {r["pid"] for r in rows}
    assert len(pids) == len(rows)
    assert pids <= before | after
    assert {os.getpid(), os.getppid()} <= pids
    # A process may only be missing if it was exiting while we read it.
    for pid in (before & after) - pids:
        try:
            assert psutil.Process(pid).status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
        except psutil.NoSuchProcess:
            pass


def test_memory_from_statm_matches_status(db: Any) -> None:
    pid = os.getpid()
    # resident_size alone is read from statm; with uid it comes from status.
    cheap = _rows(db, f"SELECT resident_size, total_size FROM processes WHERE pid = {pid}")[0]
    full = _rows(db, f"SELECT resident_size, total_size, uid FROM processes WHERE pid = {pid}")[0]
    assert abs(cheap["resident_size"] - full["resident_size"]) <= 1 << 20
    assert abs(cheap["total_size"] - full["total_size"]) <= 1 << 20


# --------------------------------------------------- per-process side tables


def test_process_envs_shows_child_variable(db: Any, child: subprocess.Popen[bytes]) -> None:
    rows = _rows(db, f"SELECT key, value FROM process_envs WHERE pid = {child.pid}")
    assert {r["key"]: r["value"] for r in rows} == {"HOSTQL_TEST_MARK": "a=b c", "PATH": "/usr/bin:/bin"}


def test_process_open_files_shows_held_file(db: Any) -> None:
    with tempfile.NamedTemporaryFile() as handle:
        rows = _rows(db, f"SELECT fd, path FROM process_open_files WHERE pid = {os.getpid()}")
        assert {"fd": handle.fileno(), "path": handle.name} in rows
    rows = _rows(db, f"SELECT fd, path FROM process_open_files WHERE pid = {os.getpid()}")
    assert handle.name not in {r["path"] for r in rows}


def test_process_open_pipes_pairs_child(db: Any) -> None:
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen([SLEEP, "30"], pass_fds=[write_fd])
    os.close(write_fd)
    try:
        inode = os.fstat(read_fd).st_ino
        rows = _rows(db, f"SELECT * FROM process_open_pipes WHERE inode = {inode}")
        assert {
            "pid": os.getpid(), "fd": read_fd, "mode": "r", "inode": inode, "type": "anonymous",
            "partner_pid": proc.pid, "partner_fd": write_fd, "partner_mode": "w",
        } in rows
        assert {
            "pid": proc.pid, "fd": write_fd, "mode": "w", "inode": inode, "type": "anonymous",
            "partner_pid": os.getpid(), "partner_fd": read_fd, "partner_mode": "r",
        } in rows
    finally:
        proc.kill()
        proc.wait(timeout=10)
        os.close(read_fd)


def test_process_open_pipes_named_fifo(db: Any, tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    fd = os.open(fifo, os.O_RDWR)
    try:
        inode = os.stat(fifo).st_ino
        rows = _rows(db, f"SELECT * FROM process_open_pipes WHERE pid = {os.getpid()} AND fd = {fd}")
        assert rows == [{
            "pid": os.getpid(), "fd": fd, "mode": "rw", "inode": inode, "type": "named",
            "partner_pid": None, "partner_fd": None, "partner_mode": None,
        }]
    finally:
        os.close(fd)


def test_process_namespaces_match_stat(db: Any) -> None:
    rows = _rows(db, f"SELECT * FROM process_namespaces WHERE pid = {os.getpid()}")
    assert len(rows) == 1
    for kind in procfs.NAMESPACES:
        assert rows[0][f"{kind}_namespace"] == str(os.stat(f"/proc/self/ns/{kind}").st_ino)


def test_process_memory_map_of_self(db: Any) -> None:
    rows = _rows(db, f"SELECT * FROM process_memory_map WHERE pid = {os.getpid()}")
    exe = os.stat(os.path.realpath(sys.executable))
    mapped = [r for r in rows if r["path"] == os.path.realpath(sys.executable)]
    assert mapped and all(r["inode"] == exe.st_ino for r in mapped)
    assert any(r["permissions"].startswith("r-x") for r in mapped)
    stack = [r for r in rows if r["path"] == "[stack]"]
    assert stack and stack[0]["pseudo"] == 1 and stack[0]["inode"] == 0
    # Memory we allocate lies in exactly one writable region.
    buffer = ctypes.create_string_buffer(4096)
    address = ctypes.addressof(buffer)
    holding = [r for r in rows if int(r["start"], 16) <= address < int(r["end"], 16)]
    assert len(holding) == 1 and holding[0]["permissions"].startswith("rw")


# ------------------------------------------------------------- system memory


def test_shared_memory_segment_we_create(db: Any) -> None:
    LIBC.shmget.argtypes = [ctypes.c_int, ctypes.c_size_t, ctypes.c_int]
    LIBC.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
    LIBC.shmat.restype = ctypes.c_void_p
    LIBC.shmdt.argtypes = [ctypes.c_void_p]
    LIBC.shmctl.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
    shmid = LIBC.shmget(0, 8192, 0o1000 | 0o640)  # IPC_PRIVATE, IPC_CREAT
    assert shmid >= 0, os.strerror(ctypes.get_errno())
    address = LIBC.shmat(shmid, None, 0)
    try:
        assert address not in (None, ctypes.c_void_p(-1).value)
        rows = _rows(db, f"SELECT * FROM shared_memory WHERE shmid = {shmid}")
        assert len(rows) == 1
        row = rows[0]
        assert row["size"] == 8192
        assert row["creator_pid"] == os.getpid() and row["pid"] == os.getpid()
        assert row["owner_uid"] == os.geteuid() and row["creator_uid"] == os.geteuid()
        assert row["permissions"] == "0640"
        assert row["attached"] == 1 and row["status"] == "" and row["locked"] == 0
        assert abs(row["atime"] - time.time()) < 60
        # Removal while attached only marks the segment.
        assert LIBC.shmctl(shmid, 0, None) == 0  # IPC_RMID
        row = _rows(db, f"SELECT * FROM shared_memory WHERE shmid = {shmid}")[0]
        assert row["status"] == "dest" and row["permissions"] == "1640"
    finally:
        LIBC.shmdt(ctypes.c_void_p(address))
        LIBC.shmctl(shmid, 0, None)
    assert _rows(db, f"SELECT * FROM shared_memory WHERE shmid = {shmid}") == []


def test_memory_map_live(db: Any) -> None:
    rows = _rows(db, "SELECT * FROM memory_map")
    memmap = Path("/sys/firmware/memmap")
    if memmap.is_dir():
        assert len(rows) == len([p for p in memmap.iterdir() if p.name.isdigit()])
        assert "System RAM" in {r["name"] for r in rows}
    for row in rows:
        assert int(row["start"], 16) <= int(row["end"], 16)


def test_memory_map_sources(tmp_path: Path) -> None:
    for index, (kind, start, end) in enumerate([("System RAM", "0x0", "0x9fbff"), ("Reserved", "0x9fc00", "0xfffff")]):
        region = tmp_path / "sys/firmware/memmap" / str(index)
        region.mkdir(parents=True)
        (region / "type").write_text(kind + "\n")
        (region / "start").write_text(start + "\n")
        (region / "end").write_text(end + "\n")
    assert proc_sysmem.memory_map_rows(str(tmp_path)) == [
        ("System RAM", "0x0", "0x9fbff"), ("Reserved", "0x9fc00", "0xfffff"),
    ]
    other = tmp_path / "other"
    (other / "proc").mkdir(parents=True)
    (other / "proc/iomem").write_text(
        "00000000-00000fff : Reserved\n00100000-bfffffff : System RAM\n  01000000-02276f47 : Kernel code\n"
    )
    assert proc_sysmem.memory_map_rows(str(other)) == [
        ("Reserved", "0x0", "0xfff"), ("System RAM", "0x100000", "0xbfffffff"),
    ]
    # What an unprivileged reader sees: zeros, which are no information at all.
    (other / "proc/iomem").write_text("00000000-00000000 : Reserved\n00000000-00000000 : System RAM\n")
    assert proc_sysmem.memory_map_rows(str(other)) == []


def test_parse_sysvipc_shm() -> None:
    text = (
        "       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid"
        "      atime      dtime      ctime                   rss                  swap\n"
        "   1433715          4  3600                    56  2182  2210      5   101   104   102   104"
        " 1795902503 1795902504 1795902501                  4096                     0\n"
    )
    assert list(proc_sysmem.parse_sysvipc_shm(text)) == [
        (4, 101, 102, 2210, 2182, 1795902503, 1795902504, 1795902501, "3600", 56, 5, "dest", 1)
    ]


# ---------------------------------------------------------- fake /proc tree

STAT_TAIL = "S 1 42 42 0 -1 4194560 100 0 0 0 250 125 0 0 20 5 3 0 {start} 1000 10 0"


def _fake_process(proc: Path, pid: int, comm: str, start_ticks: int) -> Path:
    base = proc / str(pid)
    base.mkdir(parents=True)
    (base / "stat").write_text(f"{pid} ({comm}) " + STAT_TAIL.format(start=start_ticks) + "\n")
    (base / "status").write_text(
        f"Name:\t{comm}\nState:\tS (sleeping)\nUid:\t1000\t1001\t1002\t1003\n"
        "Gid:\t2000\t2001\t2002\t2003\nVmSize:\t   20000 kB\nVmLck:\t       0 kB\nVmRSS:\t    3000 kB\n"
    )
    (base / "statm").write_text("5000 750 100 10 0 300 0\n")
    (base / "cmdline").write_bytes(b"/usr/bin/tool\0--flag\0two words\0")
    (base / "io").write_text("rchar: 1\nread_bytes: 4096\nwrite_bytes: 8192\ncancelled_write_bytes: 4096\n")
    (base / "cgroup").write_text("0::/user.slice/a:b\n")
    (base / "environ").write_bytes(b"A=1\0B=x=y\0EMPTY=\0")
    (base / "maps").write_text(
        "00400000-00452000 r-xp 00001000 08:02 173521      /usr/bin/tool with space\n"
        "7ffd0000-7ffd2000 rw-p 00000000 00:00 0           [stack]\n"
        "7f0000000000-7f0000001000 rw-p 00000000 00:00 0 \n"
    )
    return base


def _ctx(table: str, columns: set[str] | None = None, pids: tuple[int, ...] = ()) -> QueryContext:
    ctx = QueryContext.for_table(get_spec(table), columns_used=columns)
    for pid in pids:
        ctx.add("pid", Op.EQUALS, pid)
    return ctx


def test_fake_tree_processes(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "stat").write_text("cpu  1 2 3\nbtime 1700000000\nprocesses 5\n")
    base = _fake_process(proc, 4242, "a b) (c", start_ticks=procfs.CLK_TCK * 30)
    exe = tmp_path / "tool"
    exe.write_text("")
    (base / "exe").symlink_to(exe)
    (base / "cwd").symlink_to(tmp_path)
    (proc / "77").mkdir()  # a pid that vanished: listed, but its files are gone
    (proc / "self").mkdir()

    rows = list(linux_processes.process_rows(_ctx("processes"), str(tmp_path)))
    assert len(rows) == 1
    row = dict(zip(get_spec("processes").column_names, rows[0]))
    assert row["pid"] == 4242 and row["name"] == "a b) (c" and row["state"] == "S"
    assert (row["parent"], row["pgroup"], row["nice"], row["threads"]) == (1, 42, 5, 3)
    assert row["user_time"] == 250 * 1000 // procfs.CLK_TCK
    assert row["system_time"] == 125 * 1000 // procfs.CLK_TCK
    assert row["start_time"] == 1700000030
    assert (row["uid"], row["euid"], row["suid"]) == (1000, 1001, 1002)
    assert (row["gid"], row["egid"], row["sgid"]) == (2000, 2001, 2002)
    assert (row["resident_size"], row["total_size"], row["wired_size"]) == (3000 * 1024, 20000 * 1024, 0)
    assert (row["disk_bytes_read"], row["disk_bytes_written"]) == (4096, 4096)
    assert row["cmdline"] == "/usr/bin/tool --flag two words"
    assert row["cgroup_path"] == "/user.slice/a:b"
    assert (row["path"], row["on_disk"], row["cwd"], row["root"]) == (str(exe), 1, str(tmp_path), "")

    # Memory columns alone come from statm (pages), without status.
    (base / "status").unlink()
    rows = list(linux_processes.process_rows(_ctx("processes", {"pid", "resident_size", "total_size"}, (4242,)),
                                             str(tmp_path)))
    assert [(r[0], r[15], r[16]) for r in rows] == [(4242, 750 * procfs.PAGE_SIZE, 5000 * procfs.PAGE_SIZE)]

    exe.unlink()
    (base / "exe").unlink()
    (base / "exe").symlink_to(f"{exe} (deleted)")
    ctx = _ctx("processes", {"pid", "path", "on_disk"})
    rows = list(linux_processes.process_rows(ctx, str(tmp_path)))
    # The empty pid 77 looks like a kernel thread (no executable) when only links are read.
    assert sorted((r[0], r[2], r[13]) for r in rows) == [(77, "", -1), (4242, str(exe), 0)]


def test_fake_tree_reads_only_used_columns(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    base = _fake_process(proc, 5, "x", 0)
    (base / "stat").write_text("garbage")  # never read for these columns
    (base / "status").unlink()
    rows = list(linux_processes.process_rows(_ctx("processes", {"pid", "cmdline"}, (5, 6)), str(tmp_path)))
    assert [(r[0], r[3], r[1], r[7]) for r in rows] == [(5, "/usr/bin/tool --flag two words", None, None)]


def test_fake_tree_side_tables(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    base = _fake_process(proc, 9, "x", 0)
    (base / "fd").mkdir()
    (base / "fd" / "0").symlink_to("/dev/null")
    (base / "fd" / "3").symlink_to("pipe:[1234]")
    (base / "ns").mkdir()
    (base / "ns" / "net").symlink_to("net:[4026531840]")
    (base / "ns" / "uts").symlink_to("uts:[4026531838]")
    root = str(tmp_path)
    assert list(linux_processes.process_env_rows(_ctx("process_envs"), root)) == [
        (9, "A", "1"), (9, "B", "x=y"), (9, "EMPTY", ""),
    ]
    assert list(linux_processes.open_file_rows(_ctx("process_open_files"), root)) == [
        (9, 0, "/dev/null"), (9, 3, "pipe:[1234]"),
    ]
    assert list(linux_processes.namespace_rows(_ctx("process_namespaces"), root)) == [
        (9, None, None, None, "4026531840", None, None, "4026531838"),
    ]
    assert list(linux_processes.memory_map_rows(_ctx("process_memory_map", pids=(9,)), root)) == [
        (9, "0x00400000", "0x00452000", "r-xp", 4096, "08:02", 173521, "/usr/bin/tool with space", 0),
        (9, "0x7ffd0000", "0x7ffd2000", "rw-p", 0, "00:00", 0, "[stack]", 1),
        (9, "0x7f0000000000", "0x7f0000001000", "rw-p", 0, "00:00", 0, "", 0),
    ]
    # A pid that is not there gives nothing rather than an error.
    assert list(linux_processes.memory_map_rows(_ctx("process_memory_map", pids=(10,)), root)) == []


def test_parse_stat_edge_cases() -> None:
    parsed = procfs.parse_stat(b"12 ((sd-pam)) S " + b"1 " * 30)
    assert parsed is not None and parsed[0] == "(sd-pam)" and parsed[1][0] == b"S"
    assert procfs.parse_stat(b"12 (truncated") is None
    assert procfs.parse_stat(b"12 (short) S 1 2") is None


def test_pipe_pairing_rules() -> None:
    end = proc_pipes.PipeEnd
    ends = [
        end(1, 3, "r", 50, "anonymous"),
        end(2, 4, "w", 50, "anonymous"),
        end(3, 5, "r", 50, "anonymous"),  # a second reader: no row pairs it with pid 1
        end(4, 6, "w", 60, "anonymous"),  # the other end is not held by anyone we can see
    ]
    rows = list(proc_pipes.pair_pipe_ends(ends))
    assert rows == [
        (1, 3, "r", 50, "anonymous", 2, 4, "w"),
        (2, 4, "w", 50, "anonymous", 1, 3, "r"),
        (2, 4, "w", 50, "anonymous", 3, 5, "r"),
        (3, 5, "r", 50, "anonymous", 2, 4, "w"),
        (4, 6, "w", 60, "anonymous", None, None, None),
    ]


# ---------------------------------------------------------------- portable


@pytest.fixture
def portable_db(monkeypatch: pytest.MonkeyPatch) -> Iterator[Connection]:
    monkeypatch.setenv("HOSTQL_PORTABLE", "1")
    conn = Connection()
    try:
        yield conn
    finally:
        conn.close()


def test_portable_processes_agree(portable_db: Connection, db: Any, child: subprocess.Popen[bytes]) -> None:
    me = os.getpid()
    sql = f"SELECT pid, name, parent, uid, cmdline, path, threads FROM processes WHERE pid IN ({me}, {child.pid})"
    portable = _rows(portable_db, sql)
    assert portable == _rows(db, sql)
    assert {r["pid"]: r["parent"] for r in portable} == {me: os.getppid(), child.pid: me}
    assert me in {r["pid"] for r in _rows(portable_db, "SELECT pid FROM processes")}
    row = _rows(portable_db, f"SELECT * FROM processes WHERE pid = {me}")[0]
    assert row["state"] == "R" and row["on_disk"] == 1 and row["pgroup"] == os.getpgrp()
    assert row["resident_size"] > 0 and abs(row["user_time"] - os.times().user * 1000) <= 50


def test_portable_side_tables(portable_db: Connection, child: subprocess.Popen[bytes]) -> None:
    envs = _rows(portable_db, f"SELECT key, value FROM process_envs WHERE pid = {child.pid}")
    assert {"key": "HOSTQL_TEST_MARK", "value": "a=b c"} in envs
    with tempfile.NamedTemporaryFile() as handle:
        files = _rows(portable_db, f"SELECT fd, path FROM process_open_files WHERE pid = {os.getpid()}")
        assert {"fd": handle.fileno(), "path": handle.name} in files
    maps = _rows(portable_db, f"SELECT * FROM process_memory_map WHERE pid = {os.getpid()}")
    assert any(r["path"] == "[stack]" and r["pseudo"] == 1 for r in maps)
    assert any(r["path"] == os.path.realpath(sys.executable) for r in maps)
