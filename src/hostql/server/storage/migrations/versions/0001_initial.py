"""The initial schema: every table of storage/models.py.

Tables with an integer ``id`` use SQLite's AUTOINCREMENT, so an id is never
reused after a delete (as with MySQL's AUTO_INCREMENT and PostgreSQL's sequences).

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "app_config_json",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("json_value", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "labels",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("query", sa.Text(), nullable=False),
        sa.Column("platform", sa.String(length=255), nullable=False),
        sa.Column("label_type", sa.String(length=32), nullable=False),
        sa.Column("label_membership_type", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "packs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("platform", sa.String(length=255), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "software",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("version", sa.String(length=255), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("arch", sa.String(length=32), nullable=False),
        sa.Column("vendor", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", "version", "source", "arch", name="uq_software"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "teams",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=255), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("global_role", sa.String(length=32), nullable=True),
        sa.Column("api_only", sa.Boolean(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("force_password_reset", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("email"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "activities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("user_name", sa.String(length=255), nullable=False),
        sa.Column("user_email", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=255), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("activities", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_activities_created_at"), ["created_at"], unique=False)

    op.create_table(
        "enroll_secrets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("secret", sa.String(length=255), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("secret"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "hosts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("osquery_host_id", sa.String(length=255), nullable=False),
        sa.Column("node_key", sa.String(length=255), nullable=True),
        sa.Column("team_id", sa.Integer(), nullable=True),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("computer_name", sa.String(length=255), nullable=False),
        sa.Column("display_name", sa.String(length=255), nullable=False),
        sa.Column("uuid", sa.String(length=255), nullable=False),
        sa.Column("hardware_serial", sa.String(length=255), nullable=False),
        sa.Column("hardware_vendor", sa.String(length=255), nullable=False),
        sa.Column("hardware_model", sa.String(length=255), nullable=False),
        sa.Column("hardware_version", sa.String(length=255), nullable=False),
        sa.Column("platform", sa.String(length=255), nullable=False),
        sa.Column("platform_like", sa.String(length=255), nullable=False),
        sa.Column("os_version", sa.String(length=255), nullable=False),
        sa.Column("code_name", sa.String(length=255), nullable=False),
        sa.Column("build", sa.String(length=255), nullable=False),
        sa.Column("kernel_version", sa.String(length=255), nullable=False),
        sa.Column("osquery_version", sa.String(length=255), nullable=False),
        sa.Column("cpu_type", sa.String(length=255), nullable=False),
        sa.Column("cpu_subtype", sa.String(length=255), nullable=False),
        sa.Column("cpu_brand", sa.String(length=255), nullable=False),
        sa.Column("cpu_physical_cores", sa.Integer(), nullable=False),
        sa.Column("cpu_logical_cores", sa.Integer(), nullable=False),
        sa.Column("memory", sa.BigInteger(), nullable=False),
        sa.Column("uptime", sa.BigInteger(), nullable=False),
        sa.Column("primary_ip", sa.String(length=45), nullable=False),
        sa.Column("primary_mac", sa.String(length=17), nullable=False),
        sa.Column("public_ip", sa.String(length=45), nullable=False),
        sa.Column("gigs_disk_space_available", sa.Float(), nullable=False),
        sa.Column("percent_disk_space_available", sa.Float(), nullable=False),
        sa.Column("gigs_total_disk_space", sa.Float(), nullable=False),
        sa.Column("distributed_interval", sa.Integer(), nullable=False),
        sa.Column("config_tls_refresh", sa.Integer(), nullable=False),
        sa.Column("logger_tls_period", sa.Integer(), nullable=False),
        sa.Column("detail_updated_at", sa.DateTime(), nullable=False),
        sa.Column("label_updated_at", sa.DateTime(), nullable=False),
        sa.Column("policy_updated_at", sa.DateTime(), nullable=False),
        sa.Column("last_enrolled_at", sa.DateTime(), nullable=False),
        sa.Column("seen_time", sa.DateTime(), nullable=False),
        sa.Column("refetch_requested", sa.Boolean(), nullable=False),
        sa.Column("additional", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("node_key"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("hosts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_hosts_hostname"), ["hostname"], unique=False)
        batch_op.create_index(batch_op.f("ix_hosts_osquery_host_id"), ["osquery_host_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_hosts_uuid"), ["uuid"], unique=False)

    op.create_table(
        "policies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("query", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("resolution", sa.Text(), nullable=False),
        sa.Column("platform", sa.String(length=255), nullable=False),
        sa.Column("critical", sa.Boolean(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["author_id"], ["users.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("team_id", "name", name="uq_policy_team_name"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "queries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("query", sa.Text(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=True),
        sa.Column("saved", sa.Boolean(), nullable=False),
        sa.Column("observer_can_run", sa.Boolean(), nullable=False),
        sa.Column("interval", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(length=255), nullable=False),
        sa.Column("min_osquery_version", sa.String(length=255), nullable=False),
        sa.Column("automations_enabled", sa.Boolean(), nullable=False),
        sa.Column("logging_type", sa.String(length=32), nullable=False),
        sa.Column("discard_data", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["author_id"], ["users.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("team_id", "name", name="uq_query_team_name"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("accessed_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_hash"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sessions_user_id"), ["user_id"], unique=False)

    op.create_table(
        "user_teams",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", "team_id"),
    )
    op.create_table(
        "distributed_query_campaigns",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("query_id", sa.Integer(), nullable=True),
        sa.Column("query", sa.Text(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["query_id"], ["queries.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "host_software",
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("software_id", sa.Integer(), nullable=False),
        sa.Column("installed_path", sa.String(length=1024), nullable=False),
        sa.ForeignKeyConstraint(["host_id"], ["hosts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["software_id"], ["software.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("host_id", "software_id"),
    )
    op.create_table(
        "host_users",
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.BigInteger(), nullable=False),
        sa.Column("username", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=255), nullable=False),
        sa.Column("groupname", sa.String(length=255), nullable=False),
        sa.Column("shell", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(["host_id"], ["hosts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("host_id", "uid", "username"),
    )
    op.create_table(
        "label_membership",
        sa.Column("label_id", sa.Integer(), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["host_id"], ["hosts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["label_id"], ["labels.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("label_id", "host_id"),
    )
    op.create_table(
        "policy_membership",
        sa.Column("policy_id", sa.Integer(), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("passes", sa.Boolean(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["host_id"], ["hosts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["policy_id"], ["policies.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("policy_id", "host_id"),
    )
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

    op.create_table(
        "scheduled_query_stats",
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("query_id", sa.Integer(), nullable=False),
        sa.Column("executions", sa.BigInteger(), nullable=False),
        sa.Column("denylisted", sa.Boolean(), nullable=False),
        sa.Column("wall_time", sa.BigInteger(), nullable=False),
        sa.Column("user_time", sa.BigInteger(), nullable=False),
        sa.Column("system_time", sa.BigInteger(), nullable=False),
        sa.Column("average_memory", sa.BigInteger(), nullable=False),
        sa.Column("last_executed", sa.DateTime(), nullable=False),
        sa.Column("output_size", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["host_id"], ["hosts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["query_id"], ["queries.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("host_id", "query_id"),
    )
    op.create_table(
        "distributed_query_campaign_targets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("target_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["campaign_id"], ["distributed_query_campaigns.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("distributed_query_campaign_targets", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_distributed_query_campaign_targets_campaign_id"), ["campaign_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("distributed_query_campaign_targets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_distributed_query_campaign_targets_campaign_id"))

    op.drop_table("distributed_query_campaign_targets")
    op.drop_table("scheduled_query_stats")
    with op.batch_alter_table("query_results", schema=None) as batch_op:
        batch_op.drop_index("ix_query_results_query_host")

    op.drop_table("query_results")
    op.drop_table("policy_membership")
    op.drop_table("label_membership")
    op.drop_table("host_users")
    op.drop_table("host_software")
    op.drop_table("distributed_query_campaigns")
    op.drop_table("user_teams")
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sessions_user_id"))

    op.drop_table("sessions")
    op.drop_table("queries")
    op.drop_table("policies")
    with op.batch_alter_table("hosts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_hosts_uuid"))
        batch_op.drop_index(batch_op.f("ix_hosts_osquery_host_id"))
        batch_op.drop_index(batch_op.f("ix_hosts_hostname"))

    op.drop_table("hosts")
    op.drop_table("enroll_secrets")
    with op.batch_alter_table("activities", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_activities_created_at"))

    op.drop_table("activities")
    op.drop_table("users")
    op.drop_table("teams")
    op.drop_table("software")
    op.drop_table("packs")
    op.drop_table("labels")
    op.drop_table("app_config_json")
