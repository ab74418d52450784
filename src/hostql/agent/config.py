"""The agent's configuration: osquery's config format as typed dataclasses.

:func:`load_config` fetches every source from a config plugin, parses them
(see :mod:`hostql.agent.config_sources`) and merges them into a new
:class:`Config`, or raises :class:`ConfigError` so the daemon keeps the one it
has.  Problems that osquery tolerates (a bad interval, an unknown option, a
missing pack file) do not fail the load: the offending entry is skipped and a
warning naming the file and JSON path is added to ``Config.warnings`` for the
daemon to log as status lines.

Merging: ``options`` of every source are applied first (later sources win),
so ``pack_delimiter`` and ``schedule_default_interval`` hold for all queries.
Then each source in order adds its schedule, packs, decorators and the rest;
a query or pack a later source defines again replaces the earlier one.
"""

from __future__ import annotations

import hashlib
import json
import socket
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from hostql import OSQUERY_VERSION
from hostql.agent.config_sources import (
    ConfigError,
    ConfigSource,
    PackText,
    RawSource,
    config_hash,
    duplicate_keys,
    json_type,
    parse_json,
)
from hostql.agent.flags import FlagError, FlagValue, FlagValues, host_platform, lookup, parse_value

__all__ = [
    "AutoTable", "Config", "ConfigError", "Decorators", "EventsConfig", "Pack", "ScheduledQuery",
    "build_config", "load_config", "machine_shard", "platform_matches", "shard_matches", "version_at_least",
]

MAIN_PACK = "main"  # the top-level ``schedule`` is osquery's pack "main"
MIN_INTERVAL, MAX_INTERVAL = 1, 604800
# Key shapes the result store uses next to query names (osquery-reference §3.4).
RESERVED_PREFIXES = ("query.", "cache.", "config_views.")
RESERVED_SUFFIXES = ("epoch", "counter")

# Top-level keys osquery's config parsers handle, with the JSON type each takes.
PARSER_KEYS: dict[str, type] = {
    "options": dict, "schedule": dict, "packs": dict, "decorators": dict, "file_paths": dict,
    "file_paths_query": dict, "file_accesses": list, "exclude_paths": dict, "yara": dict, "events": dict,
    "views": dict, "auto_table_construction": dict, "prometheus_targets": dict, "feature_vectors": dict,
    "kafka_topics": dict, "logger": dict,
}


@dataclass(frozen=True, slots=True)
class ScheduledQuery:
    """One query of the schedule or of a pack."""

    name: str  # the scheduled name: bare for the schedule, pack_<pack>_<query> for packs
    query: str
    interval: int
    pack: str = MAIN_PACK
    query_name: str = ""  # the name inside its pack
    snapshot: bool = False
    removed: bool = True
    platform: str = ""
    version: str = ""
    shard: int = 0
    denylist: bool = True
    startup_priority: int | None = None
    description: str = ""
    value: str = ""


@dataclass(frozen=True, slots=True)
class Pack:
    name: str
    queries: tuple[ScheduledQuery, ...] = ()
    discovery: tuple[str, ...] = ()
    platform: str = ""
    version: str = ""
    shard: int = 0
    oncall: str = ""
    source: str = ""


@dataclass(frozen=True, slots=True)
class Decorators:
    load: tuple[str, ...] = ()
    always: tuple[str, ...] = ()
    interval: dict[int, tuple[str, ...]] = field(default_factory=dict)  # seconds -> queries


@dataclass(frozen=True, slots=True)
class AutoTable:
    """An auto_table_construction entry: a local SQLite file exposed as a table."""

    name: str
    query: str
    path: str
    columns: tuple[str, ...]
    platform: str = ""


@dataclass(frozen=True, slots=True)
class EventsConfig:
    disable_subscribers: tuple[str, ...] = ()
    enable_subscribers: tuple[str, ...] = ()
    environment_variables: tuple[str, ...] = ()


@dataclass
class Config:
    """A loaded, validated configuration."""

    flags: FlagValues
    options: dict[str, FlagValue] = field(default_factory=dict)  # accepted flag options, typed
    custom_options: dict[str, str] = field(default_factory=dict)  # custom_* options, as text
    packs: dict[str, Pack] = field(default_factory=dict)  # includes MAIN_PACK for ``schedule``
    decorators: Decorators = field(default_factory=Decorators)
    views: dict[str, str] = field(default_factory=dict)
    auto_table_construction: dict[str, AutoTable] = field(default_factory=dict)
    file_paths: dict[str, list[str]] = field(default_factory=dict)
    file_paths_query: dict[str, list[str]] = field(default_factory=dict)
    exclude_paths: dict[str, list[str]] = field(default_factory=dict)
    file_accesses: list[str] = field(default_factory=list)
    yara: dict[str, Any] = field(default_factory=dict)
    events: EventsConfig = field(default_factory=EventsConfig)
    prometheus_targets: dict[str, Any] = field(default_factory=dict)
    feature_vectors: dict[str, Any] = field(default_factory=dict)
    other: dict[str, Any] = field(default_factory=dict)  # kafka_topics, logger: kept as given
    sources: dict[str, str] = field(default_factory=dict)  # source key -> text (packs included)
    hash: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def schedule(self) -> dict[str, ScheduledQuery]:
        """The top-level ``schedule``, by query name."""
        main = self.packs.get(MAIN_PACK)
        return {q.name: q for q in main.queries} if main else {}

    def all_queries(self) -> list[ScheduledQuery]:
        """Every scheduled query of every pack, unfiltered."""
        return [q for pack in self.packs.values() for q in pack.queries]

    def runnable_queries(self, platform: str | None = None, version: str = OSQUERY_VERSION,
                         shard: int | None = None) -> list[ScheduledQuery]:
        """Queries whose pack and own platform/version/shard filters pass here.

        Discovery queries need the SQL engine, so the scheduler applies them.
        """
        host = host_platform(platform)
        machine = machine_shard() if shard is None else shard
        found: list[ScheduledQuery] = []
        for pack in self.packs.values():
            if not _passes(pack.platform, pack.version, pack.shard, host, version, machine):
                continue
            found.extend(q for q in pack.queries if _passes(q.platform, q.version, q.shard, host, version, machine))
        return found


# --- filters ----------------------------------------------------------------

_PLATFORM_WORDS = {
    "linux": ("linux", "ubuntu", "centos", "posix"),
    "darwin": ("darwin", "posix"),
    "freebsd": ("freebsd", "posix"),
    "windows": ("windows",),
}


def platform_matches(spec: str, platform: str | None = None) -> bool:
    """osquery's platform test: substring matching, so comma lists work."""
    text = spec.strip().lower()
    if not text or "any" in text or "all" in text:
        return True
    return any(word in text for word in _PLATFORM_WORDS[host_platform(platform)])


def _version_parts(version: str) -> list[int]:
    parts = []
    for piece in version.strip().split("."):
        digits = ""
        for ch in piece:
            if not ch.isdigit():
                break
            digits += ch
        parts.append(int(digits) if digits else 0)
    return parts


def version_at_least(required: str, current: str = OSQUERY_VERSION) -> bool:
    """True when ``current`` >= ``required`` comparing dotted numbers; empty passes."""
    if not required.strip():
        return True
    want, have = _version_parts(required), _version_parts(current)
    width = max(len(want), len(have))
    return have + [0] * (width - len(have)) >= want + [0] * (width - len(want))


def machine_shard(hostname: str | None = None) -> int:
    """This host's shard, 0..100: first byte of SHA-1(hostname) * 100 / 255."""
    name = socket.gethostname() if hostname is None else hostname
    return hashlib.sha1(name.encode("utf-8")).digest()[0] * 100 // 255


def shard_matches(shard: int, machine: int) -> bool:
    """A query with shard N (1..100) runs on machines whose shard is at most N."""
    return shard <= 0 or shard >= machine


def _passes(plat: str, version: str, shard: int, host: str, current: str, machine: int) -> bool:
    return platform_matches(plat, host) and version_at_least(version, current) and shard_matches(shard, machine)


# --- value helpers ----------------------------------------------------------


def _as_int(value: Any) -> int | None:
    """An int from a JSON integer or a numeric string; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip(), 10)
        except ValueError:
            return None
    return None


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    return None


def _reserved(name: str) -> bool:
    return name.startswith(RESERVED_PREFIXES) or name.endswith(RESERVED_SUFFIXES)


PackResolver = Callable[[str, str, str], list[PackText]]


class _Builder:
    """Accumulates one load: state, warnings and the sources seen."""

    def __init__(self, flags: FlagValues, resolver: PackResolver | None, builtin_tables: Collection[str]) -> None:
        self.config = Config(flags=flags.copy())
        self.resolver = resolver
        self.builtin_tables = set(builtin_tables)
        self.origin = ""

    def warn(self, where: str, problem: str) -> None:
        self.config.warnings.append(f"{self.origin}: {where}: {problem}" if where else f"{self.origin}: {problem}")

    # options ---------------------------------------------------------------

    def options(self, options: dict[str, Any]) -> None:
        cfg = self.config
        for name, raw in options.items():
            where = f"options.{name}"
            if name.startswith("custom_"):
                cfg.custom_options[name] = raw if isinstance(raw, str) else json.dumps(raw)
                continue
            flag = lookup(name)
            if flag is None:
                self.warn(where, f"unknown option '{name}' ignored (names starting with 'custom_' are kept)")
                continue
            if flag.cli_only:
                self.warn(where, f"'{name}' is a command-line-only flag; set via config file it is ignored"
                                 f" (pass --{name} on the command line or in a flagfile)")
                continue
            if raw is None:
                self.warn(where, "null is not a value; option ignored")
                continue
            value = json.dumps(raw) if isinstance(raw, dict | list) else raw
            try:
                typed = parse_value(flag, value)
            except FlagError as exc:
                self.warn(where, f"{exc}; option ignored")
                continue
            cfg.flags.set(flag.name, typed)
            cfg.options[flag.name] = typed

    # schedule and packs ----------------------------------------------------

    def query(self, pack: str, qname: str, spec: Any, where: str) -> ScheduledQuery | None:
        if not isinstance(spec, dict):
            self.warn(where, f"expected an object, got {json_type(spec)}; query skipped")
            return None
        sql = spec.get("query")
        if not isinstance(sql, str) or not sql.strip():
            self.warn(f"{where}.query", "missing or not a string; query skipped")
            return None
        delim = str(self.config.flags.get("pack_delimiter"))
        name = qname if pack == MAIN_PACK else f"pack{delim}{pack}{delim}{qname}"
        if _reserved(name):
            self.warn(where, f"query name '{name}' is reserved (starts with query., cache. or config_views., "
                             "or ends with epoch or counter); query skipped")
            return None
        if "interval" in spec:
            interval = _as_int(spec["interval"])
            if interval is None:
                self.warn(f"{where}.interval", f"expected an integer, got {spec['interval']!r}; "
                                               f"query '{name}' skipped")
                return None
        else:
            interval = int(self.config.flags.get("schedule_default_interval"))
        if not MIN_INTERVAL <= interval <= MAX_INTERVAL:
            self.warn(f"{where}.interval", f"{interval} is outside {MIN_INTERVAL}..{MAX_INTERVAL}; "
                                           f"query '{name}' skipped")
            return None
        flags: dict[str, bool] = {"snapshot": False, "removed": True, "denylist": True}
        for key, default in list(flags.items()):
            if key in spec:
                value = _as_bool(spec[key])
                if value is None:
                    self.warn(f"{where}.{key}", f"expected true or false, got {spec[key]!r}; using {default}")
                else:
                    flags[key] = value
        shard = self._shard(spec, where)
        priority = None
        if "startup_priority" in spec:
            priority = _as_int(spec["startup_priority"])
            if priority is None or priority < 0:
                self.warn(f"{where}.startup_priority", f"expected a non-negative integer, got "
                                                       f"{spec['startup_priority']!r}; ignored")
                priority = None
        return ScheduledQuery(
            name=name, query=sql, interval=interval, pack=pack, query_name=qname,
            snapshot=flags["snapshot"], removed=flags["removed"], denylist=flags["denylist"],
            platform=self._text(spec, "platform", where), version=self._text(spec, "version", where),
            shard=shard, startup_priority=priority,
            description=self._text(spec, "description", where), value=self._text(spec, "value", where),
        )

    def _text(self, spec: dict[str, Any], key: str, where: str) -> str:
        value = spec.get(key, "")
        if isinstance(value, str):
            return value
        self.warn(f"{where}.{key}", f"expected a string, got {json_type(value)}; ignored")
        return ""

    def _shard(self, spec: dict[str, Any], where: str) -> int:
        if "shard" not in spec:
            return 0
        shard = _as_int(spec["shard"])
        if shard is None or not 0 <= shard <= 100:
            self.warn(f"{where}.shard", f"expected an integer 1..100, got {spec['shard']!r}; ignored")
            return 0
        return shard

    def pack(self, name: str, spec: dict[str, Any], where: str, source: str) -> None:
        queries: dict[str, ScheduledQuery] = {}
        raw_queries = spec.get("queries", {})
        if not isinstance(raw_queries, dict):
            self.warn(f"{where}.queries", f"expected an object, got {json_type(raw_queries)}; no queries")
            raw_queries = {}
        for qname, qspec in raw_queries.items():
            query = self.query(name, qname, qspec, f"{where}.queries.{qname}")
            if query is not None:
                queries[qname] = query
        discovery = self._strings(spec.get("discovery", []), f"{where}.discovery")
        pack = Pack(name=name, queries=tuple(queries.values()), discovery=tuple(discovery),
                    platform=self._text(spec, "platform", where), version=self._text(spec, "version", where),
                    shard=self._shard(spec, where), oncall=self._text(spec, "oncall", where), source=source)
        if name in self.config.packs:
            self.warn(where, f"pack '{name}' was already defined by {self.config.packs[name].source}; "
                             "this definition replaces it")
        self.config.packs[name] = pack

    def schedule(self, schedule: dict[str, Any]) -> None:
        main = self.config.packs.get(MAIN_PACK)
        queries = {q.query_name: q for q in main.queries} if main else {}
        for qname, spec in schedule.items():
            query = self.query(MAIN_PACK, qname, spec, f"schedule.{qname}")
            if query is None:
                continue
            if qname in queries:
                self.warn(f"schedule.{qname}", "query already defined by an earlier source; this one replaces it")
            queries[qname] = query
        self.config.packs[MAIN_PACK] = Pack(MAIN_PACK, tuple(queries.values()), source=self.origin)

    def packs(self, packs: dict[str, Any]) -> None:
        for name, value in packs.items():
            where = f"packs.{name}"
            if isinstance(value, dict):
                if name == MAIN_PACK or name == "*":
                    self.warn(where, f"'{name}' cannot name an inline pack; pack skipped")
                    continue
                self.pack(name, value, where, self.origin)
            elif isinstance(value, str):
                self._pack_resource(name, value, where)
            else:
                self.warn(where, f"expected an object or a path, got {json_type(value)}; pack skipped")

    def _pack_resource(self, name: str, value: str, where: str) -> None:
        if self.resolver is None:
            self.warn(where, f"this config plugin cannot read pack '{value}'; pack skipped")
            return
        try:
            found = self.resolver(name, value, self.origin)
        except ConfigError as exc:
            self.config.warnings.append(f"{self.origin}: {exc}; pack skipped; the rest of the config is loaded")
            return
        for text in found:
            self.config.sources[text.key] = text.text
            try:
                data = parse_json(text.text, text.key)
            except ConfigError as exc:
                self.config.warnings.append(f"{exc}; pack '{text.name}' skipped")
                continue
            outer = self.origin
            self.origin = text.key
            try:
                for dup in duplicate_keys(data):
                    self.warn(dup, "key given twice; the first value is used")
                if text.name == MAIN_PACK:
                    self.warn("", "a pack file cannot be named 'main'; pack skipped")
                    continue
                self.pack(text.name, data, f"packs.{text.name}", text.key)
            finally:
                self.origin = outer

    # the other parsers -----------------------------------------------------

    def _strings(self, value: Any, where: str) -> list[str]:
        if not isinstance(value, list):
            self.warn(where, f"expected an array of strings, got {json_type(value)}; ignored")
            return []
        good = []
        for index, item in enumerate(value):
            if isinstance(item, str):
                good.append(item)
            else:
                self.warn(f"{where}[{index}]", f"expected a string, got {json_type(item)}; ignored")
        return good

    def decorators(self, spec: dict[str, Any]) -> None:
        old = self.config.decorators
        load = list(old.load) + self._strings(spec.get("load", []), "decorators.load")
        always = list(old.always) + self._strings(spec.get("always", []), "decorators.always")
        interval = {k: list(v) for k, v in old.interval.items()}
        raw = spec.get("interval", {})
        if not isinstance(raw, dict):
            self.warn("decorators.interval", f"expected an object, got {json_type(raw)}; ignored")
            raw = {}
        for key, queries in raw.items():
            seconds = _as_int(key)
            if seconds is None or seconds <= 0 or seconds % 60:
                self.warn(f"decorators.interval.{key}", "interval must be a positive multiple of 60; ignored")
                continue
            interval.setdefault(seconds, []).extend(self._strings(queries, f"decorators.interval.{key}"))
        for key in spec:
            if key not in ("load", "always", "interval"):
                self.warn(f"decorators.{key}", "unknown decorator kind (expected load, always, interval); ignored")
        self.config.decorators = Decorators(tuple(load), tuple(always), {k: tuple(v) for k, v in interval.items()})

    def categories(self, spec: dict[str, Any], key: str, target: dict[str, list[str]]) -> None:
        for category, paths in spec.items():
            target.setdefault(category, []).extend(self._strings(paths, f"{key}.{category}"))

    def views(self, spec: dict[str, Any]) -> None:
        for name, sql in spec.items():
            if isinstance(sql, str) and sql.strip():
                self.config.views[name] = sql
            else:
                self.warn(f"views.{name}", f"expected a SQL string, got {json_type(sql)}; view skipped")

    def atc(self, spec: dict[str, Any]) -> None:
        for name, table in spec.items():
            where = f"auto_table_construction.{name}"
            if not isinstance(table, dict):
                self.warn(where, f"expected an object, got {json_type(table)}; table skipped")
                continue
            if name in self.builtin_tables:
                self.warn(where, f"'{name}' is a built-in table and cannot be replaced; table skipped")
                continue
            missing = [k for k in ("query", "path") if not isinstance(table.get(k), str) or not table[k]]
            if missing:
                self.warn(where, f"'{missing[0]}' is required and must be a string; table skipped")
                continue
            columns = self._strings(table.get("columns", []), f"{where}.columns")
            if "path" in columns:
                self.warn(f"{where}.columns", "'path' is added automatically and cannot be listed; table skipped")
                continue
            self.config.auto_table_construction[name] = AutoTable(
                name, table["query"], table["path"], tuple(columns), self._text(table, "platform", where))

    def events(self, spec: dict[str, Any]) -> None:
        old = self.config.events
        self.config.events = EventsConfig(*(
            (*getattr(old, key), *self._strings(spec.get(key, []), f"events.{key}"))
            for key in ("disable_subscribers", "enable_subscribers", "environment_variables")
        ))

    def document(self, data: dict[str, Any]) -> None:
        """Apply every parser key except options (already applied) of one source."""
        cfg = self.config
        for key, given in data.items():
            value: Any = given  # isinstance against a type from a dict does not narrow usefully
            if key == "options":
                continue
            if key not in PARSER_KEYS:
                self.warn(key, "unknown top-level key ignored")
                continue
            if not isinstance(given, PARSER_KEYS[key]):
                expected = "an object" if PARSER_KEYS[key] is dict else "an array"
                self.warn(key, f"expected {expected}, got {json_type(value)}; ignored")
                continue
            if key == "schedule":
                self.schedule(value)
            elif key == "packs":
                self.packs(value)
            elif key == "decorators":
                self.decorators(value)
            elif key in ("file_paths", "file_paths_query", "exclude_paths"):
                self.categories(value, key, getattr(cfg, key))
            elif key == "file_accesses":
                cfg.file_accesses.extend(self._strings(value, key))
            elif key == "views":
                self.views(value)
            elif key == "auto_table_construction":
                self.atc(value)
            elif key == "events":
                self.events(value)
            elif key in ("yara", "prometheus_targets", "feature_vectors"):
                getattr(cfg, key).update(value)
            else:
                cfg.other[key] = value

    def finish(self) -> None:
        """Checks that need every source: name clashes and FIM categories."""
        cfg = self.config
        seen: dict[str, str] = {}
        for pack_name, pack in list(cfg.packs.items()):
            kept = []
            for query in pack.queries:
                if query.name in seen:
                    cfg.warnings.append(f"{pack.source}: scheduled name '{query.name}' of pack '{pack_name}' "
                                        f"is already used by pack '{seen[query.name]}'; query skipped")
                    continue
                seen[query.name] = pack_name
                kept.append(query)
            if len(kept) != len(pack.queries):
                cfg.packs[pack_name] = Pack(pack.name, tuple(kept), pack.discovery, pack.platform,
                                            pack.version, pack.shard, pack.oncall, pack.source)
        for key in ("exclude_paths", "file_paths_query"):
            for category in getattr(cfg, key):
                if key == "exclude_paths" and category not in cfg.file_paths:
                    cfg.warnings.append(f"{key}.{category}: no file_paths category of that name; "
                                        "the exclusions have no effect")
        for category in cfg.file_accesses:
            if category not in cfg.file_paths and category not in cfg.file_paths_query:
                cfg.warnings.append(f"file_accesses: category '{category}' is not in file_paths")


def build_config(sources: Sequence[RawSource], flags: FlagValues | None = None, *,
                 resolver: PackResolver | None = None, builtin_tables: Collection[str] = ()) -> Config:
    """Parse and merge fetched sources into a new Config; raises ConfigError."""
    if not sources:
        raise ConfigError("the config plugin returned no sources")
    builder = _Builder(flags if flags is not None else FlagValues(), resolver, builtin_tables)
    documents = [(raw.key, parse_json(raw.text, raw.key)) for raw in sources]
    for raw in sources:
        builder.config.sources[raw.key] = raw.text
    # options of every source first: they change how the rest is read.
    for key, data in documents:
        builder.origin = key
        for dup in duplicate_keys(data):
            builder.warn(dup, "key given twice; the first value is used")
        options = data.get("options")
        if options is None:
            continue
        if isinstance(options, dict):
            builder.options(options)
        else:
            builder.warn("options", f"expected an object, got {json_type(options)}; ignored")
    for key, data in documents:
        builder.origin = key
        builder.document(data)
    builder.origin = ""
    builder.finish()
    builder.config.hash = config_hash(builder.config.sources)
    return builder.config


def load_config(source: ConfigSource, flags: FlagValues | None = None, *,
                builtin_tables: Collection[str] = ()) -> Config:
    """Fetch from ``source`` and build a Config; raises ConfigError, keeping nothing half-applied."""
    return build_config(source.fetch(), flags, resolver=source.resolve_pack, builtin_tables=builtin_tables)
