"""Where config text comes from, and how it becomes JSON.

A config *source* plugin returns named texts: the filesystem plugin reads
``--config_path`` and every ``<config_path>.d/*.conf``; the TLS plugin (later)
returns what the server sent.  Each text is preprocessed as osquery does
(backslash-newline deleted, ``#`` and ``//`` comment lines dropped), checked
against osquery's limits (4 MiB, nesting depth 32, object root) and parsed.
Errors name the file, the line and column *of the original text*, and the
problem; they raise :class:`ConfigError` so the caller keeps its old config.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

MAX_CONFIG_SIZE = 4 * 1024 * 1024  # bytes after preprocessing
MAX_DEPTH = 32
# A file this much larger than the limit cannot shrink under it by losing
# comments in any config seen in practice; refusing it early bounds memory.
_MAX_RAW_SIZE = 4 * MAX_CONFIG_SIZE


class ConfigError(Exception):
    """A config that cannot be used; the message says where and why."""


@dataclass(frozen=True, slots=True)
class RawSource:
    """One named config text, as a plugin produced it."""

    key: str  # the source name osquery uses: a path for the filesystem plugin
    text: str


@dataclass(frozen=True, slots=True)
class PackText:
    """A pack the plugin resolved from a string value in ``packs``."""

    name: str
    key: str  # where it came from, for messages and the hash
    text: str


class ConfigSource(Protocol):
    """What a config plugin (filesystem, tls, an extension) provides."""

    name: str

    def fetch(self) -> list[RawSource]:
        """All sources, in merge order; raises ConfigError if none can be had."""
        ...

    def resolve_pack(self, name: str, value: str, origin: str) -> list[PackText]:
        """The pack(s) a string value in ``packs`` stands for.

        ``origin`` is the key of the source that named it.  Raises
        ConfigError for a pack that cannot be had; the caller turns that
        into a warning and keeps the rest of the config.
        """
        ...


# --- preprocessing ----------------------------------------------------------


@dataclass
class Preprocessed:
    """Text ready for the JSON parser, plus the way back to original positions."""

    text: str
    # Per output line: (output column, original line, original column)
    # starts of the pieces it was joined from; all 0-based except lines.
    pieces: list[list[tuple[int, int, int]]] = field(default_factory=list)

    def position(self, line: int, column: int) -> tuple[int, int]:
        """Map a 1-based (line, column) of ``text`` to the original text."""
        if not self.pieces:
            return line, column
        index = min(max(line, 1), len(self.pieces)) - 1
        row = self.pieces[index]
        col0 = max(column - 1, 0)
        at = bisect_right([start for start, _, _ in row], col0) - 1
        start, orig_line, orig_col = row[max(at, 0)]
        return orig_line, orig_col + col0 - start + 1


def preprocess(text: str) -> Preprocessed:
    """Delete every backslash-newline, then drop ``#`` and ``//`` comment lines.

    This is osquery's order: a comment line ending in a backslash swallows
    the line after it.  Trailing commas stay an error, as in osquery.
    """
    raw_lines = text.split("\n")
    logical: list[tuple[str, list[tuple[int, int, int]]]] = []
    buf: list[str] = []
    width = 0
    pieces: list[tuple[int, int, int]] = []
    for number, line in enumerate(raw_lines, 1):
        continued = line.endswith("\\") and number < len(raw_lines)
        part = line[:-1] if continued else line
        pieces.append((width, number, 0))
        buf.append(part)
        width += len(part)
        if not continued:
            logical.append(("".join(buf), pieces))
            buf, width, pieces = [], 0, []
    kept = [(ln, pc) for ln, pc in logical if not ln.lstrip().startswith(("#", "//"))]
    return Preprocessed("\n".join(ln for ln, _ in kept), [pc for _, pc in kept])


# --- parsing ----------------------------------------------------------------


class JsonObject(dict[str, Any]):
    """A parsed object that remembers keys given twice (the first one is kept)."""

    duplicates: list[str]


def _object(pairs: list[tuple[str, Any]]) -> JsonObject:
    obj = JsonObject()
    obj.duplicates = []
    for key, value in pairs:
        if key in obj:
            obj.duplicates.append(key)
        else:
            obj[key] = value
    return obj


# Strings are matched whole so brackets inside them are not counted.
_TOKENS = re.compile(r'"(?:[^"\\\n]|\\.)*"|[\[\]{}]|NaN|-?Infinity')


def _scan(pre: Preprocessed, origin: str, max_depth: int) -> None:
    """Check nesting depth and osquery-invalid constants before json.loads.

    Done first because Python's parser recurses: a hostile file nested
    thousands deep must get the depth message, not a RecursionError.
    """
    text = pre.text
    depth = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in ("{", "["):
            depth += 1
            if depth > max_depth:
                line, col = _where(pre, match.start())
                raise ConfigError(f"{origin}:{line}:{col}: JSON nested deeper than {max_depth} levels")
        elif token in ("}", "]"):
            depth -= 1
        elif token[0] != '"':
            line, col = _where(pre, match.start())
            raise ConfigError(f"{origin}:{line}:{col}: invalid JSON: {token} is not a JSON value")


def _where(pre: Preprocessed, offset: int) -> tuple[int, int]:
    line = pre.text.count("\n", 0, offset) + 1
    col = offset - (pre.text.rfind("\n", 0, offset) + 1) + 1
    return pre.position(line, col)


def parse_json(text: str, origin: str, *, max_size: int = MAX_CONFIG_SIZE,
               max_depth: int = MAX_DEPTH) -> JsonObject:
    """Preprocess and parse one config or pack text; the root must be an object."""
    pre = preprocess(text)
    size = len(pre.text.encode("utf-8"))
    if size > max_size:
        raise ConfigError(f"{origin}: config is {size} bytes after removing comments; "
                          f"the limit is {max_size} bytes ({max_size // (1024 * 1024)} MiB)")
    if not pre.text.strip():
        raise ConfigError(f"{origin}: config is empty; expected a JSON object")
    _scan(pre, origin, max_depth)
    try:
        data = json.loads(pre.text, object_pairs_hook=_object)
    except json.JSONDecodeError as exc:
        line, col = pre.position(exc.lineno, exc.colno)
        raise ConfigError(f"{origin}:{line}:{col}: invalid JSON: {exc.msg}") from None
    except RecursionError:
        raise ConfigError(f"{origin}: JSON nested too deeply") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: the top level must be a JSON object, got {json_type(data)}")
    return data  # type: ignore[return-value]  # the hook makes every object a JsonObject


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, for messages."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int | float):
        return "a number"
    return "null"


def duplicate_keys(value: Any, path: str = "") -> list[str]:
    """JSON paths of every key given twice in one object, depth first."""
    found: list[str] = []
    if isinstance(value, dict):
        for key in getattr(value, "duplicates", ()):
            found.append(f"{path}.{key}" if path else key)
        for key, item in value.items():
            found.extend(duplicate_keys(item, f"{path}.{key}" if path else key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(duplicate_keys(item, f"{path}[{index}]"))
    return found


def read_text(path: str | Path, what: str = "config file") -> str:
    """Read a UTF-8 config file, refusing absurdly large ones before reading."""
    try:
        size = os.stat(path).st_size
        if size > _MAX_RAW_SIZE:
            raise ConfigError(f"{path}: {what} is {size} bytes; the limit is {MAX_CONFIG_SIZE} bytes")
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        # A byte-order mark (Windows editors) is not part of the JSON.
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: {what} is not valid UTF-8 (byte offset {exc.start})") from None


# --- the filesystem plugin -------------------------------------------------


class FilesystemSource:
    """osquery's filesystem config plugin."""

    name = "filesystem"

    def __init__(self, config_path: str | Path) -> None:
        self.config_path = str(config_path)

    def fragment_paths(self) -> list[str]:
        directory = Path(f"{self.config_path}.d")
        if not directory.is_dir():
            return []
        return sorted(str(p) for p in directory.glob("*.conf") if p.is_file())

    def fetch(self) -> list[RawSource]:
        """The main file (which must exist), then the ``.d`` fragments sorted by name."""
        sources = [RawSource(self.config_path, read_text(self.config_path))]
        for path in self.fragment_paths():
            sources.append(RawSource(path, read_text(path, "config fragment")))
        return sources

    def resolve_pack(self, name: str, value: str, origin: str) -> list[PackText]:
        """Read a pack file; ``"*"`` makes one pack per file the pattern matches.

        A relative path is taken from the directory of the file that names it.
        """
        base = Path(origin).parent if origin else Path.cwd()
        target = Path(os.path.expanduser(value))
        if not target.is_absolute():
            target = base / target
        if name == "*":
            matches = sorted(glob.glob(str(target)))
            files = [m for m in matches if os.path.isfile(m)]
            if not files:
                raise ConfigError(f"packs.*: no pack files match {target}")
            return [PackText(Path(m).stem, m, read_text(m, "pack file")) for m in files]
        if not target.exists():
            raise ConfigError(f"packs.{name}: pack file {target} does not exist")
        return [PackText(name, str(target), read_text(target, "pack file"))]


# --- hashing and dumping ---------------------------------------------------


def source_digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def config_hash(sources: Mapping[str, str] | Iterable[tuple[str, str]]) -> str:
    """SHA-1 over the per-source SHA-1s, in source-name order (osquery_info.config_hash)."""
    items = sources.items() if isinstance(sources, Mapping) else sources
    digests = [source_digest(text) for _, text in sorted(items, key=lambda kv: kv[0])]
    return hashlib.sha1("".join(digests).encode("ascii")).hexdigest()


def config_dump(source: ConfigSource) -> dict[str, Any]:
    """``{"<source>": <parsed content>}`` for every source (``--config_dump``)."""
    return {raw.key: parse_json(raw.text, raw.key) for raw in source.fetch()}
