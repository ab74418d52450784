"""``hostql server prepare-db`` on SQLite, PostgreSQL and MariaDB: schema equals models.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from alembic import command
from dbservers import DbServer, mariadb_server, postgres_server  # noqa: F401  (fixtures)
from sqlalchemy import inspect, select, text

from hostql.server.main import run
from hostql.server.settings import load_settings
from hostql.server.startup import check_migrations
from hostql.server.storage import migrate
from hostql.server.storage.db import Database
from hostql.server.storage.models import Base, EnrollSecret, Host, Query, QueryReport, utcnow


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/sub/dir/server.db"  # prepare-db creates the directory
        return
    server: DbServer = request.getfixturevalue({"postgresql": "postgres_server"}.get(request.param, "mariadb_server"))
    yield server.new_database()


def test_prepare_db_migrates_to_models_and_is_idempotent(empty_db_url: str,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["prepare-db", "--db", empty_db_url]) == 0
    assert f"migrated to revision {migrate.head_revision()}" in capsys.readouterr().out
    database = Database(empty_db_url)
    try:
        status = migrate.status(database)
        assert status.up_to_date and status.current == (migrate.head_revision(),)
        assert migrate.schema_diff(database) == []
        tables = set(inspect(database.engine).get_table_names())
        assert tables == set(Base.metadata.tables) | {"alembic_version"}
        # The schema works: rows with foreign keys and JSON go in and come back.
        with database.session() as session:
            session.add(EnrollSecret(secret="s3cret"))
            session.add(Host(osquery_host_id="h1", node_key="nk", hostname="box", last_enrolled_at=utcnow()))
        with database.session() as session:
            host = session.query(Host).one()
            assert host.hostname == "box" and host.team_id is None
    finally:
        database.dispose()

    assert run(["prepare-db", "--db", empty_db_url]) == 0
    assert f"is up to date (revision {migrate.head_revision()})" in capsys.readouterr().out
    database = Database(empty_db_url)
    try:
        assert migrate.is_up_to_date(database)
        with database.session() as session:
            assert session.query(Host).count() == 1  # data kept by the second run
    finally:
        database.dispose()


def test_unmigrated_database_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/server.db"
    database = Database(url)
    try:
        status = migrate.status(database)
        assert status.current == () and status.pending == ("0001", "0002", "0003") and not status.up_to_date
        settings = load_settings({"db": url, "tls": "false"}, {})
        with pytest.raises(ValueError, match=r"setting db .*: .* is not initialised: run `hostql server prepare-db`"):
            check_migrations(settings, database)
        # Tables made without migrations (create_all) are not "migrated" either.
        database.create_all()
        assert not migrate.is_up_to_date(database)
        with pytest.raises(ValueError, match=r"setting db .*: .* is not initialised"):
            check_migrations(settings, database)
    finally:
        database.dispose()


def test_unknown_revision_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/server.db"
    assert run(["prepare-db", "--db", url]) == 0
    database = Database(url)
    try:
        with database.engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        status = migrate.status(database)
        assert status.unknown == ("9999",) and not status.up_to_date
    finally:
        database.dispose()
    capsys.readouterr()
    assert run(["prepare-db", "--db", url]) == 1
    assert "setting db" in capsys.readouterr().err


def test_downgrade_and_upgrade_again(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path}/server.db")
    try:
        migrate.upgrade(database)
        with database.engine.begin() as connection:
            command.downgrade(migrate.alembic_config(connection), "base")
        assert set(inspect(database.engine).get_table_names()) <= {"alembic_version"}
        migrate.upgrade(database)
        assert migrate.schema_diff(database) == []
    finally:
        database.dispose()


def test_schema_diff_sees_a_missing_column(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path}/server.db")
    try:
        migrate.upgrade(database)
        with database.engine.begin() as connection:
            connection.execute(text("ALTER TABLE hosts DROP COLUMN public_ip"))
        diff = migrate.schema_diff(database)
        assert any(entry[0] == "add_column" and entry[3].name == "public_ip" for entry in diff), diff
    finally:
        database.dispose()


def test_a_deleted_hosts_id_is_never_given_to_the_next_host(empty_db_url: str) -> None:
    assert run(["prepare-db", "--db", empty_db_url]) == 0
    database = Database(empty_db_url)
    try:
        def add(name: str) -> int:
            with database.session() as session:
                host = Host(osquery_host_id=name, node_key=f"key-{name}", hostname=name)
                session.add(host)
                session.flush()
                return host.id

        first = add("first")
        with database.session() as session:
            session.delete(session.get(Host, first))
        assert add("second") > first  # the agent of a deleted host enrolls again as a new id
    finally:
        database.dispose()


def _autoincrement_tables(database: Database) -> set[str]:
    with database.engine.connect() as connection:
        rows = connection.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'table'"))
        return {name for name, sql in rows if "AUTOINCREMENT" in sql}


def test_migrations_and_models_agree_on_sqlite_autoincrement(tmp_path: Path) -> None:
    migrated, created = Database(f"sqlite:///{tmp_path}/m.db"), Database(f"sqlite:///{tmp_path}/c.db")
    try:
        migrate.upgrade(migrated)
        Base.metadata.create_all(created.engine)
        expected = {name for name, table in Base.metadata.tables.items()
                    if [c.name for c in table.primary_key.columns] == ["id"]}
        assert "hosts" in expected and "distributed_query_campaigns" in expected
        assert _autoincrement_tables(migrated) == _autoincrement_tables(created) == expected
    finally:
        migrated.dispose()
        created.dispose()


def test_query_results_become_one_report_per_query_and_host_and_back(empty_db_url: str) -> None:
    """0002 moves ``query_results`` (a row per result row) into ``query_reports`` keeping
    each host's rows in order and the newest receive time; the downgrade splits them again."""
    if empty_db_url.startswith("sqlite:///"):
        Path(empty_db_url.removeprefix("sqlite:///")).parent.mkdir(parents=True)
    database = Database(empty_db_url)
    try:
        with database.engine.begin() as connection:
            command.upgrade(migrate.alembic_config(connection), "0001")
        early, late = datetime(2026, 1, 1, 8, 0), datetime(2026, 1, 2, 9, 30)
        with database.session() as session:  # hosts and queries are as 0001 made them
            session.add_all([Host(id=host_id, osquery_host_id=f"h{host_id}", node_key=f"k{host_id}",
                                  hostname=f"h{host_id}") for host_id in (1, 2)])
            session.add(Query(id=7, name="q", query="SELECT 1"))
        with database.engine.begin() as connection:
            for host_id, data, fetched in ((1, '{"n": "a"}', early), (2, '{"n": "x"}', early),
                                           (1, '{"n": "b"}', late), (1, '{"n": "\u65e5"}', early)):
                connection.execute(text("INSERT INTO query_results (query_id, host_id, data, last_fetched)"
                                        " VALUES (7, :host, :data, :fetched)"),
                                   {"host": host_id, "data": data, "fetched": fetched})
        migrate.upgrade(database)
        assert migrate.schema_diff(database) == []
        with database.session() as session:
            reports = {(r.query_id, r.host_id): r for r in session.scalars(select(QueryReport))}
            assert set(reports) == {(7, 1), (7, 2)}
            first = reports[(7, 1)]
            assert json.loads(first.rows) == [{"n": "a"}, {"n": "b"}, {"n": "\u65e5"}]
            assert first.row_count == 3 and first.last_fetched == late and first.generation == 1
            assert json.loads(reports[(7, 2)].rows) == [{"n": "x"}] and reports[(7, 2)].last_fetched == early
        with database.engine.begin() as connection:
            command.downgrade(migrate.alembic_config(connection), "0001")
        with database.engine.connect() as connection:
            rows = connection.execute(text("SELECT host_id, data FROM query_results ORDER BY id")).all()
        assert [(host, json.loads(data) if isinstance(data, str) else data) for host, data in rows] == [
            (1, {"n": "a"}), (1, {"n": "b"}), (1, {"n": "\u65e5"}), (2, {"n": "x"})]
    finally:
        database.dispose()
