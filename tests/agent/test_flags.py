"""Flags: the table, value parsing, command lines and flagfiles (osquery-reference §1.8, §4, §5)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hostql.agent.flags import (
    FLAG_DEFINITIONS,
    FLAGS,
    FlagError,
    FlagValues,
    default_paths,
    flagfile_words,
    format_value,
    parse_argv,
    parse_flagfile,
    parse_value,
)

# Every flag the reference names, with osquery's default.
REFERENCE_DEFAULTS = [
    ("tls_hostname", ""), ("tls_session_reuse", True), ("tls_session_timeout", 3600), ("tls_accept_gzip", False),
    ("enroll_always", False), ("tls_enroll_max_attempts", 12), ("tls_enroll_max_interval", 600),
    ("config_plugin", "filesystem"), ("config_tls_max_attempts", 3), ("config_refresh", 0),
    ("config_accelerated_refresh", 300), ("logger_plugin", "filesystem"), ("logger_tls_period", 4),
    ("logger_tls_max_lines", 1024), ("logger_tls_max_linesize", 1048576), ("logger_tls_backoff_max", 3600),
    ("logger_tls_compress", False), ("tls_disable_status_log", False), ("buffered_log_max", 1000000),
    ("disable_distributed", True), ("distributed_plugin", "tls"), ("distributed_interval", 60),
    ("distributed_tls_max_attempts", 3), ("distributed_denylist_duration", 86400), ("distributed_loginfo", False),
    ("host_identifier", "hostname"), ("disable_carver", True), ("carver_block_size", 8192),
    ("carver_compression", False), ("carver_expiry", 86400), ("schedule_splay_percent", 10),
    ("schedule_default_interval", 3600), ("schedule_max_drift", 60), ("schedule_epoch", 0),
    ("pack_delimiter", "_"), ("pack_refresh_interval", 3600), ("logger_event_type", True),
    ("logger_snapshot_event_type", False), ("logger_numerics", False), ("logger_min_status", 0),
    ("logger_stderr", True), ("logger_rotate", False), ("logger_rotate_size", 26214400),
    ("logger_rotate_max_files", 25), ("logger_mode", "0640"), ("nullvalue", ""), ("watchdog_level", 0),
    ("watchdog_delay", 60), ("watchdog_forced_shutdown_delay", 4), ("watchdog_max_delay", 600),
    ("disable_watchdog", False), ("enable_extensions_watchdog", False), ("events_optimize", True),
    ("events_enforce_denylist", False), ("enable_file_events", False), ("disable_decorators", False),
    ("decorations_top_level", False), ("config_check", False), ("config_dump", False), ("header", True),
    ("separator", "|"), ("planner", False), ("extensions_timeout", "3"),
]


@pytest.mark.parametrize(("name", "default"), REFERENCE_DEFAULTS)
def test_reference_flags_exist_with_osquery_defaults(name: str, default: object) -> None:
    assert FLAGS[name].default == default
    assert type(FLAGS[name].default) is type(default)


CLI_ONLY = ["tls_hostname", "proxy_hostname", "tls_server_certs", "tls_client_cert", "tls_client_key",
            "tls_session_reuse", "tls_session_timeout", "tls_accept_gzip", "enroll_tls_endpoint",
            "enroll_secret_path", "enroll_secret_env", "enroll_always", "disable_enrollment",
            "disable_reenrollment", "tls_enroll_max_attempts", "tls_enroll_max_interval", "config_plugin",
            "config_tls_endpoint", "config_tls_max_attempts", "config_refresh", "config_accelerated_refresh",
            "logger_plugin", "flagfile", "config_path"]
SETTABLE = ["logger_tls_endpoint", "logger_tls_period", "tls_disable_status_log", "buffered_log_max",
            "disable_distributed", "distributed_interval", "host_identifier", "schedule_splay_percent",
            "pack_delimiter", "logger_event_type", "logger_numerics", "decorations_top_level", "events_expiry"]


@pytest.mark.parametrize("name", CLI_ONLY)
def test_cli_only_markers(name: str) -> None:
    assert FLAGS[name].cli_only


def test_carver_watchdog_extensions_groups_are_cli_only() -> None:
    groups = [f for f in FLAG_DEFINITIONS if f.name.startswith(("carver_", "watchdog_", "extensions_"))]
    assert len(groups) >= 15 and all(f.cli_only for f in groups)


@pytest.mark.parametrize("name", SETTABLE)
def test_config_settable_flags_are_not_cli_only(name: str) -> None:
    assert not FLAGS[name].cli_only and not FLAGS[name].shell_only


def test_table_is_well_formed() -> None:
    names = [f.name for f in FLAG_DEFINITIONS]
    assert len(names) == len(set(names))
    types = {"bool", "string", "int32", "int64", "uint32", "uint64", "double"}
    for flag in FLAG_DEFINITIONS:
        assert flag.type in types, flag.name
        assert flag.description and flag.description[0].isupper(), flag.name
        assert parse_value(flag, format_value(flag.default)) == flag.default, flag.name
        assert not (flag.cli_only and flag.shell_only), flag.name
    assert {f.name for f in FLAG_DEFINITIONS if f.shell_only} >= {"json", "csv", "A", "L", "planner", "header"}


def test_windows_paths_live_under_program_files_hostql() -> None:
    paths = default_paths("win32")
    assert paths["config_path"] == "C:\\Program Files\\hostql\\osquery.conf"
    assert paths["database_path"] == "C:\\Program Files\\hostql\\osquery.db"
    assert default_paths("darwin")["config_path"] == "/var/osquery/osquery.conf"
    assert default_paths("linux")["config_path"] == "/etc/osquery/osquery.conf"
    assert default_paths("linux")["flagfile"] == "/etc/osquery/osquery.flags.default"


@pytest.mark.parametrize(("name", "raw", "expected"), [
    ("verbose", "true", True), ("verbose", "FALSE", False), ("verbose", "1", True), ("verbose", 0, False),
    ("verbose", "", True), ("schedule_splay_percent", "25", 25), ("schedule_splay_percent", 7, 7),
    ("watchdog_level", "-1", -1), ("pack_delimiter", "/", "/"), ("config_path", True, "true"),
])
def test_parse_value(name: str, raw: object, expected: object) -> None:
    assert parse_value(FLAGS[name], raw) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(("name", "raw", "needle"), [
    ("verbose", "maybe", "boolean"), ("schedule_splay_percent", "ten", "integer"),
    ("schedule_splay_percent", "-1", "non-negative"), ("hash_cache_max", str(2**32), "out of range"),
    ("watchdog_level", str(2**31), "out of range"), ("distributed_interval", True, "integer"),
])
def test_bad_values_name_the_flag(name: str, raw: object, needle: str) -> None:
    with pytest.raises(FlagError, match=f"--{name}.*{needle}"):
        parse_value(FLAGS[name], raw)  # type: ignore[arg-type]


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_uint64_round_trips(value: int) -> None:
    flag = FLAGS["read_max"]
    assert parse_value(flag, format_value(value)) == value


def test_flag_values_api_and_aliases() -> None:
    values = FlagValues({"verbose": "true"})
    assert values.get("verbose") is True and not values.is_default("verbose")
    assert values.is_default("utc") and values.get("utc") is True
    values.set("log_result_events", "false")  # osquery's old name for logger_event_type
    assert values.get("logger_event_type") is False and values.changed() == {"verbose": True,
                                                                             "logger_event_type": False}
    copy = values.copy()
    copy.set("verbose", False)
    assert values.get("verbose") is True and copy != values
    with pytest.raises(FlagError, match="--bogus"):
        values.set("bogus", 1)
    with pytest.raises(FlagError, match="--bogus"):
        values.get("bogus")
    assert [f.name for f, _ in values.items()] == [f.name for f in FLAG_DEFINITIONS]


@pytest.mark.parametrize(("argv", "changed", "rest"), [
    (["--verbose"], {"verbose": True}, []),
    (["--noutc"], {"utc": False}, []),
    (["--utc=false", "--utc"], {"utc": True}, []),
    (["-verbose=false"], {"verbose": False}, []),
    (["--config_path", "/x.conf", "SELECT 1"], {"config_path": "/x.conf"}, ["SELECT 1"]),
    (["--config_path=/y"], {"config_path": "/y"}, []),
    (["--verbose", "true"], {"verbose": True}, ["true"]),  # booleans never take the next word
    (["a", "--pack_delimiter", "/", "b"], {"pack_delimiter": "/"}, ["a", "b"]),
    (["--", "--verbose"], {}, ["--verbose"]),
    (["-", "--json"], {"json": True}, ["-"]),
])
def test_parse_argv(argv: list[str], changed: dict[str, object], rest: list[str]) -> None:
    values, left = parse_argv(argv)
    assert values.changed() == changed and left == rest


@pytest.mark.parametrize(("argv", "needle"), [
    (["--frobnicate"], "unknown flag --frobnicate"),
    (["--nofrobnicate"], "unknown flag --nofrobnicate"),
    (["--noconfig_path"], "unknown flag --noconfig_path"),  # --no only negates booleans
    (["--config_path"], "--config_path needs a value"),
    (["--watchdog_level=high"], "--watchdog_level expects an integer"),
    (["--flagfile", "/nonexistent/flags"], "cannot read flagfile /nonexistent/flags"),
])
def test_parse_argv_errors(argv: list[str], needle: str) -> None:
    with pytest.raises(FlagError, match=needle):
        parse_argv(argv)


FLAGFILE = """\
# osquery flags for this host
--config_path=/etc/hostql/a.conf

  --noutc
--logger_path /var/log/hostql
--verbose true
--pack_delimiter=/
"""


def test_flagfile_with_comments_blank_lines_and_noflag(tmp_path: Path) -> None:
    path = tmp_path / "osquery.flags"
    path.write_text(FLAGFILE)
    values = parse_flagfile(path)
    assert values.changed() == {"config_path": "/etc/hostql/a.conf", "utc": False,
                                "logger_path": "/var/log/hostql", "verbose": True, "pack_delimiter": "/"}


def test_flagfile_from_argv_is_read_in_place_and_recursively(tmp_path: Path) -> None:
    inner = tmp_path / "inner.flags"
    inner.write_text("--schedule_splay_percent=20\n--verbose\n")
    outer = tmp_path / "outer.flags"
    outer.write_text(f"--flagfile={inner}\n--verbose=false\n")
    values, rest = parse_argv(["--flagfile", str(outer), "--schedule_splay_percent=30", "q"])
    # Later words win: the inner file's --verbose is undone by the outer file's next line,
    # and the command line after the flagfile beats both.
    assert values.get("verbose") is False and values.get("schedule_splay_percent") == 30 and rest == ["q"]


@pytest.mark.parametrize(("text", "line", "needle"), [
    ("--verbose\n--schedule_splay_percent=lots\n", 2, "--schedule_splay_percent expects an integer, got 'lots'"),
    ("# c\n\n--no_such_flag=1\n", 3, "unknown flag --no_such_flag"),
    ("--verbose\nconfig_path=/x\n", 2, "expected --name=value"),
    ("--utc=sometimes\n", 1, "--utc expects a boolean"),
])
def test_flagfile_errors_name_file_line_and_flag(tmp_path: Path, text: str, line: int, needle: str) -> None:
    path = tmp_path / "bad.flags"
    path.write_text(text)
    with pytest.raises(FlagError) as info:
        parse_argv([f"--flagfile={path}"])
    assert str(info.value).startswith(f"{path}:{line}: ") and needle in str(info.value)


def test_flagfile_cycle_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "loop.flags"
    path.write_text(f"--flagfile={path}\n")
    with pytest.raises(FlagError, match="nested more than"):
        parse_flagfile(path)


def test_default_flagfile_is_used_only_without_flagfile(tmp_path: Path) -> None:
    default = tmp_path / "osquery.flags.default"
    default.write_text("--verbose\n")
    other = tmp_path / "other.flags"
    other.write_text("--utc=false\n")
    values, _ = parse_argv([], default_flagfile=str(default))
    assert values.get("verbose") is True
    values, _ = parse_argv([f"--flagfile={other}"], default_flagfile=str(default))
    assert values.get("verbose") is False and values.get("utc") is False
    values, _ = parse_argv([], default_flagfile=str(tmp_path / "missing"))
    assert values.changed() == {}


@given(st.lists(st.sampled_from(["--verbose", "--noverbose", "--verbose=false", "--verbose=1"]), max_size=8))
def test_last_word_wins(words: list[str]) -> None:
    values, _ = parse_argv(words)
    expected = {"--verbose": True, "--noverbose": False, "--verbose=false": False, "--verbose=1": True}
    assert values.get("verbose") is (expected[words[-1]] if words else False)


def test_flagfile_words_keep_values_with_spaces() -> None:
    words, lines = flagfile_words("--specified_identifier=my host\n\n--host_identifier specified\n")
    assert words == ["--specified_identifier=my host", "--host_identifier=specified"] and lines == [1, 3]
