"""Query reports as one row per (query, host) instead of one row per result row.

``query_results`` (a row per result row) becomes ``query_reports`` (the host's
rows as one JSON array, a row count, a write generation and the last receive
time).  Existing reports are carried over in their stored order; a report's
``last_fetched`` is the newest of its rows'.  The downgrade splits them again.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.mysql import LONGTEXT

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

BATCH = 500  # reports moved per INSERT

_LONG_TEXT = sa.Text().with_variant(LONGTEXT(), "mysql", "mariadb")


def _old_table() -> sa.TableClause:
    return sa.table("query_results", sa.column("id", sa.Integer()), sa.column("query_id", sa.Integer()),
                    sa.column("host_id", sa.Integer()), sa.column("data", sa.JSON()),
                    sa.column("last_fetched", sa.DateTime()))


def _new_table() -> sa.TableClause:
    return sa.table("query_reports", sa.column("query_id", sa.Integer()), sa.column("host_id", sa.Integer()),
                    sa.column("rows", sa.Text()), sa.column("row_count", sa.Integer()),
                    sa.column("generation", sa.Integer()), sa.column("last_fetched", sa.DateTime()))


def _insert_reports(connection: Any, new: sa.TableClause, reports: list[dict[str, Any]]) -> None:
    if reports:
        connection.execute(new.insert(), [
            {"query_id": report["query_id"], "host_id": report["host_id"],
             "rows": json.dumps(report["rows"], separators=(",", ":"), ensure_ascii=False),
             "row_count": len(report["rows"]), "generation": 1, "last_fetched": report["last_fetched"]}
            for report in reports])


def upgrade() -> None:
    op.create_table(
        "query_reports",
        sa.Column("query_id", sa.Integer(), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("rows", _LONG_TEXT, nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("last_fetched", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["host_id"], ["hosts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["query_id"], ["queries.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("query_id", "host_id"),
    )
    with op.batch_alter_table("query_reports", schema=None) as batch_op:
        batch_op.create_index("ix_query_reports_host", ["host_id"], unique=False)

    old, new = _old_table(), _new_table()
    connection = op.get_bind()
    pending: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    # Streamed in (query, host) order so only one report is held at a time.
    for query_id, host_id, data, fetched in connection.execute(
            sa.select(old.c.query_id, old.c.host_id, old.c.data, old.c.last_fetched)
            .order_by(old.c.query_id, old.c.host_id, old.c.id)):
        if current is None or (current["query_id"], current["host_id"]) != (query_id, host_id):
            current = {"query_id": query_id, "host_id": host_id, "rows": [], "last_fetched": fetched}
            pending.append(current)
        current["rows"].append(data)
        current["last_fetched"] = max(current["last_fetched"], fetched)
        if len(pending) > BATCH:
            _insert_reports(connection, new, pending[:-1])
            del pending[:-1]
    _insert_reports(connection, new, pending)

    op.drop_table("query_results")  # with its index (MySQL refuses to drop an index a foreign key uses)


def downgrade() -> None:
    op.create_table(
        "query_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("query_id", sa.Integer(), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("last_fetched", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["host_id"], ["hosts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["query_id"], ["queries.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("query_results", schema=None) as batch_op:
        batch_op.create_index("ix_query_results_query_host", ["query_id", "host_id"], unique=False)

    old, new = _old_table(), _new_table()
    connection = op.get_bind()
    rows = [{"query_id": query_id, "host_id": host_id, "data": data, "last_fetched": fetched}
            for query_id, host_id, encoded, fetched in connection.execute(
                sa.select(new.c.query_id, new.c.host_id, new.c.rows, new.c.last_fetched)
                .order_by(new.c.query_id, new.c.host_id))
            for data in json.loads(encoded)]
    for start in range(0, len(rows), BATCH):
        connection.execute(old.insert(), rows[start:start + BATCH])

    op.drop_table("query_reports")
