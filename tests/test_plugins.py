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
