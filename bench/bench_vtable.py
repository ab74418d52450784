"""Rows per second through the generic virtual table vs a plain apsw cursor.

Both read the same 200,000 rows of 5 columns: the baseline from an in-memory
SQLite table, ours from a generator behind hostql's virtual table.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import apsw

sys.path.insert(0, str(Path(__file__).parent))
from _common import median_seconds, report
from hostql.sql.connection import Connection
from hostql.sql.context import QueryContext
from hostql.tables.spec import BIGINT, DOUBLE, LINUX, TEXT, Column, table

ROWS = [(i, f"name{i}", f"/usr/bin/prog{i}", i * 0.5, i * 7) for i in range(200_000)]


def gen_rows(ctx: QueryContext) -> Iterator[tuple[object, ...]]:
    return iter(ROWS)


SPEC = table(
    "bench_rows",
    "Benchmark rows.",
    [Column("id", BIGINT, "id"), Column("name", TEXT, "name"), Column("path", TEXT, "path"),
     Column("ratio", DOUBLE, "ratio"), Column("size", BIGINT, "size")],
    linux=f"{__name__}:gen_rows",
)


def main() -> None:
    plain = apsw.Connection(":memory:")
    plain.execute("CREATE TABLE bench_rows(id BIGINT, name TEXT, path TEXT, ratio DOUBLE, size BIGINT)")
    plain.executemany("INSERT INTO bench_rows VALUES (?,?,?,?,?)", ROWS)
    ours = Connection(tables={"bench_rows": SPEC}, platform=LINUX)
    sql = "SELECT id, name, path, ratio, size FROM bench_rows"

    def run_plain() -> None:
        for _ in plain.execute(sql):
            pass

    def run_ours() -> None:
        for _ in ours.db.execute(sql):
            pass

    t_plain = median_seconds(run_plain, runs=5)
    t_ours = median_seconds(run_ours, runs=5)
    n = len(ROWS)
    print(f"virtual table: {n / t_ours:,.0f} rows/s; plain apsw cursor: {n / t_plain:,.0f} rows/s")
    report("200k rows x 5 columns", t_ours, t_plain, "plain apsw cursor")


if __name__ == "__main__":
    main()
