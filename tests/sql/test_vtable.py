"""The generic virtual table follows osquery's planner rules."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from hostql.sql.connection import Connection, QueryError
from hostql.sql.context import Op, QueryContext
from hostql.sql.vtable import TableError, table_schema_sql
from hostql.tables.spec import BIGINT, DOUBLE, INTEGER, LINUX, TEXT, Column, TableSpec, table

# Every call of a test generator is recorded here so tests can see what the
# engine handed over.
CALLS: list[QueryContext] = []

NUMBERS = [(i, f"n{i}", i * 1.5, i % 2) for i in range(1, 11)]


def gen_numbers(ctx: QueryContext) -> Iterator[tuple[Any, ...]]:
    CALLS.append(ctx)
    wanted = ctx.equals("id")
    for row in NUMBERS:
        if wanted and row[0] not in wanted:
            continue
        yield row


def gen_paths(ctx: QueryContext) -> Iterator[dict[str, Any]]:
    CALLS.append(ctx)
    for path in ctx.equals("path"):
        yield {"path": path, "size": len(path)}
    for pattern in ctx.values("path", Op.LIKE):
        yield {"path": pattern.replace("%", "x"), "size": -1}
    for directory in ctx.equals("directory"):
        yield {"path": directory + "/a", "directory": directory, "size": 1}


def gen_untyped(ctx: QueryContext) -> Iterator[tuple[Any, ...]]:
    yield ("0x10", "010", "", 7, "2.5")
    yield ("12", "x", "-3", "abc", "nope")


def gen_broken(ctx: QueryContext) -> Iterator[tuple[Any, ...]]:
    yield (1,)
    raise TableError("broken on purpose")


def gen_flaky(ctx: QueryContext) -> Iterator[tuple[Any, ...]]:
    yield (1,)
    raise RuntimeError("a bug in a generator")


def gen_refuse(ctx: QueryContext) -> Iterator[tuple[Any, ...]]:
    raise TableError("constraint value not understood")


HERE = __name__

SPECS: dict[str, TableSpec] = {
    spec.name: spec
    for spec in [
        table(
            "numbers",
            "Test numbers.",
            [
                Column("id", BIGINT, "id", index=True, optimized=True),
                Column("name", TEXT, "name"),
                Column("half", DOUBLE, "value", hidden=True),
                Column("odd", INTEGER, "odd", additional=True),
            ],
            linux=f"{HERE}:gen_numbers",
            aliases=("nums",),
        ),
        table(
            "paths",
            "Test paths.",
            [
                Column("path", TEXT, "path", required=True, index=True, optimized=True),
                Column("directory", TEXT, "dir", required=True, optimized=True),
                Column("size", BIGINT, "size", aliases=("bytes",)),
            ],
            linux=f"{HERE}:gen_paths",
        ),
        table(
            "untyped",
            "Values needing conversion.",
            [
                Column("a", BIGINT, "a"),
                Column("b", INTEGER, "b"),
                Column("c", INTEGER, "c"),
                Column("d", TEXT, "d"),
                Column("e", DOUBLE, "e"),
            ],
            linux=f"{HERE}:gen_untyped",
        ),
        table("broken", "Fails mid-scan.", [Column("x", INTEGER, "x")], linux=f"{HERE}:gen_broken"),
        table("flaky", "Has a bug.", [Column("x", INTEGER, "x")], linux=f"{HERE}:gen_flaky"),
        table("refuse", "Refuses.", [Column("x", INTEGER, "x")], linux=f"{HERE}:gen_refuse"),
        table("elsewhere", "No Linux generator.", [Column("x", INTEGER, "x")], darwin=f"{HERE}:gen_numbers"),
    ]
}


@pytest.fixture
def conn() -> Iterator[Connection]:
    CALLS.clear()
    c = Connection(tables=SPECS, platform=LINUX)
    yield c
    c.close()


def test_select_star_leaves_out_hidden_columns(conn: Connection) -> None:
    result = conn.execute("SELECT * FROM numbers")
    assert result.columns == ("id", "name", "odd")
    assert len(result.rows) == 10
    assert conn.query("SELECT half FROM numbers WHERE id = 2") == [{"half": 3.0}]


def test_equality_on_index_column_is_pushed_down(conn: Connection) -> None:
    assert conn.query("SELECT name FROM numbers WHERE id = 3") == [{"name": "n3"}]
    assert CALLS[-1].equals("id") == {3}


def test_in_list_on_optimized_column_arrives_all_at_once(conn: Connection) -> None:
    rows = conn.query("SELECT id FROM numbers WHERE id IN (2, 4, 6)")
    assert [r["id"] for r in rows] == [2, 4, 6]
    assert len(CALLS) == 1
    assert CALLS[0].equals("id") == {2, 4, 6}


def test_constraints_on_plain_columns_are_not_pushed(conn: Connection) -> None:
    rows = conn.query("SELECT id FROM numbers WHERE name = 'n5'")
    assert rows == [{"id": 5}]
    assert CALLS[-1].constraints == {}


def test_additional_column_constraint_is_pushed_and_rechecked(conn: Connection) -> None:
    rows = conn.query("SELECT id FROM numbers WHERE odd = 1 AND id > 6")
    assert [r["id"] for r in rows] == [7, 9]
    ctx = CALLS[-1]
    assert ctx.equals("odd") == {1}
    assert ctx.values("id", Op.GREATER_THAN) == [6]


def test_generator_learns_which_columns_are_used(conn: Connection) -> None:
    conn.query("SELECT d FROM untyped")
    conn.query("SELECT name FROM numbers")
    # SQLite always reads the key columns of a WITHOUT ROWID table.
    assert CALLS[-1].columns_used == frozenset({"id", "name", "odd"})
    conn.query("SELECT half FROM numbers")
    assert "name" not in CALLS[-1].columns_used
    conn.query("SELECT * FROM numbers")
    assert CALLS[-1].columns_used == frozenset({"id", "name", "odd"})


def test_sqlite_rechecks_rows_the_generator_did_not_filter(conn: Connection) -> None:
    # gen_paths yields a row per LIKE pattern whose path does not match the
    # pattern as SQLite reads it; SQLite must drop it.
    assert conn.query("SELECT path FROM paths WHERE path LIKE '/etc/%' AND path LIKE '/nope/%'") == []
    assert sorted(CALLS[-1].values("path", Op.LIKE)) == ["/etc/%", "/nope/%"]


def test_missing_required_column_fails_with_table_and_columns(conn: Connection) -> None:
    with pytest.raises(QueryError) as info:
        conn.query("SELECT * FROM paths")
    message = str(info.value)
    assert message.startswith("Table paths was queried without a required column in the WHERE clause")
    assert "path or directory" in message


def test_any_required_column_satisfies_the_rule(conn: Connection) -> None:
    assert conn.query("SELECT path, size FROM paths WHERE path = '/etc/hosts'") == [
        {"path": "/etc/hosts", "size": 10}
    ]
    assert conn.query("SELECT path FROM paths WHERE directory = '/tmp'") == [{"path": "/tmp/a"}]


def test_join_binds_required_column_from_other_table(conn: Connection) -> None:
    rows = conn.query("SELECT n.id, p.size FROM numbers n JOIN paths p ON p.path = n.name WHERE n.id < 3")
    assert rows == [{"id": 1, "size": 2}, {"id": 2, "size": 2}]


def test_column_alias_reads_target(conn: Connection) -> None:
    assert conn.query("SELECT bytes FROM paths WHERE path = 'abc'") == [{"bytes": 3}]
    assert "bytes" not in conn.execute("SELECT * FROM paths WHERE path = 'abc'").columns


def test_table_alias_is_a_view(conn: Connection) -> None:
    assert len(conn.query("SELECT * FROM nums")) == 10


def test_values_are_converted_as_osquery_does(conn: Connection) -> None:
    rows = conn.execute("SELECT * FROM untyped").rows
    # hex and octal prefixes, empty -> NULL, numbers to text, strtod
    assert rows[0] == (16, 8, None, "7", 2.5)
    # unparsable numbers become NULL
    assert rows[1] == (12, None, -3, "abc", None)


def test_generator_error_fails_the_query(conn: Connection) -> None:
    with pytest.raises(QueryError, match="broken on purpose"):
        conn.query("SELECT * FROM broken")
    with pytest.raises(QueryError, match="constraint value not understood"):
        conn.query("SELECT * FROM refuse")


def test_table_without_generator_returns_no_rows(conn: Connection) -> None:
    assert conn.query("SELECT * FROM elsewhere") == []


def test_unexpected_generator_error_ends_scan_when_not_strict(
    conn: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOSTQL_STRICT_TABLES", "0")
    assert conn.query("SELECT * FROM flaky") == [{"x": 1}]
    monkeypatch.setenv("HOSTQL_STRICT_TABLES", "1")
    with pytest.raises(RuntimeError, match="a bug in a generator"):
        conn.query("SELECT * FROM flaky")


def test_schema_sql_matches_osquery_shape() -> None:
    sql = table_schema_sql(SPECS["numbers"], LINUX)
    assert sql == (
        "CREATE TABLE `numbers`(`id` BIGINT, `name` TEXT, `half` DOUBLE HIDDEN, `odd` INTEGER, "
        "PRIMARY KEY (`id`, `odd`)) WITHOUT ROWID"
    )
    assert table_schema_sql(SPECS["untyped"], LINUX) == (
        "CREATE TABLE `untyped`(`a` BIGINT, `b` INTEGER, `c` INTEGER, `d` TEXT, `e` DOUBLE)"
    )


def test_attach_is_denied(conn: Connection, tmp_path: Any) -> None:
    with pytest.raises(QueryError, match="not authorized"):
        conn.query(f"ATTACH DATABASE '{tmp_path}/x.db' AS x")


def test_syntax_error_message_is_sqlites(conn: Connection) -> None:
    with pytest.raises(QueryError) as info:
        conn.query("SELEC 1")
    assert str(info.value) == 'near "SELEC": syntax error'


def test_unknown_table_message(conn: Connection) -> None:
    with pytest.raises(QueryError) as info:
        conn.query("SELECT * FROM os")
    assert str(info.value) == "no such table: os"
