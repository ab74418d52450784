"""The server's tables (SQLAlchemy 2), modelled on Fleet's core schema.

One module so migrations have one source of truth.  Times are UTC
``datetime`` values without tzinfo (portable across SQLite, PostgreSQL and
MySQL); JSON columns hold what Fleet keeps as JSON.  Request/response shapes
are pydantic models in ``server/api``; these classes never leave the services.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.mysql import LONGBLOB, LONGTEXT
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# MySQL's TEXT holds 64 KiB; a report of a few thousand rows needs more.
LongText = Text().with_variant(LONGTEXT(), "mysql", "mariadb")
LongBlob = LargeBinary().with_variant(LONGBLOB(), "mysql", "mariadb")  # a carve block is up to 8 MiB
EPOCH = datetime(1970, 1, 2)  # Fleet's "never" for detail/label/policy update times


def utcnow() -> datetime:
    from datetime import UTC

    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class Timestamped:
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow, nullable=False)


class Team(Timestamped, Base):
    __tablename__ = "teams"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    description: Mapped[str] = mapped_column(Text, default="", nullable=False)
    # The team's agent options and other settings (Fleet's team config JSON).
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, nullable=False)


class EnrollSecret(Base):
    __tablename__ = "enroll_secrets"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    secret: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)


class Host(Timestamped, Base):
    __tablename__ = "hosts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # What the agent identified itself with at enrollment, per osquery_host_identifier.
    osquery_host_id: Mapped[str] = mapped_column(String(255), nullable=False, index=True)
    node_key: Mapped[str | None] = mapped_column(String(255), unique=True, nullable=True)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"), nullable=True)
    hostname: Mapped[str] = mapped_column(String(255), default="", nullable=False, index=True)
    computer_name: Mapped[str] = mapped_column(String(255), default="", nullable=False)
    display_name: Mapped[str] = mapped_column(String(255), default="", nullable=False)
    uuid: Mapped[str] = mapped_column(String(255), default="", nullable=False, index=True)
    hardware_serial: Mapped[str] = mapped_column(String(255), default="", nullable=False)
    hardware_vendor: Mapped[str] = mapped_column(String(255), default="", nullable=False)
    hardware_model: Mapped[str] = mapped_column(String(255), default="", nullable=False)
    hardware_version: Mapped[str] = mapped_column(String(255), default="", nullable=False)
    platform: Mapped[str] = mapped_column(String(255), default="", nullable=False)
    platform_like: Mapped[str] = mapped_column(String(255), default="", nullable=False)
    os_version: Mapped[str] = mapped_column(String(255), default="", nullable=False)
    code_name: Mapped[str] = mapped_column(String(255), default="", nullable=False)
    build: Mapped[str] = mapped_column(String(255), default="", nullable=False)
    kernel_version: Mapped[str] = mapped_column(String(255), default="", nullable=False)
    osquery_version: Mapped[str] = mapped_column(String(255), default="", nullable=False)
    cpu_type: Mapped[str] = mapped_column(String(255), default="", nullable=False)
    cpu_subtype: Mapped[str] = mapped_column(String(255), default="", nullable=False)
    cpu_brand: Mapped[str] = mapped_column(String(255), default="", nullable=False)
    cpu_physical_cores: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    cpu_logical_cores: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    memory: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    uptime: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)  # seconds
    primary_ip: Mapped[str] = mapped_column(String(45), default="", nullable=False)
    primary_mac: Mapped[str] = mapped_column(String(17), default="", nullable=False)
    public_ip: Mapped[str] = mapped_column(String(45), default="", nullable=False)
    gigs_disk_space_available: Mapped[float] = mapped_column(Float, default=0.0, nullable=False)
    percent_disk_space_available: Mapped[float] = mapped_column(Float, default=0.0, nullable=False)
    gigs_total_disk_space: Mapped[float] = mapped_column(Float, default=0.0, nullable=False)
    distributed_interval: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    config_tls_refresh: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    logger_tls_period: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    detail_updated_at: Mapped[datetime] = mapped_column(DateTime, default=lambda: EPOCH, nullable=False)
    label_updated_at: Mapped[datetime] = mapped_column(DateTime, default=lambda: EPOCH, nullable=False)
    policy_updated_at: Mapped[datetime] = mapped_column(DateTime, default=lambda: EPOCH, nullable=False)
    last_enrolled_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)
    seen_time: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)
    refetch_requested: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    # Answers of the admin-defined "additional queries" (features.additional_queries), by name.
    additional: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class HostUser(Base):
    __tablename__ = "host_users"
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"), primary_key=True)
    uid: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    username: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(255), default="", nullable=False)
    groupname: Mapped[str] = mapped_column(String(255), default="", nullable=False)
    shell: Mapped[str] = mapped_column(String(255), default="", nullable=False)


class Software(Base):
    __tablename__ = "software"
    __table_args__ = (UniqueConstraint("name", "version", "source", "arch", name="uq_software"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    version: Mapped[str] = mapped_column(String(255), default="", nullable=False)
    source: Mapped[str] = mapped_column(String(64), default="", nullable=False)
    arch: Mapped[str] = mapped_column(String(32), default="", nullable=False)
    vendor: Mapped[str] = mapped_column(String(255), default="", nullable=False)


class HostSoftware(Base):
    __tablename__ = "host_software"
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"), primary_key=True)
    software_id: Mapped[int] = mapped_column(ForeignKey("software.id", ondelete="CASCADE"), primary_key=True)
    installed_path: Mapped[str] = mapped_column(String(1024), default="", nullable=False)


class User(Timestamped, Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), default="", nullable=False)
    email: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    password_hash: Mapped[str] = mapped_column(String(255), default="", nullable=False)
    # admin, maintainer, observer, observer_plus; None when the user has team roles only.
    global_role: Mapped[str | None] = mapped_column(String(32), nullable=True)
    api_only: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    force_password_reset: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    # Team roles (empty for users with a global role); loaded with the user, no extra column.
    team_roles: Mapped[list[UserTeam]] = relationship(
        lazy="selectin", cascade="all, delete-orphan", passive_deletes=True
    )


class UserTeam(Base):
    __tablename__ = "user_teams"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[str] = mapped_column(String(32), nullable=False)


class Session(Base):
    __tablename__ = "sessions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # SHA-256 of the bearer token: a stolen database does not hand out sessions.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)
    accessed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)
    # None: never expires (API-only users).
    expires_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class Query(Timestamped, Base):
    """A saved query; with ``interval > 0`` it is also scheduled (Fleet 4.35+)."""

    __tablename__ = "queries"
    __table_args__ = (UniqueConstraint("team_id", "name", name="uq_query_team_name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), nullable=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    description: Mapped[str] = mapped_column(Text, default="", nullable=False)
    query: Mapped[str] = mapped_column(Text, nullable=False)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    saved: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    observer_can_run: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    interval: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    platform: Mapped[str] = mapped_column(String(255), default="", nullable=False)
    min_osquery_version: Mapped[str] = mapped_column(String(255), default="", nullable=False)
    automations_enabled: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    logging_type: Mapped[str] = mapped_column(String(32), default="snapshot", nullable=False)
    discard_data: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)


class QueryReport(Base):
    """One host's latest result set of one scheduled query (a query report).

    The rows are one JSON array in one database row: a result-log request changes a
    report with one statement however many rows it carries (a row per result row cost
    an index entry and a foreign-key check each).  ``generation`` counts the writes, so
    a read-modify-write of a differential report detects a concurrent change."""

    __tablename__ = "query_reports"
    __table_args__ = (Index("ix_query_reports_host", "host_id"),)
    query_id: Mapped[int] = mapped_column(ForeignKey("queries.id", ondelete="CASCADE"), primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"), primary_key=True)
    rows: Mapped[str] = mapped_column(LongText, default="[]", nullable=False)  # JSON array of row objects
    row_count: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    generation: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    last_fetched: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)


class Pack(Timestamped, Base):
    __tablename__ = "packs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    description: Mapped[str] = mapped_column(Text, default="", nullable=False)
    platform: Mapped[str] = mapped_column(String(255), default="", nullable=False)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    # {"queries": [{query, name, interval, snapshot, removed, platform, version, shard}],
    #  "targets": {"labels": [...], "teams": [...], "hosts": [...]}}
    spec: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, nullable=False)


class Label(Timestamped, Base):
    __tablename__ = "labels"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    description: Mapped[str] = mapped_column(Text, default="", nullable=False)
    query: Mapped[str] = mapped_column(Text, default="", nullable=False)
    platform: Mapped[str] = mapped_column(String(255), default="", nullable=False)
    # "builtin" or "regular"; membership "dynamic" (SQL) or "manual".
    label_type: Mapped[str] = mapped_column(String(32), default="regular", nullable=False)
    label_membership_type: Mapped[str] = mapped_column(String(32), default="dynamic", nullable=False)


class LabelMembership(Base):
    __tablename__ = "label_membership"
    label_id: Mapped[int] = mapped_column(ForeignKey("labels.id", ondelete="CASCADE"), primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"), primary_key=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)


class Policy(Timestamped, Base):
    __tablename__ = "policies"
    __table_args__ = (UniqueConstraint("team_id", "name", name="uq_policy_team_name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), nullable=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    query: Mapped[str] = mapped_column(Text, nullable=False)
    description: Mapped[str] = mapped_column(Text, default="", nullable=False)
    resolution: Mapped[str] = mapped_column(Text, default="", nullable=False)
    platform: Mapped[str] = mapped_column(String(255), default="", nullable=False)
    critical: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)


class PolicyMembership(Base):
    __tablename__ = "policy_membership"
    policy_id: Mapped[int] = mapped_column(ForeignKey("policies.id", ondelete="CASCADE"), primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"), primary_key=True)
    # None: the policy query failed on the host (no decision).
    passes: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)


class Campaign(Timestamped, Base):
    """A live query run (Fleet's distributed_query_campaigns)."""

    __tablename__ = "distributed_query_campaigns"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    query_id: Mapped[int | None] = mapped_column(ForeignKey("queries.id", ondelete="SET NULL"), nullable=True)
    query: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[int] = mapped_column(Integer, default=0, nullable=False)  # 0 waiting, 1 running, 2 finished
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)


class CampaignTarget(Base):
    __tablename__ = "distributed_query_campaign_targets"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("distributed_query_campaigns.id", ondelete="CASCADE"), nullable=False, index=True
    )
    # "host", "label" or "team", and that object's id.
    type: Mapped[str] = mapped_column(String(16), nullable=False)
    target_id: Mapped[int] = mapped_column(Integer, nullable=False)


class Activity(Base):
    """The audit log: every change and every live query."""

    __tablename__ = "activities"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False, index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    user_name: Mapped[str] = mapped_column(String(255), default="", nullable=False)
    user_email: Mapped[str] = mapped_column(String(255), default="", nullable=False)
    type: Mapped[str] = mapped_column(String(255), nullable=False)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, nullable=False)


class Carve(Base):
    """A file carve an osquery agent uploads (``/api/osquery/carve/begin``, Fleet's ``carve_metadata``)."""

    __tablename__ = "carves"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Kept when the host is deleted: a carve is often evidence about a machine that is gone.
    host_id: Mapped[int | None] = mapped_column(ForeignKey("hosts.id", ondelete="SET NULL"), nullable=True,
                                                index=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False, index=True)
    block_count: Mapped[int] = mapped_column(Integer, nullable=False)
    block_size: Mapped[int] = mapped_column(Integer, nullable=False)
    carve_size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    carve_id: Mapped[str] = mapped_column(String(64), nullable=False)  # the agent's GUID
    request_id: Mapped[str] = mapped_column(String(255), default="", nullable=False)
    session_id: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    max_block: Mapped[int] = mapped_column(Integer, default=-1, nullable=False)  # last block received
    expired: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)


class CarveBlock(Base):
    __tablename__ = "carve_blocks"
    carve_id: Mapped[int] = mapped_column(ForeignKey("carves.id", ondelete="CASCADE"), primary_key=True)
    block_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LongBlob, nullable=False)


class AppConfig(Base):
    """One row: the global settings document (org_info, server_settings, agent_options, ...)."""

    __tablename__ = "app_config_json"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    json_value: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow, nullable=False)


class ScheduledQueryStats(Base):
    """``osquery_schedule`` rows reported by each host."""

    __tablename__ = "scheduled_query_stats"
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"), primary_key=True)
    query_id: Mapped[int] = mapped_column(ForeignKey("queries.id", ondelete="CASCADE"), primary_key=True)
    executions: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    denylisted: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    wall_time: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    user_time: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    system_time: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    average_memory: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    last_executed: Mapped[datetime] = mapped_column(DateTime, default=lambda: EPOCH, nullable=False)
    output_size: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)


def _never_reuse_ids() -> None:
    # SQLite otherwise hands a deleted row's id (the highest) to the next insert: a deleted host's
    # id would come back as another host (its URLs, activities, live-query target bits).
    for table in Base.metadata.tables.values():
        if [column.name for column in table.primary_key.columns] == ["id"]:
            table.dialect_options["sqlite"]["autoincrement"] = True


_never_reuse_ids()
