"""Config sources: preprocessing, limits, the filesystem plugin, hashing (osquery-reference §2.1)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hostql.agent.config_sources import (
    MAX_CONFIG_SIZE,
    ConfigError,
    FilesystemSource,
    config_dump,
    config_hash,
    duplicate_keys,
    parse_json,
    preprocess,
)
from osquery_data import DATA, OSQUERY_PACKS

EXAMPLE_CONF = Path(__file__).resolve().parent.parent / "data" / "osquery" / "osquery.example.conf"
PACK_FILES = sorted(OSQUERY_PACKS.glob("*.conf"))


@pytest.mark.parametrize(("text", "expected"), [
    ('{"a": 1}', '{"a": 1}'),
    ('{\n# comment\n"a": 1\n}', '{\n"a": 1\n}'),
    ('{\n   // comment\n"a": 1}', '{\n"a": 1}'),
    ('{"a": "x \\\ny"}', '{"a": "x y"}'),
    # osquery deletes backslash-newlines first, so a comment ending in one eats the next line.
    ('{\n// c \\\n"b": 2,\n"a": 1}', '{\n"a": 1}'),
    ('{"url": "http://x//y"}', '{"url": "http://x//y"}'),
])
def test_preprocess(text: str, expected: str) -> None:
    assert preprocess(text).text == expected


def test_pack_files_exist() -> None:
    assert len(PACK_FILES) == 10


@pytest.mark.parametrize("path", PACK_FILES, ids=lambda p: p.stem)
def test_every_shipped_pack_parses(path: Path) -> None:
    data = parse_json(path.read_text(), str(path))
    assert isinstance(data["queries"], dict) and data["queries"]
    assert duplicate_keys(data) == []


def test_osx_attacks_needs_line_continuations() -> None:
    text = (OSQUERY_PACKS / "osx-attacks.conf").read_text()
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    query = parse_json(text, "osx-attacks.conf")["queries"]["WireLurker"]["query"]
    assert query.startswith("select * from launchd where") and "\n" not in query


def test_example_conf_parses() -> None:
    assert EXAMPLE_CONF.is_file(), "the shared osquery.example.conf is missing"
    data = parse_json(EXAMPLE_CONF.read_text(), str(EXAMPLE_CONF))
    assert data["options"] == {} and data["packs"] == {}
    # The file holds 255 numbers (the reference's "256" is off by one).
    assert len(data["feature_vectors"]["character_frequencies"]) == 255


@pytest.mark.parametrize(("text", "line", "col"), [
    ('{\n  "a": 1\n  "b": 2\n}', 3, 3),  # missing comma
    ('{\n  "a": 1,\n}', 3, 1),  # trailing comma is not allowed
    ('{\n// a comment\n// another\n  "a": tru\n}', 4, 8),  # lines counted in the original file
    ('{"q": "a \\\nb" "x": 1}', 2, 4),  # on the second half of a continued line
    ('{"q": "a \\\nb",\n  "x": }', 3, 8),  # on the line after a continuation
    ('{\n  "n": NaN\n}', 2, 8),
])
def test_bad_json_reports_original_line_and_column(text: str, line: int, col: int) -> None:
    with pytest.raises(ConfigError) as info:
        parse_json(text, "/etc/osquery/osquery.conf")
    message = str(info.value)
    assert message.startswith(f"/etc/osquery/osquery.conf:{line}:{col}: invalid JSON"), message


@pytest.mark.parametrize(("text", "needle"), [
    ("[1, 2]", "top level must be a JSON object, got an array"),
    ('"x"', "top level must be a JSON object, got a string"),
    ("# only a comment\n", "config is empty"),
])
def test_root_must_be_an_object(text: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        parse_json(text, "c.conf")


def nested(depth: int) -> str:
    # depth counts containers, the root object included
    return '{"a":' * depth + "1" + "}" * depth


def test_depth_limit() -> None:
    assert parse_json(nested(32), "ok.conf")
    with pytest.raises(ConfigError, match=r"deep\.conf:1:\d+: JSON nested deeper than 32 levels"):
        parse_json(nested(33), "deep.conf")
    with pytest.raises(ConfigError, match="nested deeper than 32"):
        parse_json("{" + '"a":[' * 100000 + "]" * 100000 + "}", "hostile.conf")
    # brackets inside strings are not nesting
    assert parse_json('{"a": "' + "[" * 100 + '"}', "s.conf")["a"] == "[" * 100


def test_size_limit_counts_text_after_comments() -> None:
    filler = "x" * (MAX_CONFIG_SIZE - 20)
    assert parse_json('{"a": "' + filler + '"}', "fits.conf")
    comment = "// " + "c" * 1000 + "\n"
    assert parse_json(comment * 5000 + '{"a": 1}', "comments.conf") == {"a": 1}
    with pytest.raises(ConfigError, match=r"big\.conf: config is \d+ bytes .*limit is 4194304 bytes \(4 MiB\)"):
        parse_json('{"a": "' + "x" * MAX_CONFIG_SIZE + '"}', "big.conf")


def test_oversized_file_is_refused_by_the_plugin(tmp_path: Path) -> None:
    path = tmp_path / "osquery.conf"
    path.write_text('{"a": "' + "x" * MAX_CONFIG_SIZE + '"}')
    raw = FilesystemSource(path).fetch()
    with pytest.raises(ConfigError, match="limit is 4194304"):
        parse_json(raw[0].text, raw[0].key)


def test_duplicate_keys_keep_the_first_and_are_listed() -> None:
    data = parse_json('{"schedule": {"a": {"query": "1"}, "a": {"query": "2"}}, "x": [{"k": 1, "k": 2}]}', "d")
    assert data["schedule"]["a"]["query"] == "1"
    assert duplicate_keys(data) == ["schedule.a", "x[0].k"]


def test_filesystem_plugin_reads_main_then_sorted_fragments(tmp_path: Path) -> None:
    main = tmp_path / "osquery.conf"
    main.write_text("{}")
    frag = tmp_path / "osquery.conf.d"
    frag.mkdir()
    for name in ("20-b.conf", "10-a.conf", "30-c.conf", "ignored.json"):
        (frag / name).write_text(f'{{"name": "{name}"}}')
    keys = [raw.key for raw in FilesystemSource(main).fetch()]
    assert keys == [str(main), str(frag / "10-a.conf"), str(frag / "20-b.conf"), str(frag / "30-c.conf")]


def test_filesystem_plugin_requires_the_main_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"cannot read config file {tmp_path}/none.conf: No such file"):
        FilesystemSource(tmp_path / "none.conf").fetch()


def test_not_utf8_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "osquery.conf"
    path.write_bytes(b'{"a": "\xff"}')
    with pytest.raises(ConfigError, match=r"not valid UTF-8 \(byte offset 7\)"):
        FilesystemSource(path).fetch()
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}')  # a BOM is tolerated
    assert parse_json(FilesystemSource(path).fetch()[0].text, "bom") == {"a": 1}


def test_resolve_pack_paths_and_globs(tmp_path: Path) -> None:
    (tmp_path / "packs").mkdir()
    for name in ("one", "two"):
        (tmp_path / "packs" / f"{name}.conf").write_text('{"queries": {}}')
    source = FilesystemSource(tmp_path / "osquery.conf")
    origin = str(tmp_path / "osquery.conf")
    assert [p.name for p in source.resolve_pack("*", str(tmp_path / "packs" / "*.conf"), origin)] == ["one", "two"]
    # relative paths are taken from the naming file's directory
    assert source.resolve_pack("mine", "packs/two.conf", origin)[0].key == str(tmp_path / "packs" / "two.conf")
    with pytest.raises(ConfigError, match=f"packs.gone: pack file {tmp_path}/nope.conf does not exist"):
        source.resolve_pack("gone", str(tmp_path / "nope.conf"), origin)
    with pytest.raises(ConfigError, match="no pack files match"):
        source.resolve_pack("*", str(tmp_path / "none" / "*.conf"), origin)


def test_config_hash_is_sha1_of_sorted_source_sha1s() -> None:
    sources = {"b": "{}", "a": '{"x": 1}'}
    a, b = hashlib.sha1(b'{"x": 1}').hexdigest(), hashlib.sha1(b"{}").hexdigest()
    assert config_hash(sources) == hashlib.sha1((a + b).encode()).hexdigest()


@given(st.dictionaries(st.text(min_size=1, max_size=5), st.text(max_size=20), min_size=1, max_size=4),
       st.data())
def test_config_hash_changes_with_any_source_and_is_stable(sources: dict[str, str], data: st.DataObject) -> None:
    assert config_hash(sources) == config_hash(dict(sources))
    key = data.draw(st.sampled_from(sorted(sources)))
    changed = dict(sources)
    changed[key] = sources[key] + "!"
    assert config_hash(changed) != config_hash(sources)


def test_config_dump_gives_each_source(tmp_path: Path) -> None:
    main = tmp_path / "osquery.conf"
    main.write_text('{\n// note\n"options": {"verbose": true}}')
    (tmp_path / "osquery.conf.d").mkdir()
    (tmp_path / "osquery.conf.d" / "x.conf").write_text('{"views": {}}')
    assert config_dump(FilesystemSource(main)) == {
        str(main): {"options": {"verbose": True}},
        str(tmp_path / "osquery.conf.d" / "x.conf"): {"views": {}},
    }


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(),
                    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=4), kids, max_size=3),
                    max_leaves=10))
def test_parse_json_agrees_with_json_for_plain_documents(value: object) -> None:
    document = {"v": value}
    text = json.dumps(document, indent=1)
    assert parse_json(text, "h") == document


def test_seed_configs_parse_unchanged() -> None:
    for name in ("agent-linux.conf", "agent-windows.conf"):
        data = parse_json((DATA / name).read_text(), name)
        assert data["schedule"]["system_info"]["interval"] == 3600
