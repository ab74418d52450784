"""rpm_packages, apt_sources and yum_sources from the files that define them."""

from __future__ import annotations

import configparser
import glob
import logging
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from hostql.sql.context import QueryContext
from hostql.tables.common.rootfs import read_text, under_root
from hostql.tables.linux.dpkg import parse_stanzas

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------
# rpm_packages: rpm >= 4.16 keeps its database in SQLite; each row of the
# Packages table is a header blob: index count, data length, index entries
# (tag, type, offset, count; big-endian), then the data store.

RPMDB_PATHS = ("/var/lib/rpm/rpmdb.sqlite", "/usr/lib/sysimage/rpm/rpmdb.sqlite")

TAG_NAME, TAG_VERSION, TAG_RELEASE, TAG_EPOCH = 1000, 1001, 1002, 1003
TAG_INSTALLTIME, TAG_SIZE, TAG_VENDOR, TAG_GROUP = 1008, 1009, 1011, 1016
TAG_ARCH, TAG_SOURCERPM, TAG_SHA1HEADER, TAG_LONGSIZE = 1022, 1044, 269, 5009

TYPE_INT32, TYPE_INT64, TYPE_STRING, TYPE_STRING_ARRAY, TYPE_I18NSTRING = 4, 5, 6, 8, 9


def parse_rpm_header(blob: bytes) -> dict[int, str | int]:
    """Scalar tags of an rpm header blob: strings and the first integer of arrays."""
    il, dl = struct.unpack_from(">II", blob, 0)
    store = 8 + 16 * il
    if store + dl > len(blob):
        raise ValueError("truncated rpm header")
    tags: dict[int, str | int] = {}
    for i in range(il):
        tag, kind, offset, count = struct.unpack_from(">iIiI", blob, 8 + 16 * i)
        at = store + offset
        if count == 0 or not 0 <= offset < dl:
            continue
        if kind in (TYPE_STRING, TYPE_STRING_ARRAY, TYPE_I18NSTRING):
            end = blob.find(b"\0", at, store + dl)
            tags[tag] = blob[at:end if end >= 0 else store + dl].decode("utf-8", "replace")
        elif kind == TYPE_INT32:
            tags[tag] = struct.unpack_from(">I", blob, at)[0]
        elif kind == TYPE_INT64:
            tags[tag] = struct.unpack_from(">Q", blob, at)[0]
    return tags


def _rpm_row(tags: dict[int, str | int]) -> tuple[object, ...]:
    def text(tag: int) -> str:
        value = tags.get(tag)
        return value if isinstance(value, str) else ""

    def number(tag: int) -> int | None:
        value = tags.get(tag)
        return value if isinstance(value, int) else None

    size = number(TAG_LONGSIZE)
    return (
        text(TAG_NAME), text(TAG_VERSION), text(TAG_RELEASE), text(TAG_SOURCERPM),
        size if size is not None else number(TAG_SIZE),
        text(TAG_SHA1HEADER), text(TAG_ARCH), number(TAG_EPOCH), number(TAG_INSTALLTIME),
        text(TAG_VENDOR), text(TAG_GROUP), None, None,
    )


def rpm_package_rows(root: str = "/") -> Iterator[tuple[object, ...]]:
    import sqlite3

    for rel in RPMDB_PATHS:
        path = under_root(root, rel)
        if os.path.isfile(path):
            break
    else:
        log.debug("rpm_packages: no SQLite rpm database under %s; no rows", root)
        return
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        log.debug("rpm_packages: cannot open %s: %s", path, exc)
        return
    try:
        blobs = [row[0] for row in conn.execute("SELECT blob FROM Packages")]
    except sqlite3.Error as exc:
        log.debug("rpm_packages: cannot read %s: %s", path, exc)
        return
    finally:
        conn.close()
    for blob in blobs:
        try:
            tags = parse_rpm_header(bytes(blob))
        except (struct.error, ValueError) as exc:
            log.debug("rpm_packages: bad header in %s: %s", path, exc)
            continue
        if tags.get(TAG_NAME) == "gpg-pubkey":
            continue  # imported signing keys are stored as pseudo-packages
        yield _rpm_row(tags)


def gen_rpm_packages(ctx: QueryContext) -> Iterator[tuple[object, ...]]:
    return rpm_package_rows("/")


# --------------------------------------------------------------------------
# apt_sources


@dataclass(frozen=True, slots=True)
class AptEntry:
    """One (URI, suite) pair of a 'deb' source definition."""

    source: str
    uri: str
    suite: str
    components: tuple[str, ...]
    architectures: tuple[str, ...]


def parse_one_line_sources(text: str, source: str) -> Iterator[AptEntry]:
    """Entries of a one-line-style sources.list ('deb [opts] uri suite comp...')."""
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].split()
        if not line or line[0] != "deb":
            continue  # deb-src lines describe source packages, not installable ones
        rest = line[1:]
        arches: tuple[str, ...] = ()
        if rest and rest[0].startswith("["):
            opts: list[str] = []
            while rest:
                token = rest.pop(0)
                opts.append(token.strip("[]"))
                if token.endswith("]"):
                    break
            for opt in opts:
                key, _, value = opt.partition("=")
                if key == "arch":
                    arches = tuple(value.split(","))
        if len(rest) < 2 or "://" not in rest[0]:
            continue
        yield AptEntry(source, rest[0], rest[1], tuple(rest[2:]), arches)


def parse_deb822_sources(text: str, source: str) -> Iterator[AptEntry]:
    """Entries of a deb822 *.sources file (one per URI x suite)."""
    # Comment lines may sit inside a stanza; drop them before splitting stanzas.
    cleaned = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    for stanza in parse_stanzas(cleaned):
        fields = {k.lower(): v for k, v in stanza.items()}
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").strip().lower() == "no":
            continue
        components = tuple(fields.get("components", "").split())
        arches = tuple(fields.get("architectures", "").split())
        for uri in fields.get("uris", "").split():
            if "://" not in uri:
                continue
            for suite in fields.get("suites", "").split():
                yield AptEntry(source, uri, suite, components, arches)


def apt_source_files(root: str = "/") -> list[str]:
    files = [under_root(root, "/etc/apt/sources.list")]
    listing = under_root(root, "/etc/apt/sources.list.d")
    files += sorted(glob.glob(os.path.join(glob.escape(listing), "*.list")))
    files += sorted(glob.glob(os.path.join(glob.escape(listing), "*.sources")))
    return [f for f in files if os.path.isfile(f)]


def release_cache_name(uri: str, suite: str) -> str:
    """Prefix APT uses for a repository's files in /var/lib/apt/lists."""
    host_path = uri.split("://", 1)[1].rstrip("/")
    parts = [host_path]
    if suite.endswith("/"):
        parts.append(suite.rstrip("/"))  # flat repository: no dists/ level
    else:
        parts += ["dists", suite]
    return "_".join(parts).replace("/", "_")


def read_release(root: str, uri: str, suite: str) -> dict[str, str]:
    """Header fields of the cached (In)Release file, empty when APT has none."""
    lists = under_root(root, "/var/lib/apt/lists")
    prefix = os.path.join(glob.escape(lists), glob.escape(release_cache_name(uri, suite)))
    for path in sorted(glob.glob(prefix + "_*Release")):
        text = read_text(path)
        if text is None:
            continue
        fields: dict[str, str] = {}
        for line in text.splitlines():
            if line.startswith("-----BEGIN PGP SIGNATURE"):
                break
            if not line or line[0] in " \t":
                continue  # checksum lists continue on indented lines
            key, sep, value = line.partition(":")
            if sep and key not in fields:
                fields[key] = value.strip()
        return fields
    return {}


def apt_source_rows(root: str = "/") -> Iterator[tuple[object, ...]]:
    for path in apt_source_files(root):
        text = read_text(path)
        if text is None:
            continue
        shown = "/" + os.path.relpath(path, root) if root != "/" else path
        parse = parse_deb822_sources if path.endswith(".sources") else parse_one_line_sources
        for entry in parse(text, shown):
            base = entry.uri.rstrip("/")
            release = read_release(root, entry.uri, entry.suite)
            components = release.get("Components") or " ".join(entry.components) or None
            arches = release.get("Architectures") or " ".join(entry.architectures) or None
            yield (
                f"{base.split('://', 1)[1]} {entry.suite}",
                entry.source,
                base,
                release.get("Codename"),
                release.get("Version"),
                release.get("Origin"),
                components,
                arches,
                None,
            )


def gen_apt_sources(ctx: QueryContext) -> Iterator[tuple[object, ...]]:
    return apt_source_rows("/")


# --------------------------------------------------------------------------
# yum_sources

YUM_KEYS = ("baseurl", "mirrorlist", "metalink", "enabled", "gpgcheck", "gpgkey")


def parse_yum_repo(text: str, source: str) -> Iterator[tuple[object, ...]]:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    try:
        parser.read_string(text, source)
    except configparser.Error as exc:
        log.debug("yum_sources: cannot parse %s: %s", source, exc)
        return
    for section in parser.sections():
        if section == "main":
            continue  # yum.conf's global options are not a repository
        values = parser[section]
        row: list[object] = [values.get("name"), source]
        # Multi-line values (several baseurls) are joined with spaces.
        row += [" ".join(values[k].split()) if k in values else None for k in YUM_KEYS]
        row.append(None)
        yield tuple(row)


def yum_source_rows(root: str = "/") -> Iterator[tuple[object, ...]]:
    files = [under_root(root, "/etc/yum.conf")]
    files += sorted(glob.glob(os.path.join(glob.escape(under_root(root, "/etc/yum.repos.d")), "*.repo")))
    found = False
    for path in files:
        text = read_text(path) if os.path.isfile(path) else None
        if text is None:
            continue
        found = True
        shown = "/" + os.path.relpath(path, root) if root != "/" else path
        yield from parse_yum_repo(text, shown)
    if not found:
        log.debug("yum_sources: no yum configuration under %s", root)


def gen_yum_sources(ctx: QueryContext) -> Iterator[tuple[object, ...]]:
    return yum_source_rows("/")
