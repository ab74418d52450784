"""Third-party plugins are found through the ``hostql`` entry-point group."""

from __future__ import annotations

from pathlib import Path

from hostql.plugins import entry_point_modules


def test_entry_points_are_read_from_dist_info(tmp_path: Path) -> None:
    dist = tmp_path / "hostql_extra-1.0.dist-info"
    dist.mkdir()
    (dist / "entry_points.txt").write_text(
        "[console_scripts]\nextra = extra.cli:main\n\n[hostql]\nextra_tables = extra.tables\nMixed = extra.mixed:x\n"
    )
    other = tmp_path / "unrelated-2.0.dist-info"
    other.mkdir()
    (other / "entry_points.txt").write_text("[console_scripts]\nu = u:main\n")
    assert entry_point_modules(paths=[str(tmp_path)]) == {"extra_tables": "extra.tables", "Mixed": "extra.mixed"}


def test_missing_or_broken_paths_are_ignored(tmp_path: Path) -> None:
    broken = tmp_path / "broken-1.0.dist-info"
    broken.mkdir()
    (broken / "entry_points.txt").write_text("[hostql\nnot ini")
    assert entry_point_modules(paths=[str(tmp_path / "missing"), str(tmp_path)]) == {}


def test_plugin_manager_and_direct_calls_give_the_same_tables() -> None:
    from hostql import plugins

    direct = [spec.name for spec in plugins.collect_tables()]
    manager = plugins.plugin_manager()
    try:
        through_pluggy = [spec.name for spec in plugins.collect_tables()]
        assert through_pluggy == direct
        assert manager.get_plugin("hostql.tables.builtin") is not None
    finally:
        plugins.plugin_manager.cache_clear()


def test_a_third_party_plugin_adds_a_table(tmp_path: Path) -> None:
    import sys

    from hostql import plugins
    from hostql.sql.connection import Connection
    from hostql.tables import registry

    (tmp_path / "extra_plugin.py").write_text(
        "from hostql.tables.spec import TEXT, Column, table\n"
        "def gen_greetings(ctx):\n"
        "    yield ('hello',)\n"
        "def register_tables():\n"
        "    return [table('greetings', 'Greetings.', [Column('word', TEXT, 'A word')],\n"
        "                  portable='extra_plugin:gen_greetings')]\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        plugins.plugin_manager.cache_clear()
        registry.all_specs.cache_clear()
        manager = plugins.plugin_manager()
        manager.register(__import__("extra_plugin"), "extra_plugin")
        with Connection() as db:
            assert db.query("SELECT word FROM greetings") == [{"word": "hello"}]
            assert db.query("SELECT count(*) AS n FROM processes")[0]["n"] > 0
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("extra_plugin", None)
        plugins.plugin_manager.cache_clear()
        registry.all_specs.cache_clear()
