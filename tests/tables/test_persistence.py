"""Persistence tables: crontab, suid_bin, systemd_units, startup_items."""

from __future__ import annotations

import grp
import os
import pwd
import stat
from pathlib import Path
from typing import Any

from hostql.tables.linux import persistence as ps

# --------------------------------------------------------------------------
# crontab


def test_crontab_fake_tree(tmp_path: Path) -> None:
    (tmp_path / "etc/cron.d").mkdir(parents=True)
    (tmp_path / "var/spool/cron/crontabs").mkdir(parents=True)
    (tmp_path / "etc/crontab").write_text(
        "SHELL=/bin/sh\nPATH = /usr/bin:/bin\n# m h dom mon dow user command\n"
        "17 *\t* * *  root  cd / && run-parts --report /etc/cron.hourly\n"
        "   \n@reboot root /usr/local/bin/boot.sh --now\n"
    )
    (tmp_path / "etc/cron.d/job").write_text("*/5 1-3 1,15 jan mon-fri nobody /bin/true\nbroken line\n")
    (tmp_path / "var/spool/cron/crontabs/alice").write_text("0 12 * * 0 /home/alice/bin/backup > /dev/null 2>&1\n")
    rows = list(ps.crontab_rows(str(tmp_path)))
    assert rows == [
        (None, "17", "*", "*", "*", "*", "root cd / && run-parts --report /etc/cron.hourly", "/etc/crontab", None),
        ("@reboot", None, None, None, None, None, "root /usr/local/bin/boot.sh --now", "/etc/crontab", None),
        (None, "*/5", "1-3", "1,15", "jan", "mon-fri", "nobody /bin/true", "/etc/cron.d/job", None),
        (None, "0", "12", "*", "*", "0", "/home/alice/bin/backup > /dev/null 2>&1",
         "/var/spool/cron/crontabs/alice", None),
    ]


def test_crontab_live_matches_files(db: Any) -> None:
    rows = db.execute("SELECT path, command FROM crontab").rows
    expected = []
    for path in ps.crontab_files("/"):
        if not os.path.isfile(path):
            continue
        for line in Path(path).read_text(errors="replace").splitlines():
            words = line.split()
            if not words or words[0].startswith("#") or "=" in words[0]:
                continue
            if words[0].startswith("@"):
                expected.append((path, " ".join(words[1:])))
            elif len(words) > 5:
                expected.append((path, " ".join(words[5:])))
    assert rows == expected


# --------------------------------------------------------------------------
# suid_bin


def test_suid_bin_fake_root(tmp_path: Path) -> None:
    bindir = tmp_path / "usr/local/bin"
    (bindir / "sub").mkdir(parents=True)
    suid = bindir / "sub" / "escalate"
    sgid = bindir / "grouped"
    both = bindir / "both"
    plain = bindir / "plain"
    for path, mode in ((suid, 0o4755), (sgid, 0o2755), (both, 0o6755), (plain, 0o755)):
        path.write_bytes(b"#!/bin/sh\n")
        os.chmod(path, mode)
    (bindir / "link").symlink_to(suid)
    (tmp_path / "tmp").mkdir()
    rows = list(ps.suid_rows(str(tmp_path)))
    st = os.stat(suid)
    user, group = pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name
    assert rows == [
        ("/usr/local/bin/both", user, group, "SG", None),
        ("/usr/local/bin/grouped", user, group, "G", None),
        ("/usr/local/bin/link", user, group, "S", None),
        ("/usr/local/bin/sub/escalate", user, group, "S", None),
    ]


def test_suid_bin_live(db: Any) -> None:
    rows = {r[0]: r for r in db.execute("SELECT path, username, groupname, permissions FROM suid_bin").rows}
    for path in ("/usr/bin/passwd", "/usr/bin/su"):
        if not os.path.exists(path):
            assert path not in rows
            continue
        st = os.stat(path)
        if st.st_mode & (stat.S_ISUID | stat.S_ISGID):
            want = ("S" if st.st_mode & stat.S_ISUID else "") + ("G" if st.st_mode & stat.S_ISGID else "")
            assert rows[path] == (path, pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name, want)
        else:
            assert path not in rows
    for path, _, _, perms in rows.values():
        mode = os.stat(path).st_mode
        assert bool(mode & stat.S_ISUID) == ("S" in perms)
        assert bool(mode & stat.S_ISGID) == ("G" in perms)


# --------------------------------------------------------------------------
# systemd units


def _fake_systemd(root: Path) -> None:
    lib = root / "usr/lib/systemd/system"
    etc = root / "etc/systemd/system"
    lib.mkdir(parents=True)
    (etc / "multi-user.target.wants").mkdir(parents=True)
    (etc / "getty.target.wants").mkdir(parents=True)
    (lib / "web.service").write_text(
        "[Unit]\nDescription=Web server\n\n[Service]\nUser=www-data\nExecStart=/usr/bin/web \\\n  --port 80\n"
        "\n[Install]\nWantedBy=multi-user.target\nAlias=httpd.service\n"
    )
    (lib / "idle.service").write_text("[Unit]\nDescription=Idle\n[Service]\nExecStart=/bin/true\n"
                                      "[Install]\nWantedBy=multi-user.target\n")
    (lib / "basic.target").write_text("[Unit]\nDescription=Basic System\n")
    (lib / "getty@.service").write_text("[Unit]\nDescription=Getty on %I\n[Install]\nWantedBy=getty.target\n")
    (lib / "README").write_text("not a unit")
    (etc / "multi-user.target.wants" / "web.service").symlink_to("/usr/lib/systemd/system/web.service")
    (etc / "getty.target.wants" / "getty@tty1.service").symlink_to("/usr/lib/systemd/system/getty@.service")
    (etc / "httpd.service").symlink_to("/usr/lib/systemd/system/web.service")
    (etc / "idle.service").symlink_to("/dev/null")
    # An override in /etc wins over the packaged file.
    (etc / "basic.target").write_text("[Unit]\nDescription=Local basic\n")


def test_systemd_units_from_files(tmp_path: Path) -> None:
    _fake_systemd(tmp_path)
    rows = {str(r[0]): r for r in ps.systemd_file_rows(str(tmp_path))}
    assert sorted(rows) == ["basic.target", "getty@.service", "httpd.service", "idle.service", "web.service"]
    web = rows["web.service"]
    assert web == ("web.service", "Web server", "loaded", None, None, "enabled", None, None, None, None, None,
                   "/usr/lib/systemd/system/web.service", "www-data", None)
    assert rows["idle.service"][2] == "masked" and rows["idle.service"][5] == "masked"
    assert rows["basic.target"][1] == "Local basic"
    assert rows["basic.target"][5] == "static"
    assert rows["basic.target"][11] == "/etc/systemd/system/basic.target"
    assert rows["httpd.service"][5] == "alias"
    assert rows["httpd.service"][11] == "/usr/lib/systemd/system/web.service"
    assert rows["getty@.service"][5] == "enabled"


def test_systemd_units_live(db: Any) -> None:
    rows = db.execute("SELECT id, load_state, active_state, fragment_path FROM systemd_units").rows
    if ps.systemd_booted("/"):
        assert rows and all(r[2] for r in rows)
        return
    # systemd is not PID 1 here: every unit file is listed, runtime state is unknown.
    assert all(r[2] is None for r in rows)
    expected = set()
    for directory in ps.UNIT_DIRS:
        if os.path.isdir(directory):
            expected |= {n for n in os.listdir(directory) if n.endswith(ps.UNIT_SUFFIXES)
                         and not os.path.isdir(os.path.join(directory, n))}
    assert {r[0] for r in rows} == expected


def test_bus_object_path() -> None:
    assert ps.bus_object_path("ssh.service") == "/org/freedesktop/systemd1/unit/ssh_2eservice"
    assert ps.bus_object_path("getty@tty1.service").endswith("getty_40tty1_2eservice")


def test_parse_systemctl_show() -> None:
    text = "Id=a.service\nActiveState=active\n\nId=b.socket\nActiveState=inactive\nUser=\n"
    blocks = ps.parse_systemctl_show(text)
    assert [b["Id"] for b in blocks] == ["a.service", "b.socket"]
    row = ps.systemd_runtime_row(blocks[0])
    assert row[0] == "a.service" and row[3] == "active" and str(row[7]).endswith("a_2eservice")


# --------------------------------------------------------------------------
# startup_items


def test_startup_items_fake_tree(tmp_path: Path) -> None:
    _fake_systemd(tmp_path)
    (tmp_path / "etc/passwd").write_text("alice:x:1000:1000::/home/alice:/bin/sh\nghost:x:1001:1001::/nope:/bin/sh\n")
    autostart = tmp_path / "home/alice/.config/autostart"
    autostart.mkdir(parents=True)
    (autostart / "chat.desktop").write_text(
        "[Desktop Entry]\nName=Chat\nName[de]=Plaudern\nExec=/usr/bin/chat --tray\n[Desktop Action x]\nExec=/x\n"
    )
    (tmp_path / "etc/init.d").mkdir(parents=True)
    (tmp_path / "etc/init.d/ssh").write_text("#!/bin/sh\n")
    (tmp_path / "etc/xdg/autostart").mkdir(parents=True)
    (tmp_path / "etc/xdg/autostart/agent.desktop").write_text("[Desktop Entry]\nName=Agent\nExec=agent\n")
    rows = list(ps.startup_rows(str(tmp_path), booted=False))
    assert rows == [
        ("Chat", "/usr/bin/chat --tray", None, "Startup Item", "/home/alice/.config/autostart/", "enabled", "alice"),
        ("ssh", "/etc/init.d/ssh", None, "Startup Item", "/etc/init.d/", "enabled", None),
        ("Agent", "agent", None, "Startup Item", "/etc/xdg/autostart/", "enabled", None),
        ("getty@tty1.service", "/usr/lib/systemd/system/getty@.service", None, "systemd unit",
         "/etc/systemd/system/getty.target.wants/getty@tty1.service", None, None),
        ("web.service", "/usr/lib/systemd/system/web.service", None, "systemd unit",
         "/etc/systemd/system/multi-user.target.wants/web.service", None, "www-data"),
    ]


def test_startup_items_live_init_scripts(db: Any) -> None:
    rows = db.execute("SELECT name, path FROM startup_items WHERE source = '/etc/init.d/'").rows
    expected = sorted(n for n in os.listdir("/etc/init.d")) if os.path.isdir("/etc/init.d") else []
    expected = [n for n in expected if os.path.isfile(os.path.join("/etc/init.d", n))]
    assert rows == [(n, f"/etc/init.d/{n}") for n in expected]
