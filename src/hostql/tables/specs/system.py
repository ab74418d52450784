"""Table specs: the operating system, kernel and clock."""

from __future__ import annotations

from hostql.tables.spec import BIGINT, INTEGER, TEXT, Column, TableSpec, table

TABLES: list[TableSpec] = [
    table(
        "load_average",
        "System load averages over one, five and fifteen minutes.",
        [
            Column("period", TEXT, "Averaging window: 1m, 5m or 15m"),
            Column("average", TEXT, "Mean number of runnable tasks over the window"),
        ],
        portable="hostql.tables.portable.system:gen_load_average",
        platforms=frozenset({"linux", "darwin"}),
    ),
]
