"""python_packages and npm_packages: language package metadata on disk.

Both tables only read metadata files, so the same code serves every platform;
only the default search directories differ.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import sys
from collections.abc import Iterable, Iterator

from hostql.sql.context import Op, QueryContext
from hostql.tables.common.rootfs import under_root

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------
# python_packages

# System site directories osquery scans; '*' stands for the Python version
# ('3', '3.11', ...), Debian uses dist-packages, others site-packages.
PYTHON_SYSTEM_PATTERNS = {
    "linux": (
        "/usr/local/lib/python*/dist-packages",
        "/usr/local/lib/python*/site-packages",
        "/usr/lib/python*/dist-packages",
        "/usr/lib/python*/site-packages",
    ),
    "darwin": ("/Library/Python/*/site-packages",),
}
PYTHON_HOME_PATTERNS = {
    "linux": (".local/lib/python*/site-packages",),
    "darwin": (".local/lib/python*/site-packages", "Library/Python/*/lib/python/site-packages"),
}

METADATA_KEYS = ("Name", "Version", "Summary", "Author", "License", "License-Expression")


def _platform() -> str:
    if sys.platform.startswith("linux"):
        return "linux"
    return "darwin" if sys.platform == "darwin" else "windows"


def parse_metadata(text: str) -> dict[str, str]:
    """Header fields of a METADATA / PKG-INFO file (stops at the body)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            break  # the long description follows the first blank line
        if line[0] in " \t":
            continue
        key, sep, value = line.partition(":")
        if sep and key in METADATA_KEYS and key not in fields:
            fields[key] = value.strip()
    return fields


def _metadata_file(entry: os.DirEntry[str]) -> str | None:
    name = entry.name
    if ".dist-info" in name:
        return os.path.join(entry.path, "METADATA") if entry.is_dir() else None
    if ".egg-info" in name:
        # setuptools writes egg-info either as a directory or as a single file.
        return os.path.join(entry.path, "PKG-INFO") if entry.is_dir() else entry.path
    return None


def site_packages(site: str, uid: int | None = None) -> Iterator[tuple[object, ...]]:
    """python_packages rows for one site directory, in spec column order."""
    try:
        entries = sorted(os.scandir(site), key=lambda e: e.name)
    except OSError as exc:
        log.debug("python_packages: cannot list %s: %s", site, exc)
        return
    for entry in entries:
        try:
            meta_path = _metadata_file(entry)
        except OSError:
            continue
        if meta_path is None:
            continue
        try:
            with open(meta_path, encoding="utf-8", errors="replace") as handle:
                meta = parse_metadata(handle.read(65536))
        except OSError as exc:
            log.debug("python_packages: cannot read %s: %s", meta_path, exc)
            meta = {}
        yield (
            meta.get("Name"),
            uid,
            meta.get("Version"),
            meta.get("Summary"),
            meta.get("Author"),
            meta.get("License") or meta.get("License-Expression"),
            entry.path,
            site,
            None,
        )


def _homes(uids: Iterable[int] | None) -> list[tuple[int, str]]:
    """(uid, home) of the requested users; the current user when none are asked for."""
    try:
        import pwd
    except ImportError:  # Windows has no passwd database
        return []
    wanted = set(uids) if uids is not None else {os.getuid()}
    homes = []
    for uid in sorted(wanted):
        try:
            homes.append((uid, pwd.getpwuid(uid).pw_dir))
        except KeyError:
            continue
    return homes


def python_sites(root: str = "/", uids: Iterable[int] | None = None) -> list[tuple[str, int | None]]:
    """Default (site directory, owner uid) pairs to scan on this platform."""
    plat = _platform()
    sites: list[tuple[str, int | None]] = []
    for pattern in PYTHON_SYSTEM_PATTERNS.get(plat, ()):
        for path in sorted(glob.glob(under_root(root, pattern))):
            sites.append((path, None))
    for uid, home in _homes(uids):
        for pattern in PYTHON_HOME_PATTERNS.get(plat, ()):
            for path in sorted(glob.glob(os.path.join(under_root(root, home), pattern))):
                sites.append((path, uid))
    return [(p, u) for p, u in sites if os.path.isdir(p)]


def _int_values(ctx: QueryContext, column: str) -> list[int]:
    out = []
    for value in ctx.equals(column):
        try:
            out.append(int(value))
        except (TypeError, ValueError):
            continue
    return out


def gen_python_packages(ctx: QueryContext) -> Iterator[tuple[object, ...]]:
    directories = sorted(str(d) for d in ctx.equals("directory") if d is not None)
    if directories:
        for site in directories:
            yield from site_packages(site)
        return
    uids = _int_values(ctx, "uid") if ctx.has("uid", Op.EQUALS) else None
    for site, uid in python_sites("/", uids):
        yield from site_packages(site, uid)


# --------------------------------------------------------------------------
# npm_packages

NPM_GLOBAL_DIRS = {
    "linux": ("/usr/local/lib/node_modules", "/usr/lib/node_modules"),
    "darwin": ("/usr/local/lib/node_modules", "/opt/homebrew/lib/node_modules"),
}


def _person(value: object) -> str | None:
    # package.json allows "Name <mail> (url)" strings or {"name": ...} objects.
    if isinstance(value, dict):
        name = value.get("name")
        return name if isinstance(name, str) else None
    return value if isinstance(value, str) else None


def _license(value: object) -> str | None:
    if isinstance(value, dict):
        kind = value.get("type")
        return kind if isinstance(kind, str) else None
    if isinstance(value, list):
        names = [_license(v) for v in value]
        return " OR ".join(n for n in names if n) or None
    return value if isinstance(value, str) else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _package_dirs(modules: str) -> Iterator[str]:
    """Package directories directly inside a node_modules directory (@scopes expanded)."""
    try:
        names = sorted(os.listdir(modules))
    except OSError:
        return
    for name in names:
        if name.startswith("."):
            continue  # .bin, .package-lock.json, ...
        path = os.path.join(modules, name)
        if name.startswith("@"):
            try:
                scoped = sorted(os.listdir(path))
            except OSError:
                continue
            for sub in scoped:
                yield os.path.join(path, sub)
        else:
            yield path


def npm_packages_in(directory: str, max_depth: int = 0) -> Iterator[tuple[object, ...]]:
    """npm_packages rows for one directory (a node_modules tree or a project)."""
    modules = directory
    if os.path.basename(directory.rstrip("/")) != "node_modules":
        nested = os.path.join(directory, "node_modules")
        if os.path.isdir(nested):
            modules = nested
    pending = [(modules, 0)]
    while pending:
        current, depth = pending.pop(0)
        for pkg_dir in _package_dirs(current):
            manifest = os.path.join(pkg_dir, "package.json")
            try:
                with open(manifest, encoding="utf-8", errors="replace") as handle:
                    data = json.load(handle)
            except (OSError, ValueError):
                continue
            if not isinstance(data, dict):
                continue
            yield (
                _text(data.get("name")),
                _text(data.get("version")),
                _text(data.get("description")),
                _person(data.get("author")),
                _license(data.get("license")),
                _text(data.get("homepage")),
                manifest,
                directory,
                depth,
                max_depth,
                None,
                None,
            )
            if depth < max_depth:
                inner = os.path.join(pkg_dir, "node_modules")
                if os.path.isdir(inner):
                    pending.append((inner, depth + 1))


def gen_npm_packages(ctx: QueryContext) -> Iterator[tuple[object, ...]]:
    depths = _int_values(ctx, "max_depth")
    max_depth = max(depths[0], 0) if len(depths) == 1 else 0
    directories = sorted(str(d) for d in ctx.equals("directory") if d is not None)
    if not directories:
        directories = [d for d in NPM_GLOBAL_DIRS.get(_platform(), ()) if os.path.isdir(d)]
    for directory in directories:
        yield from npm_packages_in(directory, max_depth)
