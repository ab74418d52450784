"""users, groups, user_groups, shadow, sudoers, logged_in_users, last, shell_history."""

from __future__ import annotations

import grp
import logging
import os
import pwd
import struct
from pathlib import Path
from typing import Any

import psutil
import pytest

from hostql.sql.connection import Connection
from hostql.sql.context import Constraint, Op, QueryContext
from hostql.tables.common.users_accounts import (
    GroupEntry,
    parse_group,
    parse_passwd,
    users_for_context,
)
from hostql.tables.common.users_history import parse_history_lines
from hostql.tables.linux import users as lu
from hostql.tables.linux import utmp
from hostql.tables.registry import get_spec


def ctx(table: str, **equals: Any) -> QueryContext:
    """A context with ``=``/``IN`` constraints, as the engine would build it."""
    constraints: dict[str, list[Constraint]] = {}
    for column, value in equals.items():
        values = value if isinstance(value, (list, set, tuple)) else [value]
        constraints[column] = [Constraint(Op.EQUALS, v) for v in values]
    return QueryContext.for_table(get_spec(table), constraints)


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def as_dicts(table: str, rows: Any) -> list[dict[str, Any]]:
    names = get_spec(table).column_names
    out = []
    for row in rows:
        assert len(row) == len(names)
        out.append(dict(zip(names, row)))
    return out


PASSWD = """\
root:x:0:0:root:/root:/bin/bash
# a comment line
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
alice:x:1000:1000:Alice Liddell,,,:/home/alice:/bin/zsh
+nisuser::::::
broken:x:notanumber:1:bad:/nowhere:/bin/sh
short:x:5:5
nobody:x:4294967294:4294967294:Nobody:/nonexistent:/usr/sbin/nologin
"""

GROUP = """\
root:x:0:
daemon:x:1:
adm:x:4:alice,daemon
alice:x:1000:
sudo:x:27:alice
root2:x:0:
nogroup:x:4294967294:
"""


@pytest.fixture
def fake_root(tmp_path: Path) -> Path:
    write(tmp_path / "etc/passwd", PASSWD)
    write(tmp_path / "etc/group", GROUP)
    return tmp_path


# --- users ---------------------------------------------------------------------------------

def test_users_root_matches_pwd(db: Any) -> None:
    expected = pwd.getpwuid(0)
    rows = db.execute("SELECT uid, gid, username, directory, shell, uuid FROM users WHERE uid = 0").rows
    assert rows == [(0, expected.pw_gid, expected.pw_name, expected.pw_dir, expected.pw_shell, "")]


def test_users_lists_every_local_account(db: Any) -> None:
    expected = set()
    for line in Path("/etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if len(fields) >= 7 and line[0] not in "#+-" and fields[2].isdigit():
            expected.add((fields[0], int(fields[2])))
    rows = db.execute("SELECT username, uid FROM users").rows
    assert set(rows) == expected
    assert len(rows) == len(expected)


def test_users_username_and_in_constraints(db: Any) -> None:
    root_name = pwd.getpwuid(0).pw_name
    assert db.execute("SELECT uid FROM users WHERE username = ?", (root_name,)).rows == [(0,)]
    both = db.execute("SELECT uid FROM users WHERE uid IN (0, 1) ORDER BY uid").rows
    assert both == [(u,) for u in (0, 1) if _has_uid(u)]


def _has_uid(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


def test_users_namespace_of_own_process(db: Any) -> None:
    pid = os.getpid()
    rows = db.execute(
        "SELECT uid, username, pid_with_namespace FROM users WHERE uid = 0 AND pid_with_namespace = ?", (pid,)
    ).rows
    assert rows == [(0, pwd.getpwuid(0).pw_name, pid)]


def test_users_hidden_columns_default_to_zero(db: Any) -> None:
    rows = db.execute("SELECT include_remote, pid_with_namespace FROM users WHERE uid = 0").rows
    assert rows == [(0, 0)]
    remote = db.execute("SELECT uid, include_remote FROM users WHERE uid = 0 AND include_remote = 1").rows
    assert remote == [(0, 1)]


def test_users_fake_tree(fake_root: Path) -> None:
    rows = as_dicts("users", lu.gen_users(ctx("users"), root=str(fake_root)))
    assert [r["username"] for r in rows] == ["root", "daemon", "alice", "nobody"]
    alice = rows[2]
    assert alice["uid"] == 1000 and alice["gid"] == 1000
    assert alice["description"] == "Alice Liddell,,,"
    assert alice["directory"] == "/home/alice" and alice["shell"] == "/bin/zsh"
    assert alice["uuid"] == "" and alice["type"] == "local" and alice["pid_with_namespace"] == 0
    nobody = rows[3]
    assert nobody["uid"] == 4294967294 and nobody["uid_signed"] == -2 and nobody["gid_signed"] == -2


def test_users_fake_tree_constraints(fake_root: Path) -> None:
    only = list(lu.gen_users(ctx("users", uid=["1000", 1]), root=str(fake_root)))
    assert sorted(r[4] for r in only) == ["alice", "daemon"]
    by_name = list(lu.gen_users(ctx("users", username="root"), root=str(fake_root)))
    assert [r[0] for r in by_name] == [0]
    assert list(lu.gen_users(ctx("users", uid="abc"), root=str(fake_root))) == []


def test_users_missing_passwd_gives_no_rows(tmp_path: Path) -> None:
    assert list(lu.gen_users(ctx("users"), root=str(tmp_path))) == []


def test_passwd_parser_skips_bad_lines() -> None:
    entries = list(parse_passwd(PASSWD.splitlines()))
    assert [e.name for e in entries] == ["root", "daemon", "alice", "nobody"]


# --- groups / user_groups ------------------------------------------------------------------

def test_groups_root_matches_grp(db: Any) -> None:
    assert db.execute("SELECT gid, groupname FROM groups WHERE gid = 0").rows == [(0, grp.getgrgid(0).gr_name)]


def test_groups_lists_local_groups(db: Any) -> None:
    expected: dict[int, str] = {}
    for line in Path("/etc/group").read_text().splitlines():
        fields = line.split(":")
        if len(fields) >= 4 and line[0] not in "#+-" and fields[2].isdigit():
            expected.setdefault(int(fields[2]), fields[0])
    rows = db.execute("SELECT gid, groupname FROM groups").rows
    assert dict(rows) == expected and len(rows) == len(expected)


def test_groups_fake_tree(fake_root: Path) -> None:
    rows = as_dicts("groups", lu.gen_groups(ctx("groups"), root=str(fake_root)))
    # gid 0 appears twice in the file; the first name wins, as with getgrent.
    assert [(r["gid"], r["groupname"]) for r in rows] == [
        (0, "root"), (1, "daemon"), (4, "adm"), (1000, "alice"), (27, "sudo"), (4294967294, "nogroup")
    ]
    assert rows[-1]["gid_signed"] == -2
    only = list(lu.gen_groups(ctx("groups", gid=27), root=str(fake_root)))
    assert [r[2] for r in only] == ["sudo"]
    assert list(parse_group(["bad:x:y:", "ok:x:3:a, b ,"])) == [GroupEntry("ok", 3, ("a", "b"))]


def test_user_groups_fake_tree(fake_root: Path) -> None:
    rows = list(lu.gen_user_groups(ctx("user_groups"), root=str(fake_root)))
    by_uid: dict[int, list[int]] = {}
    for uid, gid in rows:
        by_uid.setdefault(uid, []).append(gid)
    assert by_uid[1000] == [1000, 4, 27]  # primary group first, then memberships in file order
    assert by_uid[1] == [1, 4]
    assert by_uid[0] == [0]
    assert list(lu.gen_user_groups(ctx("user_groups", uid=1000, gid=27), root=str(fake_root))) == [(1000, 27)]


def test_user_groups_root_matches_getgrouplist(db: Any) -> None:
    root = pwd.getpwuid(0)
    expected = set(os.getgrouplist(root.pw_name, root.pw_gid))
    rows = db.execute("SELECT gid FROM user_groups WHERE uid = 0").rows
    assert {r[0] for r in rows} == expected


# --- shadow ------------------------------------------------------------------------------

SHADOW = """\
root:$6$salt$hashhash:19000:0:99999:7:::
daemon:*:19000:0:99999:7:::
notset:!!:19001::::::
locked:!$6$salt$hash:19002:1:2:3:4:5:
empty::19003:0:99999:7:10:20000:
yescrypt:$y$j9T$abc$def:19004:0:99999:7:::
"""


def test_shadow_fake_tree(tmp_path: Path) -> None:
    write(tmp_path / "etc/shadow", SHADOW)
    rows = {r["username"]: r for r in as_dicts("shadow", lu.gen_shadow(ctx("shadow"), root=str(tmp_path)))}
    assert list(rows) == ["root", "daemon", "notset", "locked", "empty", "yescrypt"]
    assert (rows["root"]["password_status"], rows["root"]["hash_alg"]) == ("active", "6")
    assert (rows["daemon"]["password_status"], rows["daemon"]["hash_alg"]) == ("locked", None)
    assert rows["notset"]["password_status"] == "not_set"
    assert rows["locked"]["password_status"] == "locked"
    assert rows["empty"]["password_status"] == "empty"
    assert rows["yescrypt"]["hash_alg"] == "y"
    assert [rows["locked"][k] for k in ("last_change", "min", "max", "warning", "inactive", "expire", "flag")] == [
        19002, 1, 2, 3, 4, 5, -1
    ]
    assert rows["root"]["inactive"] == -1 and rows["root"]["expire"] == -1
    assert rows["notset"]["min"] == -1
    only = list(lu.gen_shadow(ctx("shadow", username="empty"), root=str(tmp_path)))
    assert [r[-1] for r in only] == ["empty"]


def test_shadow_live_matches_file(db: Any) -> None:
    path = Path("/etc/shadow")
    try:
        names = [line.split(":")[0] for line in path.read_text().splitlines() if line and line[0] != "#"]
    except OSError:
        names = []
    rows = db.execute("SELECT username, last_change FROM shadow").rows
    assert [r[0] for r in rows] == names
    if "root" in names:
        assert db.execute("SELECT username FROM shadow WHERE username = 'root'").rows == [("root",)]


# --- sudoers -----------------------------------------------------------------------------

SUDOERS = """\
#
# This file MUST be edited with the 'visudo' command as root.
Defaults\tenv_reset
Defaults   secure_path="/usr/sbin:/usr/bin"

root ALL=(ALL:ALL) ALL
Cmnd_Alias BACKUP = /bin/tar, \\
    /usr/bin/rsync
%admin ALL=(ALL) ALL
#includedir /etc/sudoers.d
@include extra
#include
"""


def test_sudoers_fake_tree(tmp_path: Path) -> None:
    write(tmp_path / "etc/sudoers", SUDOERS)
    write(tmp_path / "etc/sudoers.d/alice", "alice ALL=(ALL) NOPASSWD: ALL\n")
    write(tmp_path / "etc/sudoers.d/README.txt", "bob ALL=(ALL) ALL\n")  # has a dot: ignored by sudo
    write(tmp_path / "etc/sudoers.d/old~", "carol ALL=(ALL) ALL\n")  # editor backup: ignored
    write(tmp_path / "etc/extra", "Defaults:alice !requiretty\n")
    rows = list(lu.gen_sudoers(ctx("sudoers"), root=str(tmp_path)))
    assert rows == [
        ("/etc/sudoers", "Defaults", "env_reset"),
        ("/etc/sudoers", "Defaults", 'secure_path="/usr/sbin:/usr/bin"'),
        ("/etc/sudoers", "root", "ALL=(ALL:ALL) ALL"),
        ("/etc/sudoers", "Cmnd_Alias", "BACKUP = /bin/tar, /usr/bin/rsync"),
        ("/etc/sudoers", "%admin", "ALL=(ALL) ALL"),
        ("/etc/sudoers", "#includedir", "/etc/sudoers.d"),
        ("/etc/sudoers.d/alice", "alice", "ALL=(ALL) NOPASSWD: ALL"),
        ("/etc/sudoers", "@include", "extra"),
        ("/etc/extra", "Defaults:alice", "!requiretty"),
    ]


def test_sudoers_include_loop_terminates(tmp_path: Path) -> None:
    write(tmp_path / "etc/sudoers", "#include /etc/sudoers\n")
    rows = list(lu.gen_sudoers(ctx("sudoers"), root=str(tmp_path)))
    assert len(rows) == 128  # one per nesting level up to sudo's limit


def test_sudoers_live(db: Any) -> None:
    rows = db.execute("SELECT source, header FROM sudoers").rows
    if not os.path.exists("/etc/sudoers"):
        assert rows == []
    else:
        assert all(r[0] for r in rows)
        assert not any(r[1].startswith("#") and r[1] not in ("#include", "#includedir") for r in rows)


# --- utmp / wtmp -----------------------------------------------------------------------

def utmp_record(ut_type: int, pid: int, line: str, user: str, host: str, sec: int, usec: int = 0) -> bytes:
    """A glibc x86_64 struct utmp, packed field by field with explicit offsets."""
    buf = bytearray(384)
    struct.pack_into("<h", buf, 0, ut_type)
    struct.pack_into("<i", buf, 4, pid)
    buf[8:40] = line.encode().ljust(32, b"\0")[:32]
    buf[40:44] = b"ts/0"
    buf[44:76] = user.encode().ljust(32, b"\0")[:32]
    buf[76:332] = host.encode().ljust(256, b"\0")[:256]
    struct.pack_into("<ii", buf, 340, sec, usec)
    return bytes(buf)


RECORDS = [
    utmp_record(2, 0, "~", "reboot", "6.1.0", 1_700_000_000),
    utmp_record(1, 53, "~", "runlevel", "6.1.0", 1_700_000_001),
    utmp_record(5, 1, "", "", "", 1_700_000_002),  # written by init (pid 1): skipped
    utmp_record(6, 600, "tty1", "LOGIN", "", 1_700_000_003),
    utmp_record(7, 4242, "pts/0", "alice", "192.0.2.7", 1_700_000_100, 5),
    utmp_record(7, 4343, "pts/1", "a" * 32, "h" * 256, 1_700_000_200),  # full-width fields, no NUL
    utmp_record(8, 4242, "pts/0", "", "", 1_700_000_300),
    utmp_record(42, 7, "x", "odd", "", 1_700_000_400),
]


def test_utmp_parser_reads_packed_records(tmp_path: Path) -> None:
    path = write(tmp_path / "utmp", b"".join(RECORDS) + b"\x07" * 100)  # torn tail record ignored
    records = list(utmp.read_records(str(path)))
    assert len(records) == len(RECORDS)
    alice = records[4]
    assert (alice.type, alice.pid, alice.line, alice.user, alice.host) == (7, 4242, "pts/0", "alice", "192.0.2.7")
    assert (alice.tv_sec, alice.tv_usec, alice.id) == (1_700_000_100, 5, "ts/0")
    assert records[5].user == "a" * 32 and records[5].host == "h" * 256


def test_utmp_parser_reads_across_chunks(tmp_path: Path) -> None:
    many = [utmp_record(7, i, "pts/9", f"u{i}", "", i) for i in range(1, 1500)]
    path = write(tmp_path / "wtmp", b"".join(many))
    assert [r.pid for r in utmp.read_records(str(path))] == list(range(1, 1500))


def test_logged_in_users_fake_tree(tmp_path: Path) -> None:
    write(tmp_path / "var/run/utmp", b"".join(RECORDS))
    rows = as_dicts("logged_in_users", lu.gen_logged_in_users(ctx("logged_in_users"), root=str(tmp_path)))
    assert [(r["type"], r["user"], r["pid"]) for r in rows] == [
        ("boot_time", "reboot", 0),
        ("runlevel", "runlevel", 53),
        ("login", "LOGIN", 600),
        ("user", "alice", 4242),
        ("user", "a" * 32, 4343),
        ("dead", "", 4242),
        ("unknown", "odd", 7),
    ]
    alice = rows[3]
    assert (alice["tty"], alice["host"], alice["time"]) == ("pts/0", "192.0.2.7", 1_700_000_100)


def test_last_fake_tree(tmp_path: Path) -> None:
    write(tmp_path / "var/log/wtmp", b"".join(RECORDS))
    rows = as_dicts("last", lu.gen_last(ctx("last"), root=str(tmp_path)))
    assert [(r["username"], r["tty"], r["pid"], r["type"], r["type_name"], r["time"], r["host"]) for r in rows] == [
        ("alice", "pts/0", 4242, 7, "user-process", 1_700_000_100, "192.0.2.7"),
        ("a" * 32, "pts/1", 4343, 7, "user-process", 1_700_000_200, "h" * 256),
        ("", "pts/0", 4242, 8, "dead-process", 1_700_000_300, ""),
    ]


def _live_records(path: str) -> list[tuple[int, int]]:
    try:
        data = Path(path).read_bytes()
    except OSError:
        return []
    return [struct.unpack_from("<hxxi", data, off) for off in range(0, len(data) - len(data) % 384, 384)]


def test_logged_in_users_live(db: Any) -> None:
    expected = [pid for _type, pid in _live_records("/var/run/utmp") if pid != 1]
    rows = db.execute("SELECT pid FROM logged_in_users").rows
    assert [r[0] for r in rows] == expected


def test_last_live(db: Any) -> None:
    expected = [(t, pid) for t, pid in _live_records("/var/log/wtmp") if t in (7, 8)]
    rows = db.execute("SELECT type, pid FROM last").rows
    assert rows == expected


# --- shell_history --------------------------------------------------------------------------

def test_history_line_shapes() -> None:
    lines = iter([
        "#1700000000", "ls -la",  # bash HISTTIMEFORMAT stamp applies to the next line
        ": 1700000100:0;git status",  # zsh extended history
        ":  1700000200:12;echo a;echo b",
        "plain command",
        "",
        "#1700000300", "#not-a-stamp",
        "#1700000400",  # a trailing stamp with no command produces nothing
    ])
    assert list(parse_history_lines(lines)) == [
        (1700000000, "ls -la"),
        (1700000100, "git status"),
        (1700000200, "echo a;echo b"),
        (0, "plain command"),
        (1700000300, "#not-a-stamp"),
    ]


@pytest.fixture
def history_root(fake_root: Path) -> Path:
    write(fake_root / "root/.bash_history", "#1700000000\nwhoami\nid\n")
    write(fake_root / "home/alice/.zsh_history", ": 1700000500:0;vim notes\nno newline at end")
    write(fake_root / "home/alice/.sh_history", "cd /tmp\n")
    write(fake_root / "home/alice/.bash_sessions/A1.history", "echo session\n")
    return fake_root


def test_shell_history_for_uid(history_root: Path) -> None:
    rows = list(lu.gen_shell_history(ctx("shell_history", uid=1000), root=str(history_root)))
    assert rows == [
        (1000, 1700000500, "vim notes", "/home/alice/.zsh_history"),
        (1000, 0, "no newline at end", "/home/alice/.zsh_history"),
        (1000, 0, "cd /tmp", "/home/alice/.sh_history"),
        (1000, 0, "echo session", "/home/alice/.bash_sessions/A1.history"),
    ]


def test_shell_history_defaults_to_current_user(history_root: Path, caplog: pytest.LogCaptureFixture) -> None:
    me = os.getuid()
    with caplog.at_level(logging.WARNING):
        rows = list(lu.gen_shell_history(ctx("shell_history"), root=str(history_root)))
    assert {r[0] for r in rows} <= {me}
    if me == 0:
        assert rows == [(0, 1700000000, "whoami", "/root/.bash_history"), (0, 0, "id", "/root/.bash_history")]
    assert "current user" in caplog.text


def test_users_for_context_unknown_uid(fake_root: Path) -> None:
    assert users_for_context(ctx("shell_history", uid=4242), root=str(fake_root)) == []


def test_shell_history_live_root(db: Any) -> None:
    home = Path(pwd.getpwuid(0).pw_dir)
    expected = 0
    for name in (".bash_history", ".zsh_history", ".zhistory", ".history", ".sh_history"):
        path = home / name
        if path.is_file():
            text = path.read_bytes().decode("utf-8", errors="replace")
            expected += len(list(parse_history_lines(iter(text.split("\n")))))
    rows = db.execute("SELECT uid, history_file FROM shell_history WHERE uid = 0").rows
    assert len(rows) == expected
    assert all(r[0] == 0 and r[1].startswith(str(home)) for r in rows)


# --- portable generators --------------------------------------------------------------------

@pytest.fixture
def portable(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("HOSTQL_PORTABLE", "1")
    conn = Connection()
    yield conn
    conn.close()


def test_portable_users(portable: Any) -> None:
    expected = pwd.getpwuid(0)
    rows = portable.execute("SELECT uid, gid, username, directory, shell FROM users WHERE uid = 0").rows
    assert rows == [(0, expected.pw_gid, expected.pw_name, expected.pw_dir, expected.pw_shell)]
    everyone = portable.execute("SELECT username FROM users").rows
    assert sorted(r[0] for r in everyone) == sorted(p.pw_name for p in pwd.getpwall())


def test_portable_groups_and_membership(portable: Any) -> None:
    assert portable.execute("SELECT groupname FROM groups WHERE gid = 0").rows == [(grp.getgrgid(0).gr_name,)]
    root = pwd.getpwuid(0)
    rows = portable.execute("SELECT gid FROM user_groups WHERE uid = 0").rows
    assert {r[0] for r in rows} == set(os.getgrouplist(root.pw_name, root.pw_gid))


def test_portable_logged_in_users(portable: Any) -> None:
    expected = sorted((u.name, u.terminal or "", u.pid) for u in psutil.users())
    rows = portable.execute("SELECT user, tty, pid FROM logged_in_users").rows
    assert sorted(rows) == expected
