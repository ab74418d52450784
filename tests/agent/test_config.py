"""The Config model: options, schedule, packs, decorators, merging, validation (osquery-reference §2)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from hostql.agent.config import (
    MAIN_PACK,
    Config,
    ConfigError,
    build_config,
    load_config,
    machine_shard,
    platform_matches,
    shard_matches,
    version_at_least,
)
from hostql.agent.config_sources import FilesystemSource, RawSource
from hostql.agent.flags import FlagValues
from osquery_data import DATA, OSQUERY_PACKS

EXAMPLE_CONF = Path(__file__).resolve().parent.parent / "data" / "osquery" / "osquery.example.conf"
PACK_QUERY_COUNTS = {
    "hardware-monitoring": 17, "incident-response": 35, "it-compliance": 32, "osquery-monitoring": 3,
    "ossec-rootkit": 60, "osx-attacks": 74, "unwanted-chrome-extensions": 14, "vuln-management": 18,
    "windows-attacks": 14, "windows-hardening": 39,
}


def write_conf(path: Path, data: dict[str, Any] | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data, indent=2))
    return path


def load(tmp_path: Path, data: dict[str, Any] | str, flags: FlagValues | None = None, **kw: Any) -> Config:
    return load_config(FilesystemSource(write_conf(tmp_path / "osquery.conf", data)), flags, **kw)


def warned(config: Config, *needles: str) -> bool:
    return any(all(n in w for n in needles) for w in config.warnings)


# --- the seed configs -------------------------------------------------------


def test_linux_seed_loads_unchanged() -> None:
    path = DATA / "agent-linux.conf"
    config = load_config(FilesystemSource(path))
    flags = config.flags
    assert flags.get("schedule_splay_percent") == 10 and flags.get("utc") is True
    assert flags.get("logger_event_type") is True  # from the old name log_result_events
    assert flags.get("logger_path") == "/var/log/osquery" and flags.get("disable_logging") is False
    assert flags.get("logger_tls_endpoint") == "/api/v1/osquery/log"
    assert {name: (q.query, q.interval) for name, q in config.schedule.items()} == {
        "system_info": ("SELECT hostname, cpu_brand, physical_memory FROM system_info;", 3600),
        "processes": ("SELECT * FROM processes;", 60),
    }
    assert config.decorators.load[0] == "SELECT uuid AS host_uuid FROM system_info;"
    assert len(config.decorators.load) == 2
    missing = [w for w in config.warnings if "osquery-monitoring" in w]
    assert missing == [f"{path}: packs.osquery-monitoring: pack file /usr/share/osquery/packs/osquery-monitoring.conf"
                       " does not exist; pack skipped; the rest of the config is loaded"]
    assert set(config.packs) == {MAIN_PACK}
    assert config.hash and config.sources == {str(path): path.read_text()}


CLI_ONLY_IN_SEED = ["config_plugin", "logger_plugin", "tls_hostname", "tls_server_certs", "enroll_tls_endpoint",
                    "enroll_secret_path", "config_tls_endpoint", "config_refresh"]


@pytest.mark.parametrize("seed", ["agent-linux.conf", "agent-windows.conf"])
def test_seed_cli_only_options_are_refused_with_a_warning(seed: str) -> None:
    config = load_config(FilesystemSource(DATA / seed))
    for name in CLI_ONLY_IN_SEED:
        assert warned(config, f"options.{name}", "command-line-only"), name
        assert config.flags.is_default(name) and name not in config.options
    assert config.flags.get("config_plugin") == "filesystem" and config.flags.get("tls_hostname") == ""


def test_windows_seed_loads_unchanged() -> None:
    config = load_config(FilesystemSource(DATA / "agent-windows.conf"))
    assert list(config.schedule) == ["system_info"] and config.schedule["system_info"].interval == 3600
    assert config.decorators.load[0] == "SELECT uuid AS host_uuid FROM system_info;"
    assert config.flags.get("utc") is True
    assert not warned(config, "unknown")


def test_example_conf_loads_without_warnings() -> None:
    assert EXAMPLE_CONF.is_file(), "the shared osquery.example.conf is missing"
    config = load_config(FilesystemSource(EXAMPLE_CONF))
    assert config.warnings == [] and list(config.schedule) == ["system_info"]
    assert len(config.feature_vectors["character_frequencies"]) == 255


# --- packs ------------------------------------------------------------------


def shipped_packs(tmp_path: Path, flags: FlagValues | None = None, **extra: Any) -> Config:
    shutil.copytree(OSQUERY_PACKS, tmp_path / "packs")
    return load(tmp_path, {"packs": {"*": str(tmp_path / "packs" / "*.conf")}, **extra}, flags)


def test_every_shipped_pack_loads_through_a_glob(tmp_path: Path) -> None:
    config = shipped_packs(tmp_path)
    assert config.warnings == []
    assert {name: len(p.queries) for name, p in config.packs.items()} == PACK_QUERY_COUNTS
    names = {q.name for q in config.all_queries()}
    assert "pack_incident-response_crontab" in names and "pack_osx-attacks_WireLurker" in names
    assert config.packs["ossec-rootkit"].platform == "linux" and config.packs["ossec-rootkit"].version == "1.4.5"
    # pack files count towards the hash: each is a source
    assert len(config.sources) == 11


def test_pack_delimiter_from_options(tmp_path: Path) -> None:
    config = shipped_packs(tmp_path, options={"pack_delimiter": "/"})
    assert "pack/incident-response/crontab" in {q.name for q in config.all_queries()}


def test_pack_delimiter_from_flags(tmp_path: Path) -> None:
    config = shipped_packs(tmp_path, FlagValues({"pack_delimiter": ":"}))
    crontab = next(q for q in config.all_queries() if q.query_name == "crontab")
    assert crontab.name == "pack:incident-response:crontab" and crontab.pack == "incident-response"


@pytest.mark.parametrize(("platform", "present", "absent"), [
    ("linux", "pack_ossec-rootkit_", "pack_windows-attacks_"),
    ("darwin", "pack_osx-attacks_", "pack_ossec-rootkit_"),
    ("windows", "pack_windows-hardening_", "pack_osx-attacks_"),
])
def test_runnable_queries_apply_pack_platforms(tmp_path: Path, platform: str, present: str, absent: str) -> None:
    names = [q.name for q in shipped_packs(tmp_path).runnable_queries(platform=platform, shard=0)]
    assert any(n.startswith(present) for n in names) and not any(n.startswith(absent) for n in names)


def test_inline_pack_with_discovery_shard_and_filters(tmp_path: Path) -> None:
    config = load(tmp_path, {"packs": {"web": {
        "discovery": ["SELECT 1 FROM processes WHERE name = 'nginx'"], "platform": "posix", "shard": 50,
        "oncall": "web-team",
        "queries": {"a": {"query": "SELECT 1", "interval": 60, "snapshot": True, "removed": "false"},
                    "b": {"query": "SELECT 2", "interval": "120", "version": "99.0", "startup_priority": 3}}}}})
    pack = config.packs["web"]
    assert pack.discovery == ("SELECT 1 FROM processes WHERE name = 'nginx'",) and pack.oncall == "web-team"
    a, b = pack.queries
    assert (a.name, a.snapshot, a.removed, a.interval) == ("pack_web_a", True, False, 60)
    assert (b.interval, b.startup_priority) == (120, 3)
    assert [q.name for q in config.runnable_queries("linux", "5.23.0", shard=20)] == ["pack_web_a"]
    assert config.runnable_queries("linux", "99.1", shard=51) == []  # machine shard above the pack's
    assert config.runnable_queries("windows", "99.1", shard=1) == []


def test_duplicate_query_in_a_pack_keeps_the_first(tmp_path: Path) -> None:
    text = '{"schedule": {"q": {"query": "SELECT 1", "interval": 10}, "q": {"query": "SELECT 2", "interval": 10}}}'
    config = load(tmp_path, text)
    assert config.schedule["q"].query == "SELECT 1" and warned(config, "schedule.q", "given twice")


def test_bad_pack_file_is_skipped_and_the_rest_loads(tmp_path: Path) -> None:
    write_conf(tmp_path / "bad.conf", '{"queries": {')
    config = load(tmp_path, {"packs": {"bad": str(tmp_path / "bad.conf")},
                             "schedule": {"ok": {"query": "SELECT 1", "interval": 5}}})
    assert list(config.schedule) == ["ok"] and "bad" not in config.packs
    assert warned(config, f"{tmp_path}/bad.conf:1:", "invalid JSON", "pack 'bad' skipped")


# --- schedule validation ----------------------------------------------------


@pytest.mark.parametrize(("interval", "kept"), [
    (0, False), (700000, False), (-5, False), (1, True), (604800, True), ("60", True), ("soon", False),
    (604801, False), (True, False), (1.5, False),
])
def test_interval_range(tmp_path: Path, interval: object, kept: bool) -> None:
    config = load(tmp_path, {"schedule": {"my_query": {"query": "SELECT 1", "interval": interval}}})
    assert ("my_query" in config.schedule) is kept
    if not kept:
        assert warned(config, "schedule.my_query.interval", "'my_query' skipped")


def test_interval_warning_text(tmp_path: Path) -> None:
    config = load(tmp_path, {"schedule": {"processes": {"query": "SELECT 1", "interval": 0}}})
    assert config.warnings == [f"{tmp_path}/osquery.conf: schedule.processes.interval: 0 is outside 1..604800; "
                               "query 'processes' skipped"]


def test_missing_interval_uses_schedule_default_interval(tmp_path: Path) -> None:
    config = load(tmp_path, {"schedule": {"a": {"query": "SELECT 1"}}})
    assert config.schedule["a"].interval == 3600
    config = load(tmp_path, {"options": {"schedule_default_interval": 900}, "schedule": {"a": {"query": "SELECT 1"}}})
    assert config.schedule["a"].interval == 900


@pytest.mark.parametrize(("name", "reserved"), [
    ("query.x", True), ("cache.processes", True), ("config_views.v", True), ("myepoch", True),
    ("hits_counter", True), ("epoch_start", False), ("counters", False), ("processes", False),
])
def test_reserved_query_names(tmp_path: Path, name: str, reserved: bool) -> None:
    config = load(tmp_path, {"schedule": {name: {"query": "SELECT 1", "interval": 60}}})
    assert (name in config.schedule) is not reserved
    assert warned(config, f"schedule.{name}", "reserved") is reserved


@pytest.mark.parametrize(("spec", "where"), [
    ("SELECT 1", "expected an object, got a string"),
    ({"interval": 10}, "schedule.q.query: missing"),
    ({"query": 5}, "schedule.q.query: missing or not a string"),
])
def test_malformed_queries_are_skipped(tmp_path: Path, spec: object, where: str) -> None:
    config = load(tmp_path, {"schedule": {"q": spec, "good": {"query": "SELECT 1", "interval": 1}}})
    assert list(config.schedule) == ["good"] and warned(config, where)


def test_bad_query_fields_warn_and_use_defaults(tmp_path: Path) -> None:
    config = load(tmp_path, {"schedule": {"q": {"query": "SELECT 1", "interval": 9, "snapshot": "sometimes",
                                                "shard": 400, "platform": 7}}})
    q = config.schedule["q"]
    assert (q.snapshot, q.shard, q.platform) == (False, 0, "")
    assert warned(config, "schedule.q.snapshot") and warned(config, "schedule.q.shard")
    assert warned(config, "schedule.q.platform")


# --- options ----------------------------------------------------------------


def test_options_override_command_line_flags(tmp_path: Path) -> None:
    cli = FlagValues({"verbose": True, "schedule_splay_percent": 5})
    config = load(tmp_path, {"options": {"schedule_splay_percent": "20", "custom_team": "blue",
                                         "custom_n": 3, "no_such_option": 1, "verbose": "maybe",
                                         "distributed_interval": None}}, cli)
    assert config.flags.get("schedule_splay_percent") == 20 and cli.get("schedule_splay_percent") == 5
    assert config.flags.get("verbose") is True  # the bad value kept the flag as it was
    assert config.custom_options == {"custom_team": "blue", "custom_n": "3"}
    assert warned(config, "options.no_such_option", "unknown option")
    assert warned(config, "options.verbose", "--verbose expects a boolean")
    assert warned(config, "options.distributed_interval", "null")
    assert not warned(config, "custom_team")


def test_object_option_values_are_stringified(tmp_path: Path) -> None:
    config = load(tmp_path, {"options": {"disable_tables": ["a", "b"]}})
    assert config.flags.get("disable_tables") == '["a", "b"]'


# --- sources and merging ----------------------------------------------------


def fragments(tmp_path: Path) -> Path:
    main = write_conf(tmp_path / "osquery.conf", {
        "options": {"schedule_splay_percent": 1, "logger_numerics": True},
        "schedule": {"a": {"query": "SELECT 'main'", "interval": 60}},
        "decorators": {"load": ["SELECT 1 AS one"]}})
    write_conf(tmp_path / "osquery.conf.d" / "20-second.conf", {
        "options": {"schedule_splay_percent": 20},
        "schedule": {"a": {"query": "SELECT 'second'", "interval": 60}},
        "decorators": {"load": ["SELECT 2 AS two"]}})
    write_conf(tmp_path / "osquery.conf.d" / "10-first.conf", {
        "options": {"schedule_splay_percent": 10},
        "schedule": {"a": {"query": "SELECT 'first'", "interval": 60}, "b": {"query": "SELECT 'b'"}},
        "file_paths": {"etc": ["/etc/%%"]}})
    return main


def test_fragments_merge_in_sorted_order(tmp_path: Path) -> None:
    config = load_config(FilesystemSource(fragments(tmp_path)))
    assert config.flags.get("schedule_splay_percent") == 20 and config.flags.get("logger_numerics") is True
    assert config.schedule["a"].query == "SELECT 'second'" and config.schedule["b"].query == "SELECT 'b'"
    assert config.decorators.load == ("SELECT 1 AS one", "SELECT 2 AS two")
    assert config.file_paths == {"etc": ["/etc/%%"]}
    assert list(config.sources) == [str(tmp_path / "osquery.conf"), str(tmp_path / "osquery.conf.d/10-first.conf"),
                                    str(tmp_path / "osquery.conf.d/20-second.conf")]
    assert warned(config, "10-first.conf: schedule.a", "replaces")


def test_options_apply_before_any_schedule(tmp_path: Path) -> None:
    # A fragment's pack_delimiter holds for the main file's packs too.
    main = write_conf(tmp_path / "osquery.conf", {"packs": {"p": {"queries": {"q": {"query": "SELECT 1"}}}}})
    write_conf(tmp_path / "osquery.conf.d" / "x.conf", {"options": {"pack_delimiter": "-"}})
    config = load_config(FilesystemSource(main))
    assert [q.name for q in config.all_queries()] == ["pack-p-q"]


def test_config_hash_tracks_every_source(tmp_path: Path) -> None:
    main = fragments(tmp_path)
    pack = write_conf(tmp_path / "p.conf", {"queries": {"q": {"query": "SELECT 1", "interval": 60}}})
    doc = json.loads(main.read_text())
    doc["packs"] = {"p": str(pack)}
    write_conf(main, doc)
    source = FilesystemSource(main)
    first = load_config(source).hash
    assert load_config(source).hash == first
    hashes = {first}
    for path in (main, tmp_path / "osquery.conf.d" / "10-first.conf", pack):
        path.write_text(path.read_text() + "\n")
        hashes.add(load_config(source).hash)
    assert len(hashes) == 4


@pytest.mark.parametrize(("text", "needle"), [
    ('{"schedule": {', "osquery.conf.d/bad.conf:1:15: invalid JSON"),
    ("[]", "bad.conf: the top level must be a JSON object"),
])
def test_a_broken_fragment_fails_the_load(tmp_path: Path, text: str, needle: str) -> None:
    main = write_conf(tmp_path / "osquery.conf", {})
    write_conf(tmp_path / "osquery.conf.d" / "bad.conf", text)
    with pytest.raises(ConfigError, match=needle):
        load_config(FilesystemSource(main))


def test_string_packs_need_a_resolving_plugin() -> None:
    config = build_config([RawSource("tls_plugin", '{"packs": {"x": "/p.conf"}}')])
    assert warned(config, "tls_plugin: packs.x", "cannot read pack")
    with pytest.raises(ConfigError, match="no sources"):
        build_config([])


# --- other top-level keys ---------------------------------------------------


def test_top_level_key_types_and_unknown_keys(tmp_path: Path) -> None:
    config = load(tmp_path, {"schedule": [], "views": "x", "file_accesses": {}, "schedul": {}, "kafka_topics": {}})
    assert warned(config, "schedule: expected an object, got an array")
    assert warned(config, "views: expected an object, got a string")
    assert warned(config, "file_accesses: expected an array, got an object")
    assert warned(config, "schedul: unknown top-level key")
    assert config.other == {"kafka_topics": {}}


def test_decorators(tmp_path: Path) -> None:
    config = load(tmp_path, {"decorators": {"always": ["SELECT 1 AS a"], "interval": {
        "60": ["SELECT 2 AS b"], "3600": ["SELECT 3 AS c"], "90": ["SELECT 4"], "x": []}, "sometimes": []}})
    assert config.decorators.always == ("SELECT 1 AS a",)
    assert config.decorators.interval == {60: ("SELECT 2 AS b",), 3600: ("SELECT 3 AS c",)}
    assert warned(config, "decorators.interval.90", "multiple of 60")
    assert warned(config, "decorators.interval.x") and warned(config, "decorators.sometimes")


def test_views_atc_events_fim(tmp_path: Path) -> None:
    config = load(tmp_path, {
        "views": {"v": "SELECT 1", "bad": 3},
        "auto_table_construction": {
            "chrome_history": {"query": "SELECT url FROM urls", "path": "/home/%/History", "columns": ["url"]},
            "with_path": {"query": "SELECT 1", "path": "/x", "columns": ["path"]},
            "no_path": {"query": "SELECT 1", "columns": []},
            "processes": {"query": "SELECT 1", "path": "/x", "columns": []}},
        "events": {"disable_subscribers": ["yara_events"]},
        "file_paths": {"homes": ["/home/%/.ssh/%%"]}, "exclude_paths": {"homes": ["/home/x/%%"], "gone": []},
        "file_accesses": ["homes"]}, builtin_tables={"processes"})
    assert config.views == {"v": "SELECT 1"} and warned(config, "views.bad")
    assert list(config.auto_table_construction) == ["chrome_history"]
    assert config.auto_table_construction["chrome_history"].columns == ("url",)
    assert warned(config, "auto_table_construction.with_path.columns", "'path' is added automatically")
    assert warned(config, "auto_table_construction.no_path", "'path' is required")
    assert warned(config, "auto_table_construction.processes", "built-in")
    assert config.events.disable_subscribers == ("yara_events",)
    assert config.file_accesses == ["homes"] and warned(config, "exclude_paths.gone")


# --- filters ----------------------------------------------------------------


@pytest.mark.parametrize(("spec", "host", "expected"), [
    ("", "linux", True), ("any", "windows", True), ("all", "darwin", True), ("linux", "linux", True),
    ("ubuntu", "linux", True), ("centos", "linux", True), ("posix", "linux", True), ("posix", "darwin", True),
    ("posix", "windows", False), ("darwin", "linux", False), ("windows,darwin", "darwin", True),
    ("windows,darwin", "linux", False), ("windows", "windows", True), ("linux", "win32", False),
])
def test_platform_matches(spec: str, host: str, expected: bool) -> None:
    assert platform_matches(spec, host) is expected


@pytest.mark.parametrize(("required", "current", "expected"), [
    ("", "5.23.0", True), ("1.4.5", "5.23.0", True), ("5.23.0", "5.23.0", True), ("5.23", "5.23.0", True),
    ("5.23.1", "5.23.0", False), ("10.0", "5.23.0", False), ("5.9.0", "5.10.0", True), ("6", "5.99", False),
])
def test_version_at_least(required: str, current: str, expected: bool) -> None:
    assert version_at_least(required, current) is expected


@pytest.mark.parametrize(("hostname", "shard"), [("localhost", 20), ("web-01", 77), ("a", 52)])
def test_machine_shard(hostname: str, shard: int) -> None:
    # first SHA-1 byte of the hostname (0x33, 0xc6, 0x86) * 100 / 255
    assert machine_shard(hostname) == shard


@pytest.mark.parametrize(("shard", "machine", "expected"), [
    (0, 100, True), (50, 50, True), (50, 51, False), (100, 100, True), (1, 0, True),
])
def test_shard_matches(shard: int, machine: int, expected: bool) -> None:
    assert shard_matches(shard, machine) is expected
