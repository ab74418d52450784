"""File carves: ``carves`` (one per upload an agent begins) and ``carve_blocks`` (its data).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.mysql import LONGBLOB

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

_LONG_BLOB = sa.LargeBinary().with_variant(LONGBLOB(), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "carves",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("block_count", sa.Integer(), nullable=False),
        sa.Column("block_size", sa.Integer(), nullable=False),
        sa.Column("carve_size", sa.BigInteger(), nullable=False),
        sa.Column("carve_id", sa.String(length=64), nullable=False),
        sa.Column("request_id", sa.String(length=255), nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("max_block", sa.Integer(), nullable=False),
        sa.Column("expired", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["host_id"], ["hosts.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("session_id"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("carves", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_carves_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_carves_host_id"), ["host_id"], unique=False)
    op.create_table(
        "carve_blocks",
        sa.Column("carve_id", sa.Integer(), nullable=False),
        sa.Column("block_id", sa.Integer(), nullable=False),
        sa.Column("data", _LONG_BLOB, nullable=False),
        sa.ForeignKeyConstraint(["carve_id"], ["carves.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("carve_id", "block_id"),
    )


def downgrade() -> None:
    op.drop_table("carve_blocks")
    op.drop_table("carves")  # with its indexes (MySQL refuses to drop an index a foreign key uses)
