"""Linux generator for system_controls: /proc/sys plus the sysctl config files.

A tunable ``kernel.hostname`` is the file /proc/sys/kernel/hostname.  A name
constraint reads only the files it names, a subsystem constraint walks only that
directory, so ``WHERE name = ...`` costs one read instead of a walk of ~1000 files.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from hostql.sql.context import QueryContext

log = logging.getLogger(__name__)

# Drop-in directories, highest precedence first: a file name found in an earlier
# directory hides the same name in later ones (systemd-sysctl and
# "sysctl --system" rules).
_CONFIG_DIRS = ("etc/sysctl.d", "run/sysctl.d", "usr/local/lib/sysctl.d", "usr/lib/sysctl.d", "lib/sysctl.d")
# Applied after all drop-ins, as "sysctl --system" does.
_MAIN_CONFIG = "etc/sysctl.conf"

# The last column, field_name, describes macOS opaque values and is always NULL here.
Row = tuple[str, None, str, str | None, str | None, str, None]


def parse_sysctl_conf(text: str, into: dict[str, str]) -> None:
    """Add the ``name = value`` assignments of one sysctl.conf file to ``into``."""
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        # A leading '-' means "ignore errors setting this"; it is not part of the name.
        name, sep, value = line.lstrip("-").partition("=")
        if sep:
            into[name.strip().replace("/", ".")] = value.strip()


def config_files(root: str = "/") -> list[Path]:
    """Config files in the order they are applied at boot."""
    base = Path(root)
    chosen: dict[str, Path] = {}
    for directory in _CONFIG_DIRS:
        try:
            entries = list((base / directory).iterdir())
        except OSError:
            continue
        for entry in entries:
            if entry.name.endswith(".conf"):
                chosen.setdefault(entry.name, entry)
    ordered = [chosen[name] for name in sorted(chosen)]
    main = base / _MAIN_CONFIG
    # Debian links 99-sysctl.conf to sysctl.conf; reading it twice changes nothing.
    return [*ordered, main]


def read_sysctl_config(root: str = "/") -> dict[str, str]:
    """Every configured tunable with the value the config files give it at boot."""
    config: dict[str, str] = {}
    for path in config_files(root):
        try:
            parse_sysctl_conf(path.read_text(errors="replace"), config)
        except OSError:
            continue
    return config


def _read_value(path: str) -> str | None:
    # Write-only tunables (e.g. vm.drop_caches) and ones that refuse reads yield NULL.
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8", "replace").strip()
    except OSError:
        return None


def control_row(proc_sys: Path, path: Path, config: dict[str, str], read: bool = True) -> Row:
    return _row(".".join(path.relative_to(proc_sys).parts), str(path), config, read)


def _row(name: str, path: str, config: dict[str, str], read: bool) -> Row:
    value = _read_value(path) if read else None
    # Linux has no numeric MIBs for these names, so oid stays NULL as in osquery.
    return (name, None, name.split(".", 1)[0], value, config.get(name), "string", None)


def walk_controls(proc_sys: Path, start: Path, config: dict[str, str], read: bool = True) -> Iterator[Row]:
    """Rows for every tunable file under ``start`` (a directory or a single file)."""
    if not start.is_dir():
        if start.is_file():
            yield control_row(proc_sys, start, config, read)
        return
    # Plain strings rather than pathlib in the loop: a full scan visits ~1300 files.
    prefix_len = len(str(proc_sys)) + 1
    for dirpath, dirnames, filenames in os.walk(start):
        dirnames.sort()
        base = dirpath[prefix_len:].replace("/", ".")
        for filename in sorted(filenames):
            yield _row(f"{base}.{filename}", f"{dirpath}/{filename}", config, read)


def name_to_path(proc_sys: Path, name: str) -> Path | None:
    """The /proc/sys file for a dotted name; None for names that would escape /proc/sys."""
    parts = name.split(".")
    if not name or any(p in ("", "..") for p in parts):
        return None
    return proc_sys.joinpath(*parts)


def system_controls(
    root: str = "/",
    names: Iterable[str] = (),
    subsystems: Iterable[str] = (),
    read_values: bool = True,
) -> Iterator[Row]:
    """Rows for the named tunables, else those of the subsystems, else all of them.

    ``read_values=False`` skips reading every file when current_value is not queried.
    """
    proc_sys = Path(root) / "proc" / "sys"
    config = read_sysctl_config(root)
    names = sorted(set(names))
    if names:
        for name in names:
            path = name_to_path(proc_sys, name)
            if path is not None:
                yield from walk_controls(proc_sys, path, config, read_values)
        return
    wanted = set(subsystems)
    try:
        tops = sorted(p for p in proc_sys.iterdir() if p.is_dir())
    except OSError:
        log.debug("system_controls: %s unreadable", proc_sys)
        return
    for top in tops:
        if not wanted or top.name in wanted:
            yield from walk_controls(proc_sys, top, config, read_values)


def gen_system_controls(ctx: QueryContext) -> Iterator[Row]:
    names = [v for v in ctx.equals("name") if isinstance(v, str)]
    subsystems = [v for v in ctx.equals("subsystem") if isinstance(v, str)]
    yield from system_controls("/", names, subsystems, ctx.is_used("current_value"))
