"""deb_packages and deb_package_files: the dpkg database read as plain files.

dpkg keeps its database as RFC822-like stanzas in ``<admindir>/status`` plus
journal files in ``<admindir>/updates/`` that override it until dpkg folds
them in.  Reading these directly gives what libdpkg (which osquery links)
would give, without needing the library.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator

from hostql.sql.context import QueryContext
from hostql.tables.common.rootfs import read_text

log = logging.getLogger(__name__)

ADMINDIR = "/var/lib/dpkg"

Stanza = dict[str, str]


def parse_stanzas(text: str) -> Iterator[Stanza]:
    """Split a deb822 control text into field dicts (continuation lines joined)."""
    fields: Stanza = {}
    last: str | None = None
    for line in text.splitlines():
        if not line.strip():
            if fields:
                yield fields
            fields, last = {}, None
            continue
        if line[0] in " \t":
            # Continuation of a multi-line field (Description, Conffiles, ...).
            if last is not None:
                fields[last] += "\n" + line[1:]
            continue
        key, sep, value = line.partition(":")
        if not sep:
            continue
        last = key.strip()
        fields[last] = value.strip()
    if fields:
        yield fields


def _pkg_key(stanza: Stanza) -> tuple[str, str]:
    return stanza.get("Package", ""), stanza.get("Architecture", "")


def read_status(admindir: str) -> list[Stanza] | None:
    """All package stanzas of a dpkg admindir, journal updates applied.

    None when ``admindir`` is not a readable dpkg database (no status file).
    """
    text = read_text(os.path.join(admindir, "status"))
    if text is None:
        return None
    packages: dict[tuple[str, str], Stanza] = {}
    for stanza in parse_stanzas(text):
        if "Package" in stanza:
            packages[_pkg_key(stanza)] = stanza
    updates = os.path.join(admindir, "updates")
    try:
        # dpkg names journal entries with increasing decimal numbers.
        journal = sorted((n for n in os.listdir(updates) if n.isdigit()), key=int)
    except OSError:
        journal = []
    for name in journal:
        extra = read_text(os.path.join(updates, name)) or ""
        for stanza in parse_stanzas(extra):
            if "Package" in stanza:
                packages[_pkg_key(stanza)] = stanza
    return [packages[k] for k in sorted(packages)]


def is_listed(stanza: Stanza) -> bool:
    """osquery lists every package whose state is anything but not-installed."""
    parts = stanza.get("Status", "").split()
    return len(parts) == 3 and parts[2] != "not-installed"


def revision_of(version: str) -> str:
    """Debian revision: text after the last '-' of the version (epoch aside)."""
    upstream = version.split(":", 1)[1] if ":" in version else version
    _, sep, revision = upstream.rpartition("-")
    return revision if sep else ""


def _size(text: str | None) -> int | None:
    try:
        return int(text) if text else None
    except ValueError:
        return None


def admindirs(ctx: QueryContext) -> list[str]:
    wanted = sorted(str(v) for v in ctx.equals("admindir") if v is not None)
    return wanted or [ADMINDIR]


def gen_deb_packages(ctx: QueryContext) -> Iterator[tuple[object, ...]]:
    for admindir in admindirs(ctx):
        yield from deb_package_rows(admindir)


def deb_package_rows(admindir: str) -> Iterator[tuple[object, ...]]:
    """Rows of deb_packages (spec column order) for one admindir."""
    stanzas = read_status(admindir)
    if stanzas is None:
        log.debug("deb_packages: %s is not a dpkg database", admindir)
        return
    for st in stanzas:
        if not is_listed(st):
            continue
        version = st.get("Version", "")
        yield (
            st.get("Package", ""),
            version,
            st.get("Source", ""),
            _size(st.get("Installed-Size")),
            st.get("Architecture", ""),
            revision_of(version),
            st.get("Status", ""),
            st.get("Maintainer", ""),
            st.get("Section", ""),
            st.get("Priority", ""),
            admindir,
            None,
            None,
        )


def _list_file(info_dir: str, name: str, arch: str) -> str | None:
    # "Multi-Arch: same" packages name their files <pkg>:<arch>.list.
    for candidate in (f"{name}.list", f"{name}:{arch}.list"):
        path = os.path.join(info_dir, candidate)
        if os.path.isfile(path):
            return path
    return None


def package_files(admindir: str, packages: Iterable[str] | None = None) -> Iterator[tuple[str, str]]:
    """(package, path) pairs from the .list files, optionally for some packages only."""
    stanzas = read_status(admindir)
    if stanzas is None:
        log.debug("deb_package_files: %s is not a dpkg database", admindir)
        return
    wanted = set(packages) if packages is not None else None
    info_dir = os.path.join(admindir, "info")
    for st in stanzas:
        name = st.get("Package", "")
        if not is_listed(st) or (wanted is not None and name not in wanted):
            continue
        list_path = _list_file(info_dir, name, st.get("Architecture", ""))
        if list_path is None:
            continue
        text = read_text(list_path)
        for line in (text or "").splitlines():
            if line:
                yield name, line


def gen_deb_package_files(ctx: QueryContext) -> Iterator[tuple[object, ...]]:
    wanted = {str(v) for v in ctx.equals("package") if v is not None} or None
    for admindir in admindirs(ctx):
        for name, path in package_files(admindir, wanted):
            yield name, path, admindir
