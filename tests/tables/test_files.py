"""The file and hash tables against the live filesystem, with ground truth from os.stat/hashlib."""

from __future__ import annotations

import hashlib
import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hostql.agent.flags import FlagValues
from hostql.runtime import Runtime
from hostql.sql.connection import Connection, QueryError
from hostql.tables.common import files, hashing


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    """tmp/a.txt, tmp/b_1.log, tmp/.hidden, tmp/sub/c.txt, tmp/sub/deep/d.txt"""
    (tmp_path / "a.txt").write_bytes(b"alpha\n")
    (tmp_path / "b_1.log").write_bytes(b"beta")
    (tmp_path / ".hidden").write_bytes(b"")
    (tmp_path / "sub" / "deep").mkdir(parents=True)
    (tmp_path / "sub" / "c.txt").write_bytes(b"gamma" * 1000)
    (tmp_path / "sub" / "deep" / "d.txt").write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    return tmp_path


@pytest.fixture()
def conn() -> Iterator[Connection]:
    hashing.CACHE.clear()
    with Connection() as db:
        yield db


def q(db: Connection, sql: str, *args: Any) -> list[dict[str, Any]]:
    return db.query(sql, args)


# --- file ------------------------------------------------------------------

def test_stat_fields_match_os_stat(conn: Connection, tree: Path) -> None:
    target = tree / "a.txt"
    os.chmod(target, 0o4750)
    st = os.stat(target)
    [row] = q(conn, "SELECT * FROM file WHERE path = ?", str(target))
    assert row["path"] == str(target)
    assert row["directory"] == str(tree)
    assert row["filename"] == "a.txt"
    assert row["size"] == st.st_size == 6
    assert row["mode"] == "4750"
    assert row["uid"] == st.st_uid and row["gid"] == st.st_gid
    assert row["inode"] == st.st_ino
    assert row["mtime"] == int(st.st_mtime) and row["ctime"] == int(st.st_ctime)
    assert row["atime"] == int(st.st_atime)
    assert row["hard_links"] == st.st_nlink == 1
    assert row["block_size"] == st.st_blksize
    assert row["device"] == st.st_rdev
    assert row["type"] == "regular" and row["symlink"] == 0
    assert row["symlink_target_path"] is None
    assert isinstance(row["btime"], int) and row["btime"] >= 0


def test_btime_is_creation_time_or_zero(conn: Connection, tree: Path) -> None:
    [row] = q(conn, "SELECT btime, ctime FROM file WHERE path = ?", str(tree / "a.txt"))
    # The file was created moments ago: either the filesystem records it, or 0.
    assert row["btime"] == 0 or abs(row["btime"] - row["ctime"]) <= 2


def test_hard_links_counted(conn: Connection, tree: Path) -> None:
    os.link(tree / "a.txt", tree / "a2.txt")
    [row] = q(conn, "SELECT hard_links FROM file WHERE path = ?", str(tree / "a2.txt"))
    assert row["hard_links"] == 2


def test_directory_lists_exactly_its_entries(conn: Connection, tree: Path) -> None:
    rows = q(conn, "SELECT path, directory, filename FROM file WHERE directory = ?", str(tree))
    assert sorted(r["filename"] for r in rows) == sorted(os.listdir(tree))
    assert {r["path"] for r in rows} == {str(tree / n) for n in os.listdir(tree)}
    assert {r["directory"] for r in rows} == {str(tree)}


def test_directory_with_trailing_slash_keeps_its_spelling(conn: Connection, tree: Path) -> None:
    rows = q(conn, "SELECT path, directory FROM file WHERE directory = ?", f"{tree}/")
    assert {r["directory"] for r in rows} == {f"{tree}/"}
    assert {r["path"] for r in rows} == {str(tree / n) for n in os.listdir(tree)}


def test_in_list_on_path(conn: Connection, tree: Path) -> None:
    rows = q(conn, "SELECT path FROM file WHERE path IN (?, ?, ?)",
             str(tree / "a.txt"), str(tree / "sub"), str(tree / "missing"))
    assert sorted(r["path"] for r in rows) == [str(tree / "a.txt"), str(tree / "sub")]


def test_like_percent_is_one_level(conn: Connection, tree: Path) -> None:
    rows = q(conn, "SELECT path, type FROM file WHERE path LIKE ?", f"{tree}/%")
    expected = {str(tree / "a.txt"), str(tree / "b_1.log"), str(tree / ".hidden"), f"{tree}/sub/"}
    assert {r["path"] for r in rows} == expected
    assert {r["path"]: r["type"] for r in rows}[f"{tree}/sub/"] == "directory"


def test_like_double_percent_recurses(conn: Connection, tree: Path) -> None:
    rows = q(conn, "SELECT path FROM file WHERE path LIKE ?", f"{tree}/%%")
    truth: set[str] = set()
    for root, dirs, names in os.walk(tree):
        truth.update(os.path.join(root, n) for n in names)
        truth.update(os.path.join(root, d) + "/" for d in dirs)
    assert {r["path"] for r in rows} == truth
    assert f"{tree}/sub/deep/d.txt" in truth


def test_like_within_a_level_and_underscore(conn: Connection, tree: Path) -> None:
    rows = q(conn, "SELECT path FROM file WHERE path LIKE ?", f"{tree}/%.txt")
    assert [r["path"] for r in rows] == [str(tree / "a.txt")]
    rows = q(conn, "SELECT path FROM file WHERE path LIKE ?", f"{tree}/b_1.lo_")
    assert [r["path"] for r in rows] == [str(tree / "b_1.log")]
    rows = q(conn, "SELECT path FROM file WHERE path LIKE ?", f"{tree}/%/%.txt")
    assert [r["path"] for r in rows] == [str(tree / "sub" / "c.txt")]


def test_like_is_ascii_case_insensitive_like_sqlite(conn: Connection, tree: Path) -> None:
    rows = q(conn, "SELECT path FROM file WHERE path LIKE ?", f"{tree}/A.TXT")
    assert [r["path"] for r in rows] == [str(tree / "a.txt")]


def test_directory_like_lists_matching_directories(conn: Connection, tree: Path) -> None:
    rows = q(conn, "SELECT path, directory FROM file WHERE directory LIKE ?", f"{tree}/s%")
    assert {r["directory"] for r in rows} == {f"{tree}/sub/"}
    assert {r["path"] for r in rows} == {f"{tree}/sub/c.txt", f"{tree}/sub/deep"}


def test_symlink_and_dangling_symlink(conn: Connection, tree: Path) -> None:
    os.symlink("a.txt", tree / "link")
    os.symlink("nowhere", tree / "dangling")
    rows = {r["filename"]: r for r in q(conn, "SELECT * FROM file WHERE directory = ?", str(tree))}
    link = rows["link"]
    assert link["symlink"] == 1
    assert link["type"] == "regular"  # other fields describe the target
    assert link["inode"] == os.stat(tree / "a.txt").st_ino
    assert link["symlink_target_path"] == "a.txt"
    dangling = rows["dangling"]
    assert dangling["symlink"] == 1 and dangling["type"] == "symlink"
    assert dangling["inode"] == os.lstat(tree / "dangling").st_ino
    assert dangling["symlink_target_path"] == "nowhere"


def test_fifo_socket_and_character_device(conn: Connection, tree: Path) -> None:
    os.mkfifo(tree / "pipe")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(tree / "sock"))
        rows = q(conn, "SELECT path, type FROM file WHERE path IN (?, ?, ?, ?)",
                 str(tree / "pipe"), str(tree / "sock"), "/dev/null", str(tree / "sub"))
    finally:
        sock.close()
    types = {r["path"]: r["type"] for r in rows}
    assert types == {str(tree / "pipe"): "fifo", str(tree / "sock"): "socket",
                     "/dev/null": "character", str(tree / "sub"): "directory"}
    [null] = q(conn, "SELECT device FROM file WHERE path = '/dev/null'")
    assert null["device"] == os.stat("/dev/null").st_rdev != 0


def test_missing_path_gives_no_rows(conn: Connection, tree: Path) -> None:
    assert q(conn, "SELECT * FROM file WHERE path = ?", str(tree / "missing")) == []
    assert q(conn, "SELECT * FROM file WHERE directory = ?", str(tree / "missing")) == []
    assert q(conn, "SELECT * FROM file WHERE path LIKE ?", f"{tree}/missing/%") == []


def test_file_requires_path_or_directory(conn: Connection) -> None:
    with pytest.raises(QueryError) as err:
        conn.execute("SELECT * FROM file")
    message = str(err.value)
    assert "file" in message and "path" in message and "directory" in message
    assert "required column" in message


def test_unreachable_path_is_skipped_among_others(conn: Connection, tree: Path) -> None:
    # A path that cannot be stat'ed drops out without breaking the other rows.
    rows = q(conn, "SELECT path FROM file WHERE path IN (?, ?)", str(tree / "a.txt"), "/proc/self/fd/999999")
    assert [r["path"] for r in rows] == [str(tree / "a.txt")]


# --- expansion helpers -------------------------------------------------------

@pytest.mark.parametrize(
    ("path", "parent", "name"),
    [("/etc/passwd", "/etc", "passwd"), ("/etc/ssl/", "/etc/ssl", "."), ("/etc", "/", "etc"),
     ("/", "", "/"), ("rel", "", "rel")],
)
def test_boost_style_names(path: str, parent: str, name: str) -> None:
    assert files.parent_path(path) == parent
    assert files.file_name(path) == name


@pytest.mark.parametrize(
    ("pattern", "text", "matches"),
    [("/a/%", "/a/b/c", True), ("/a/_", "/a/b", True), ("/a/_", "/a/bc", False),
     ("/A/b%", "/a/BX", True), ("a.c", "abc", False), ("100%", "100", True)],
)
def test_like_matcher_follows_sqlite(conn: Connection, pattern: str, text: str, matches: bool) -> None:
    [(sqlite_says,)] = conn.execute("SELECT ? LIKE ?", (text, pattern)).rows
    assert bool(sqlite_says) == matches
    assert bool(files.like_matcher(pattern).fullmatch(text)) == matches


# --- hash ------------------------------------------------------------------

def _digests(data: bytes) -> dict[str, str]:
    return {n: hashlib.new(n, data).hexdigest() for n in ("md5", "sha1", "sha256")}


def test_hash_matches_hashlib(conn: Connection, tree: Path) -> None:
    for name in ("a.txt", "sub/c.txt", "sub/deep/d.txt", ".hidden"):
        path = tree / name
        [row] = q(conn, "SELECT path, directory, md5, sha1, sha256 FROM hash WHERE path = ?", str(path))
        assert {k: row[k] for k in ("md5", "sha1", "sha256")} == _digests(path.read_bytes())
        assert row["directory"] == str(path.parent)


def test_hash_only_computes_used_digests(conn: Connection, tree: Path) -> None:
    path = str(tree / "a.txt")
    [row] = q(conn, "SELECT sha256 FROM hash WHERE path = ?", path)
    assert row["sha256"] == _digests(b"alpha\n")["sha256"]
    [row] = q(conn, "SELECT path, md5, sha1 FROM hash WHERE path = ?", path)
    assert row["md5"] == _digests(b"alpha\n")["md5"]
    key = hashing.stat_key(os.stat(path))
    assert set(hashing.CACHE.get(path, key)) == {"md5", "sha1", "sha256"}
    [row] = q(conn, "SELECT md5 IS NULL AS none FROM hash WHERE path = ?", path)
    assert row["none"] == 0


def test_hash_cache_invalidated_when_file_changes(conn: Connection, tree: Path) -> None:
    path = tree / "a.txt"
    [first] = q(conn, "SELECT sha256 FROM hash WHERE path = ?", str(path))
    assert first["sha256"] == _digests(b"alpha\n")["sha256"]
    # Same size, same second: only inode metadata (mtime_ns/ctime) changes.
    path.write_bytes(b"ALPHA\n")
    [second] = q(conn, "SELECT sha256 FROM hash WHERE path = ?", str(path))
    assert second["sha256"] == _digests(b"ALPHA\n")["sha256"]
    # Replaced by a new inode with the old mtime.
    st = os.stat(path)
    tmp = tree / "a.new"
    tmp.write_bytes(b"omega\n")
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(tmp, path)
    [third] = q(conn, "SELECT sha256 FROM hash WHERE path = ?", str(path))
    assert third["sha256"] == _digests(b"omega\n")["sha256"]


def test_hash_cache_is_bounded(tree: Path) -> None:
    hashing.CACHE.clear()
    runtime = Runtime(flags=FlagValues({"hash_cache_max": 2}))
    with Connection(runtime) as db:
        rows = q(db, "SELECT path, md5 FROM hash WHERE path LIKE ?", f"{tree}/%%")
    assert len(rows) == 5
    assert len(hashing.CACHE) == 2


def test_hash_read_max_gives_empty_digests(tree: Path) -> None:
    runtime = Runtime(flags=FlagValues({"read_max": 1024, "disable_hash_cache": True}))
    with Connection(runtime) as db:
        rows = {r["path"]: r for r in q(db, "SELECT path, md5, sha256 FROM hash WHERE directory = ?",
                                         str(tree / "sub"))}
    assert rows[str(tree / "sub" / "c.txt")]["sha256"] == ""
    assert rows[str(tree / "sub" / "c.txt")]["md5"] == ""
    assert str(tree / "sub" / "deep") not in rows


def test_hash_skips_directories_and_follows_symlinks(conn: Connection, tree: Path) -> None:
    os.symlink("a.txt", tree / "link")
    os.mkfifo(tree / "pipe")
    rows = {r["path"]: r["sha1"] for r in q(conn, "SELECT path, sha1 FROM hash WHERE directory = ?", str(tree))}
    assert set(rows) == {str(tree / n) for n in ("a.txt", "b_1.log", ".hidden", "link")}
    assert rows[str(tree / "link")] == _digests(b"alpha\n")["sha1"]
    assert q(conn, "SELECT * FROM hash WHERE path = ?", str(tree / "sub")) == []
    assert q(conn, "SELECT * FROM hash WHERE path = ?", str(tree / "pipe")) == []
    assert q(conn, "SELECT * FROM hash WHERE path = ?", str(tree / "missing")) == []


def test_hash_requires_path_or_directory(conn: Connection) -> None:
    with pytest.raises(QueryError, match="hash was queried without a required column"):
        conn.execute("SELECT md5 FROM hash")


def test_join_file_and_hash(conn: Connection, tree: Path) -> None:
    rows = q(conn, "SELECT f.path, h.sha256 FROM file f JOIN hash h USING (path) WHERE f.directory = ?",
             str(tree))
    truth = {str(p): _digests(p.read_bytes())["sha256"] for p in tree.iterdir() if p.is_file()}
    assert {r["path"]: r["sha256"] for r in rows} == truth


def test_file_mode_of_setgid_directory(conn: Connection, tree: Path) -> None:
    os.chmod(tree / "sub", 0o2775 | stat.S_ISVTX)
    [row] = q(conn, "SELECT mode, type FROM file WHERE path = ?", str(tree / "sub"))
    assert row == {"mode": "3775", "type": "directory"}
