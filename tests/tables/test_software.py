"""Software tables: dpkg, rpm, python/npm packages, apt and yum sources."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import struct
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from hostql.sql.context import Op, QueryContext
from hostql.tables.common import language_packages as lp
from hostql.tables.linux import dpkg, packages
from hostql.tables.registry import get_spec


def _rows(db: Any, sql: str) -> list[dict[str, Any]]:
    result = db.execute(sql)
    return [dict(zip(result.columns, row)) for row in result.rows]


# --------------------------------------------------------------------------
# deb_packages / deb_package_files on the live dpkg database

def _dpkg_query(fmt: str, *args: str) -> str:
    return subprocess.run(
        ["dpkg-query", "-W", "-f", fmt, *args], capture_output=True, text=True, timeout=60, check=True
    ).stdout


HAS_DPKG = shutil.which("dpkg-query") is not None and os.path.isfile("/var/lib/dpkg/status")


def test_deb_packages_match_dpkg_query(db: Any) -> None:
    rows = _rows(db, "SELECT name, version, arch, status, admindir FROM deb_packages")
    if not HAS_DPKG:
        assert rows == []
        return
    truth = {}
    for line in _dpkg_query("${Package} ${Version} ${Architecture} ${db:Status-Abbrev}\n").splitlines():
        name, version, arch, abbrev = line.split(" ", 3)
        if abbrev.strip() != "un":  # dpkg-query also lists known-but-not-installed packages
            truth[(name, arch)] = version
    ours = {(r["name"], r["arch"]): r["version"] for r in rows}
    assert ours == truth
    assert {r["admindir"] for r in rows} == {"/var/lib/dpkg"}
    bash = next(r for r in rows if r["name"] == "bash")
    assert bash["status"] == "install ok installed"


def test_deb_package_version_and_files(db: Any) -> None:
    if not HAS_DPKG:
        assert _rows(db, "SELECT * FROM deb_package_files WHERE package = 'bash'") == []
        return
    version = _dpkg_query("${Version}", "bash").strip()
    row = _rows(db, "SELECT version, revision, size FROM deb_packages WHERE name = 'bash'")[0]
    assert row["version"] == version
    assert row["revision"] == (version.rsplit("-", 1)[1] if "-" in version else "")
    assert row["size"] == int(_dpkg_query("${Installed-Size}", "bash"))
    listed = subprocess.run(["dpkg-query", "-L", "bash"], capture_output=True, text=True, timeout=60,
                            check=True).stdout.split("\n")
    ours = [r["path"] for r in _rows(db, "SELECT path FROM deb_package_files WHERE package = 'bash'")]
    assert ours == [p for p in listed if p]
    assert "/bin/bash" in ours or "/usr/bin/bash" in ours


def test_deb_package_files_constraint_reads_only_that_list(monkeypatch: pytest.MonkeyPatch) -> None:
    if not HAS_DPKG:
        pytest.fail("dpkg is installed on this host image; the test expects it")
    opened: list[str] = []
    real_read = dpkg.read_text

    def spy(path: str) -> str | None:
        opened.append(path)
        return real_read(path)

    monkeypatch.setattr(dpkg, "read_text", spy)
    spec = get_spec("deb_package_files")
    ctx = QueryContext.for_table(spec)
    ctx.add("package", Op.EQUALS, "bash")
    rows = list(dpkg.gen_deb_package_files(ctx))
    assert rows and {r[0] for r in rows} == {"bash"}
    assert [p for p in opened if p.endswith(".list")] == ["/var/lib/dpkg/info/bash.list"]


STATUS = """\
Package: alpha
Status: install ok installed
Priority: optional
Section: utils
Installed-Size: 120
Maintainer: Alpha Team <alpha@example.org>
Architecture: amd64
Source: alpha-src (1.0-1)
Version: 1:2.3.4-5ubuntu1
Description: first test package
 with a long description

Package: beta
Status: deinstall ok config-files
Priority: extra
Section: misc
Architecture: all
Version: 0.9
Description: removed but configured

Package: gamma
Status: purge ok not-installed
Architecture: all
Version: 7

Package: libdelta
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Version: 3.0-2
"""


def _fake_admindir(tmp_path: Path) -> Path:
    admin = tmp_path / "dpkg"
    (admin / "info").mkdir(parents=True)
    (admin / "updates").mkdir()
    (admin / "status").write_text(STATUS)
    (admin / "info" / "alpha.list").write_text("/.\n/usr\n/usr/bin/alpha\n")
    (admin / "info" / "beta.list").write_text("/etc/beta.conf\n")
    (admin / "info" / "libdelta:amd64.list").write_text("/usr/lib/libdelta.so.3\n")
    return admin


def test_deb_packages_fake_admindir(db: Any, tmp_path: Path) -> None:
    admin = _fake_admindir(tmp_path)
    rows = _rows(db, f"SELECT * FROM deb_packages WHERE admindir = '{admin}'")
    assert [r["name"] for r in rows] == ["alpha", "beta", "libdelta"]  # not-installed left out
    alpha = rows[0]
    assert alpha == {
        "name": "alpha", "version": "1:2.3.4-5ubuntu1", "source": "alpha-src (1.0-1)", "size": 120,
        "arch": "amd64", "revision": "5ubuntu1", "status": "install ok installed",
        "maintainer": "Alpha Team <alpha@example.org>", "section": "utils", "priority": "optional",
        "admindir": str(admin),
    }
    assert rows[1]["status"] == "deinstall ok config-files"
    assert rows[1]["revision"] == "" and rows[1]["size"] is None


def test_deb_updates_journal_overrides_status(tmp_path: Path) -> None:
    admin = _fake_admindir(tmp_path)
    (admin / "updates" / "0001").write_text(
        "Package: beta\nStatus: install ok installed\nArchitecture: all\nVersion: 1.0\n"
    )
    rows = {r[0]: r for r in dpkg.deb_package_rows(str(admin))}
    assert rows["beta"][1] == "1.0" and rows["beta"][6] == "install ok installed"


def test_deb_package_files_fake_admindir(db: Any, tmp_path: Path) -> None:
    admin = _fake_admindir(tmp_path)
    rows = db.execute(f"SELECT package, path FROM deb_package_files WHERE admindir = '{admin}'").rows
    assert rows == [
        ("alpha", "/."), ("alpha", "/usr"), ("alpha", "/usr/bin/alpha"),
        ("beta", "/etc/beta.conf"), ("libdelta", "/usr/lib/libdelta.so.3"),
    ]
    one = db.execute(
        f"SELECT path FROM deb_package_files WHERE admindir = '{admin}' AND package = 'libdelta'"
    ).rows
    assert one == [("/usr/lib/libdelta.so.3",)]


def test_deb_missing_admindir_gives_no_rows(db: Any, tmp_path: Path) -> None:
    assert db.execute(f"SELECT * FROM deb_packages WHERE admindir = '{tmp_path}/nope'").rows == []


def test_revision_of() -> None:
    assert dpkg.revision_of("1:2.0-1-3") == "3"
    assert dpkg.revision_of("2.0") == ""
    assert dpkg.revision_of("1:2.0") == ""


# --------------------------------------------------------------------------
# rpm_packages

def _header(tags: list[tuple[int, int, bytes, int]]) -> bytes:
    index, store = b"", b""
    for tag, kind, data, count in tags:
        if kind == packages.TYPE_INT32:
            store += b"\0" * (-len(store) % 4)  # int32 data is 4-byte aligned
        index += struct.pack(">iIiI", tag, kind, len(store), count)
        store += data
    return struct.pack(">II", len(tags), len(store)) + index + store


def test_rpm_packages_live_host_has_no_rpmdb(db: Any) -> None:
    present = any(os.path.isfile(p) for p in packages.RPMDB_PATHS)
    rows = db.execute("SELECT * FROM rpm_packages").rows
    if not present:
        assert rows == []
    else:
        assert rows


def test_rpm_packages_from_fake_sqlite_rpmdb(tmp_path: Path) -> None:
    db_path = tmp_path / "var/lib/rpm/rpmdb.sqlite"
    db_path.parent.mkdir(parents=True)
    blob = _header([
        (packages.TAG_NAME, packages.TYPE_STRING, b"zlib\0", 1),
        (packages.TAG_VERSION, packages.TYPE_STRING, b"1.2.11\0", 1),
        (packages.TAG_RELEASE, packages.TYPE_STRING, b"40.el9\0", 1),
        (packages.TAG_ARCH, packages.TYPE_STRING, b"x86_64\0", 1),
        (packages.TAG_SIZE, packages.TYPE_INT32, struct.pack(">I", 204800), 1),
        (packages.TAG_INSTALLTIME, packages.TYPE_INT32, struct.pack(">I", 1700000000), 1),
        (packages.TAG_EPOCH, packages.TYPE_INT32, struct.pack(">I", 2), 1),
        (packages.TAG_SOURCERPM, packages.TYPE_STRING, b"zlib-1.2.11-40.el9.src.rpm\0", 1),
    ])
    key = _header([(packages.TAG_NAME, packages.TYPE_STRING, b"gpg-pubkey\0", 1)])
    conn = sqlite3.connect(db_path)
    conn.execute("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, blob BLOB NOT NULL)")
    conn.executemany("INSERT INTO Packages (blob) VALUES (?)", [(blob,), (key,), (b"\0\0",)])
    conn.commit()
    conn.close()
    rows = list(packages.rpm_package_rows(str(tmp_path)))
    assert rows == [(
        "zlib", "1.2.11", "40.el9", "zlib-1.2.11-40.el9.src.rpm", 204800, "", "x86_64", 2,
        1700000000, "", "", None, None,
    )]


# --------------------------------------------------------------------------
# python_packages

def _dist_info(site: Path, name: str, version: str) -> Path:
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: A fake: package\n"
        "Author: Jane Doe\nLicense: MIT\nClassifier: x\n\nLicense: not-a-header\n"
    )
    return info


def test_python_packages_directory_constraint(db: Any, tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    info = _dist_info(site, "hostql_fake", "1.2.3")
    egg = site / "oldpkg-0.1.egg-info"
    egg.write_text("Metadata-Version: 1.0\nName: oldpkg\nVersion: 0.1\n")
    (site / "not_a_package").mkdir()
    rows = _rows(db, f"SELECT * FROM python_packages WHERE directory = '{site}'")
    assert rows == [
        {"name": "hostql_fake", "uid": None, "version": "1.2.3", "summary": "A fake: package",
         "author": "Jane Doe", "license": "MIT", "path": str(info), "directory": str(site)},
        {"name": "oldpkg", "uid": None, "version": "0.1", "summary": None, "author": None,
         "license": None, "path": str(egg), "directory": str(site)},
    ]


def test_python_packages_system_paths_match_importlib(db: Any) -> None:
    sites = [s for s, _ in lp.python_sites("/")]
    rows = _rows(db, "SELECT name, version, directory FROM python_packages")
    assert {r["directory"] for r in rows} <= set(sites)
    for site in sites:
        # importlib.metadata is an independent reader of the same metadata.
        truth = {(d.metadata["Name"], d.version) for d in metadata.distributions(path=[site])}
        ours = {(r["name"], r["version"]) for r in rows if r["directory"] == site}
        assert ours == truth, site
    if any(os.path.isdir(p) for p in ("/usr/lib/python3/dist-packages", "/usr/local/lib/python3")):
        assert rows, "this host has system Python packages"


def test_python_packages_user_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home" / "me"
    site = home / ".local/lib/python3.11/site-packages"
    _dist_info(site, "userpkg", "2.0")

    class _Pw:
        pw_dir = str(home)

    import pwd

    monkeypatch.setattr(pwd, "getpwuid", lambda uid: _Pw())
    sites = lp.python_sites(str(tmp_path / "empty"), uids=[4242])
    assert sites == []  # home is resolved inside root, which has no such home
    found = [s for s in lp.python_sites("/", uids=[4242]) if s[1] is not None]
    assert found == [(str(site), 4242)]
    rows = list(lp.site_packages(str(site), 4242))
    assert rows[0][:3] == ("userpkg", 4242, "2.0")


# --------------------------------------------------------------------------
# npm_packages

def _package_json(directory: Path, **fields: Any) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "package.json"
    path.write_text(json.dumps(fields))
    return path


def test_npm_packages_directory_and_depth(db: Any, tmp_path: Path) -> None:
    modules = tmp_path / "proj" / "node_modules"
    top = _package_json(modules / "leftpad", name="leftpad", version="1.3.0", description="pads",
                        author={"name": "Ann", "email": "a@b"}, license="WTFPL", homepage="https://x")
    scoped = _package_json(modules / "@scope" / "thing", name="@scope/thing", version="0.0.1",
                           author="Bob <bob@example.org>", license={"type": "MIT"})
    nested = _package_json(modules / "leftpad" / "node_modules" / "dep", name="dep", version="9")
    (modules / ".bin").mkdir()
    project = str(tmp_path / "proj")
    rows = _rows(db, f"SELECT name, version, author, license, path, depth FROM npm_packages"
                     f" WHERE directory = '{project}'")
    assert rows == [
        {"name": "@scope/thing", "version": "0.0.1", "author": "Bob <bob@example.org>",
         "license": "MIT", "path": str(scoped), "depth": 0},
        {"name": "leftpad", "version": "1.3.0", "author": "Ann", "license": "WTFPL",
         "path": str(top), "depth": 0},
    ]
    deep = db.execute(f"SELECT name, depth, path FROM npm_packages WHERE directory = '{modules}'"
                      " AND max_depth = 1").rows
    assert ("dep", 1, str(nested)) in deep and len(deep) == 3


def test_npm_packages_global_dirs(db: Any) -> None:
    rows = _rows(db, "SELECT name, version, path FROM npm_packages")
    truth = set()
    for base in lp.NPM_GLOBAL_DIRS["linux"]:
        if not os.path.isdir(base):
            continue
        for name in os.listdir(base):
            manifest = os.path.join(base, name, "package.json")
            if not name.startswith((".", "@")) and os.path.isfile(manifest):
                with open(manifest) as fh:
                    data = json.load(fh)
                truth.add((data.get("name"), data.get("version"), manifest))
    assert {(r["name"], r["version"], r["path"]) for r in rows if "/@" not in r["path"]} == truth


# --------------------------------------------------------------------------
# apt_sources / yum_sources

def _fake_apt(root: Path) -> None:
    apt = root / "etc/apt"
    (apt / "sources.list.d").mkdir(parents=True)
    (apt / "sources.list").write_text(
        "# comment\n"
        "deb http://deb.example.org/debian/ bookworm main contrib # trailing\n"
        "deb-src http://deb.example.org/debian bookworm main\n"
        "deb [arch=amd64,arm64 signed-by=/k.gpg] https://repo.example.com/apt stable main\n"
        "deb file:/local/repo ./\n"
    )
    (apt / "sources.list.d" / "extra.sources").write_text(
        "Types: deb deb-src\n"
        "URIs: http://mirror.example.net/ubuntu\n"
        "# a comment inside the stanza\n"
        "Suites: jammy jammy-updates\n"
        "Components: main universe\n"
        "\n"
        "Types: deb\nURIs: http://off.example.net/x\nSuites: s\nComponents: c\nEnabled: no\n"
    )
    (apt / "sources.list.d" / "ignored.list.save").write_text("deb http://no.example/ x y\n")
    lists = root / "var/lib/apt/lists"
    lists.mkdir(parents=True)
    (lists / "deb.example.org_debian_dists_bookworm_InRelease").write_text(
        "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nOrigin: Debian\nLabel: Debian\n"
        "Suite: stable\nVersion: 12.5\nCodename: bookworm\nArchitectures: all amd64\n"
        "Components: main contrib\nMD5Sum:\n 123 456 main/x\n-----BEGIN PGP SIGNATURE-----\nOrigin: bad\n"
    )


def test_apt_sources_fake_tree(tmp_path: Path) -> None:
    _fake_apt(tmp_path)
    rows = list(packages.apt_source_rows(str(tmp_path)))
    assert rows == [
        ("deb.example.org/debian bookworm", "/etc/apt/sources.list", "http://deb.example.org/debian",
         "bookworm", "12.5", "Debian", "main contrib", "all amd64", None),
        ("repo.example.com/apt stable", "/etc/apt/sources.list", "https://repo.example.com/apt",
         None, None, None, "main", "amd64 arm64", None),
        ("mirror.example.net/ubuntu jammy", "/etc/apt/sources.list.d/extra.sources",
         "http://mirror.example.net/ubuntu", None, None, None, "main universe", None, None),
        ("mirror.example.net/ubuntu jammy-updates", "/etc/apt/sources.list.d/extra.sources",
         "http://mirror.example.net/ubuntu", None, None, None, "main universe", None, None),
    ]


def test_apt_sources_live_host(db: Any) -> None:
    rows = _rows(db, "SELECT name, source, base_uri FROM apt_sources")
    expected = []
    for path in packages.apt_source_files("/"):
        text = Path(path).read_text()
        if path.endswith(".sources"):
            # Independent reading of the deb822 stanzas: every (URI, suite) of a deb stanza.
            for stanza in text.split("\n\n"):
                fields = {}
                for line in stanza.splitlines():
                    if ":" in line and not line.startswith(("#", " ")):
                        key, value = line.split(":", 1)
                        fields[key.strip().lower()] = value.split()
                if "deb" in fields.get("types", []) and fields.get("enabled", ["yes"]) != ["no"]:
                    expected += [(u, s, path) for u in fields["uris"] for s in fields["suites"]]
        else:
            for line in text.splitlines():
                words = line.split("#")[0].split()
                if words[:1] == ["deb"]:
                    words = [w for w in words[1:] if "=" not in w and w not in ("[", "]")]
                    expected.append((words[0], words[1], path))
    got = [(r["base_uri"], r["name"].split(" ")[1], r["source"]) for r in rows]
    assert got == [(u.rstrip("/"), s, p) for u, s, p in expected]


def test_yum_sources(db: Any, tmp_path: Path) -> None:
    live = db.execute("SELECT * FROM yum_sources").rows
    if not os.path.isdir("/etc/yum.repos.d") and not os.path.isfile("/etc/yum.conf"):
        assert live == []
    repos = tmp_path / "etc/yum.repos.d"
    repos.mkdir(parents=True)
    (repos / "base.repo").write_text(
        "[baseos]\nname=BaseOS $releasever\nbaseurl=http://a.example/os/\n  http://b.example/os/\n"
        "enabled=1\ngpgcheck=1\ngpgkey=file:///etc/pki/key\n\n"
        "[extras]\nname=Extras\nmirrorlist=http://m.example/list\nenabled=0\n"
    )
    (tmp_path / "etc/yum.conf").write_text("[main]\ngpgcheck=1\n")
    rows = list(packages.yum_source_rows(str(tmp_path)))
    assert rows == [
        ("BaseOS $releasever", "/etc/yum.repos.d/base.repo", "http://a.example/os/ http://b.example/os/",
         None, None, "1", "1", "file:///etc/pki/key", None),
        ("Extras", "/etc/yum.repos.d/base.repo", None, "http://m.example/list", None, "0", None, None, None),
    ]
