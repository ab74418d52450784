"""Persistence points: crontab, systemd_units, startup_items, suid_bin.

Every reader takes ``root`` so tests can point it at a fake tree; paths in rows
are reported as seen from inside that root.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

from hostql.sql.context import QueryContext
from hostql.tables.common.rootfs import read_text, under_root

log = logging.getLogger(__name__)


def _shown(root: str, path: str) -> str:
    """``path`` (under ``root``) as the host inside ``root`` would name it."""
    if root in ("", "/"):
        return path
    rel = os.path.relpath(path, root)
    return "/" if rel == "." else "/" + rel


def _files_in(directory: str) -> list[str]:
    """Regular files directly inside ``directory``, sorted; [] when it is missing."""
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError:
        return []
    out = []
    for entry in entries:
        try:
            if entry.is_file():
                out.append(entry.path)
        except OSError:
            continue
    return out


def home_directories(root: str = "/") -> list[tuple[str, str]]:
    """(username, home) pairs from <root>/etc/passwd whose home exists."""
    text = read_text(under_root(root, "/etc/passwd")) or ""
    seen: set[str] = set()
    homes = []
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) < 7 or not parts[5] or parts[5] in seen:
            continue
        seen.add(parts[5])
        if os.path.isdir(under_root(root, parts[5])):
            homes.append((parts[0], parts[5]))
    return homes


# --------------------------------------------------------------------------
# crontab

SYSTEM_CRONTAB = "/etc/crontab"
CRON_DIRS = ("/etc/cron.d", "/var/at/tabs", "/var/spool/cron", "/var/spool/cron/crontabs")
_ENV_LINE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\s*=")


def parse_cron_line(line: str) -> tuple[str | None, ...] | None:
    """(event, minute, hour, dom, month, dow, command) of one crontab line.

    None for comments, blank lines, variable assignments and lines too short
    to carry a command.  Like osquery, the user field of system crontabs stays
    at the front of the command.
    """
    line = line.strip()
    if not line or line.startswith("#") or _ENV_LINE.match(line):
        return None
    fields = line.split()
    if fields[0].startswith("@"):
        command = " ".join(fields[1:])
        return (fields[0], None, None, None, None, None, command) if command else None
    if len(fields) < 6:
        return None
    return (None, *fields[:5], " ".join(fields[5:]))


def crontab_files(root: str = "/") -> list[str]:
    files = [under_root(root, SYSTEM_CRONTAB)]
    for directory in CRON_DIRS:
        files += _files_in(under_root(root, directory))
    return files


def crontab_rows(root: str = "/") -> Iterator[tuple[object, ...]]:
    for path in crontab_files(root):
        text = read_text(path) if os.path.isfile(path) else None
        for line in (text or "").splitlines():
            parsed = parse_cron_line(line)
            if parsed is not None:
                yield (*parsed, _shown(root, path), None)


def gen_crontab(ctx: QueryContext) -> Iterator[tuple[object, ...]]:
    return crontab_rows("/")


# --------------------------------------------------------------------------
# suid_bin

SUID_DIRS = ("/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin", "/tmp")


def _user_name(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group_name(gid: int) -> str:
    import grp

    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _walk_files(top: str) -> Iterator[tuple[str, os.stat_result]]:
    """(path, stat) of regular files below ``top``, in name order, depth first.

    Symlinked subdirectories are not entered (a loop or a link to / would
    otherwise blow the walk up), as osquery's directory iterator does.
    """
    try:
        entries = sorted(os.scandir(top), key=lambda e: e.name)
    except OSError as exc:
        log.debug("suid_bin: cannot list %s: %s", top, exc)
        return
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                yield from _walk_files(entry.path)
                continue
            # Like osquery, a symlink counts when its target is a set-id file.
            st = entry.stat()
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            yield entry.path, st


def suid_rows(root: str = "/") -> Iterator[tuple[object, ...]]:
    for directory in SUID_DIRS:
        top = under_root(root, directory)
        if not os.path.isdir(top):
            continue
        for path, st in _walk_files(top):
            perms = ("S" if st.st_mode & stat.S_ISUID else "") + ("G" if st.st_mode & stat.S_ISGID else "")
            if perms:
                yield _shown(root, path), _user_name(st.st_uid), _group_name(st.st_gid), perms, None


def gen_suid_bin(ctx: QueryContext) -> Iterator[tuple[object, ...]]:
    return suid_rows("/")


# --------------------------------------------------------------------------
# systemd unit files

# Highest priority first: a unit in /etc overrides the packaged one.
UNIT_DIRS = (
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/local/lib/systemd/system",
    "/lib/systemd/system",
    "/usr/lib/systemd/system",
)
UNIT_SUFFIXES = (
    ".service", ".socket", ".target", ".timer", ".path", ".mount", ".automount",
    ".swap", ".slice", ".scope", ".device",
)
_INSTALL_KEYS = frozenset({"WantedBy", "RequiredBy", "UpheldBy", "Alias", "Also"})


@dataclass(slots=True)
class UnitFile:
    """What a unit file says, as far as the tables need it."""

    id: str
    path: str  # the file the definition was read from
    load_state: str
    description: str | None = None
    user: str | None = None
    installable: bool = False
    alias_of: str | None = None


def parse_unit_text(text: str) -> dict[str, dict[str, str]]:
    """Sections and keys of a unit file (first value wins, continuations joined)."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    pending = ""
    for raw in text.splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, sep, value = line.partition("=")
        if sep and current is not None:
            current.setdefault(key.strip(), value.strip())
    return sections


def _is_masked(path: str) -> bool:
    try:
        return os.path.realpath(path) == "/dev/null" or os.readlink(path) == "/dev/null"
    except OSError:
        return False


def load_unit_file(root: str, path: str, unit_id: str) -> UnitFile:
    shown = _shown(root, path)
    if _is_masked(path):
        return UnitFile(unit_id, "/dev/null", "masked")
    alias_of = None
    if os.path.islink(path):
        target = os.path.basename(os.readlink(path))
        if target != unit_id:
            alias_of = target
        real = os.path.realpath(path)
        # Absolute links inside a fake root point at the host; re-anchor them.
        if root not in ("", "/") and not real.startswith(os.path.realpath(root)):
            real = under_root(root, real)
        path = real
        shown = _shown(root, path)
    text = read_text(path)
    if text is None:
        return UnitFile(unit_id, shown, "error", alias_of=alias_of)
    if not text.strip():
        return UnitFile(unit_id, shown, "masked", alias_of=alias_of)
    sections = parse_unit_text(text)
    install = sections.get("Install", {})
    return UnitFile(
        unit_id,
        shown,
        "loaded",
        description=sections.get("Unit", {}).get("Description"),
        user=sections.get("Service", {}).get("User"),
        installable=any(k in _INSTALL_KEYS for k in install),
        alias_of=alias_of,
    )


def unit_files(root: str = "/") -> dict[str, UnitFile]:
    """Every unit defined in the unit directories, by id, highest priority kept."""
    units: dict[str, UnitFile] = {}
    seen_dirs: set[str] = set()
    for directory in UNIT_DIRS:
        full = under_root(root, directory)
        real = os.path.realpath(full)
        if real in seen_dirs or not os.path.isdir(full):
            continue  # /lib is often a symlink to /usr/lib
        seen_dirs.add(real)
        try:
            names = sorted(os.listdir(full))
        except OSError:
            continue
        for name in names:
            if name in units or not name.endswith(UNIT_SUFFIXES):
                continue
            path = os.path.join(full, name)
            if os.path.isdir(path):
                continue
            units[name] = load_unit_file(root, path, name)
    return units


def enablement_links(root: str = "/") -> dict[str, list[str]]:
    """Unit id -> the *.wants/*.requires symlinks under /etc that enable it."""
    links: dict[str, list[str]] = {}
    base = under_root(root, "/etc/systemd/system")
    try:
        subdirs = sorted(os.listdir(base))
    except OSError:
        return links
    for sub in subdirs:
        if not sub.endswith((".wants", ".requires", ".upholds")):
            continue
        folder = os.path.join(base, sub)
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            continue
        for name in names:
            links.setdefault(name, []).append(os.path.join(folder, name))
    return links


def _template_of(unit_id: str) -> str | None:
    """'getty@tty1.service' -> 'getty@.service'."""
    stem, at, rest = unit_id.partition("@")
    if not at or "." not in rest:
        return None
    return f"{stem}@{rest[rest.rindex('.'):]}"


def unit_file_state(unit: UnitFile, enabled: set[str]) -> str:
    if unit.load_state == "masked":
        return "masked"
    if unit.alias_of is not None:
        return "alias"
    if unit.id in enabled:
        return "enabled"
    return "disabled" if unit.installable else "static"


def systemd_booted(root: str = "/") -> bool:
    """sd_booted(): systemd creates /run/systemd/system when it is PID 1."""
    return os.path.isdir(under_root(root, "/run/systemd/system"))


def _enabled_ids(links: dict[str, list[str]]) -> set[str]:
    enabled = set(links)
    enabled |= {t for t in (_template_of(u) for u in links) if t}
    return enabled


def systemd_file_rows(root: str = "/") -> Iterator[tuple[object, ...]]:
    """systemd_units rows from unit files alone (systemd not running)."""
    enabled = _enabled_ids(enablement_links(root))
    for unit in unit_files(root).values():
        yield (
            unit.id, unit.description, unit.load_state, None, None,
            unit_file_state(unit, enabled), None, None, None, None, None,
            unit.path, unit.user, None,
        )


# --- systemd running: ask systemctl (osquery asks the same manager over D-Bus)

SHOW_PROPERTIES = (
    "Id", "Description", "LoadState", "ActiveState", "SubState", "UnitFileState",
    "Following", "FragmentPath", "User", "SourcePath",
)


def bus_object_path(unit_id: str) -> str:
    """D-Bus object path systemd gives a unit (its bus label escaping)."""
    out = []
    for i, ch in enumerate(unit_id):
        if ch.isascii() and (ch.isalpha() or (ch.isdigit() and i > 0)):
            out.append(ch)
        else:
            out.extend(f"_{b:02x}" for b in ch.encode())
    return "/org/freedesktop/systemd1/unit/" + "".join(out)


def parse_systemctl_show(text: str) -> list[dict[str, str]]:
    """Blocks of KEY=value lines separated by blank lines."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
            current = {}
            continue
        key, sep, value = line.partition("=")
        if sep:
            current[key] = value
    if current:
        blocks.append(current)
    return blocks


def _systemctl(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["systemctl", *args], capture_output=True, text=True, timeout=15, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        log.debug("systemctl %s failed: %s", args[0], exc)
        return None
    return done.stdout if done.returncode == 0 else None


def running_units() -> list[dict[str, str]] | None:
    """Properties of every unit the running manager knows, or None if it cannot be asked."""
    listing = _systemctl("list-units", "--all", "--full", "--plain", "--no-legend", "--no-pager")
    if listing is None:
        return None
    ids = [line.split()[0] for line in listing.splitlines() if line.split()]
    if not ids:
        return []
    shown = _systemctl("show", "--no-pager", "--property=" + ",".join(SHOW_PROPERTIES), "--", *ids)
    return parse_systemctl_show(shown) if shown is not None else None


def _or_none(value: str | None) -> str | None:
    return value if value else None


def systemd_runtime_row(props: dict[str, str]) -> tuple[object, ...]:
    unit_id = props.get("Id", "")
    return (
        unit_id, props.get("Description"), props.get("LoadState"), props.get("ActiveState"),
        props.get("SubState"), props.get("UnitFileState"), props.get("Following", ""),
        bus_object_path(unit_id), None, None, None,
        props.get("FragmentPath", ""), props.get("User", ""), props.get("SourcePath", ""),
    )


def gen_systemd_units(ctx: QueryContext) -> Iterator[tuple[object, ...]]:
    if systemd_booted("/"):
        units = running_units()
        if units is not None:
            return (systemd_runtime_row(p) for p in units)
        log.debug("systemd_units: systemd runs but systemctl failed; reading unit files")
    else:
        log.debug("systemd_units: systemd is not PID 1; runtime columns stay NULL")
    return systemd_file_rows("/")


# --------------------------------------------------------------------------
# startup_items

SYSTEM_AUTOSTART_DIRS = ("/etc/xdg/autostart",)
SYSTEM_SCRIPT_DIRS = ("/etc/init.d",)
STARTUP_ITEM = "Startup Item"
SYSTEMD_ITEM = "systemd unit"


def parse_desktop_entry(text: str) -> tuple[str | None, str | None]:
    """(Name, Exec) of a .desktop file's [Desktop Entry] group."""
    name = command = None
    group = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("["):
            group = line
            continue
        if group not in (None, "[Desktop Entry]"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            continue
        if key.strip() == "Name" and name is None:
            name = value.strip()
        elif key.strip() == "Exec" and command is None:
            command = value.strip()
    return name, command


def _autostart_items(root: str, directory: str, user: str | None) -> Iterator[tuple[object, ...]]:
    source = directory.rstrip("/") + "/"
    for path in _files_in(under_root(root, directory)):
        name, command = parse_desktop_entry(read_text(path) or "")
        yield name, command, None, STARTUP_ITEM, source, "enabled", user


def _autostart_scripts(root: str, directory: str, user: str | None) -> Iterator[tuple[object, ...]]:
    source = directory.rstrip("/") + "/"
    for path in _files_in(under_root(root, directory)):
        yield os.path.basename(path), _shown(root, path), None, STARTUP_ITEM, source, "enabled", user


def enabled_unit_items(root: str = "/") -> Iterator[tuple[object, ...]]:
    """Units enabled through *.wants/*.requires links (systemd not running: status unknown)."""
    units = unit_files(root)
    for unit_id, links in sorted(enablement_links(root).items()):
        unit = units.get(unit_id) or units.get(_template_of(unit_id) or "")
        path = unit.path if unit is not None else None
        user = unit.user if unit is not None else None
        for link in links:
            yield unit_id, path, None, SYSTEMD_ITEM, _shown(root, link), None, user


def startup_rows(root: str = "/", booted: bool | None = None) -> Iterator[tuple[object, ...]]:
    for user, home in home_directories(root):
        yield from _autostart_items(root, os.path.join(home, ".config/autostart"), user)
        yield from _autostart_scripts(root, os.path.join(home, ".config/autostart-scripts"), user)
    for directory in SYSTEM_SCRIPT_DIRS:
        yield from _autostart_scripts(root, directory, None)
    for directory in SYSTEM_AUTOSTART_DIRS:
        yield from _autostart_items(root, directory, None)
    if booted is None:
        booted = systemd_booted(root)
    units = running_units() if booted and root in ("", "/") else None
    if units is not None:
        for p in units:
            yield (
                p.get("Id"), p.get("FragmentPath", ""), None, SYSTEMD_ITEM,
                p.get("SourcePath", ""), p.get("ActiveState"), p.get("User", ""),
            )
    else:
        yield from enabled_unit_items(root)


def gen_startup_items(ctx: QueryContext) -> Iterator[tuple[object, ...]]:
    return startup_rows("/")
