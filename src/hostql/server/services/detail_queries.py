"""Detail ("vitals") queries: the SQL sent to hosts and how their answers fill the host.

Each :class:`DetailQuery` goes out as ``fleet_detail_query_<name>`` to hosts of
its platform family (``linux``, ``darwin``, ``windows``; ``None`` = every
host).  The SQL uses only columns that hostql's tables and osquery's share.
Answers arrive as osquery sends them (every value a string); the ``ingest``
function of the query parses them into :class:`Host` columns, ``host_users``
or ``software``/``host_software``.  :func:`ingest_enroll_details` applies the
``host_details`` of an enroll request with the same functions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, insert, select, tuple_
from sqlalchemy.orm import Session

from hostql.server.services.agent_config import find_scheduled_query, parse_schedule_name
from hostql.server.storage.models import Host, HostSoftware, HostUser, ScheduledQueryStats, Software

Row = dict[str, Any]

DARWIN, WINDOWS, LINUX, CHROME = "darwin", "windows", "linux", "chrome"
DESKTOP = frozenset({LINUX, DARWIN, WINDOWS})
UNIX = frozenset({LINUX, DARWIN})
# os_version.platform values of the Linux family (osquery reports the distribution id).
LINUX_PLATFORMS = frozenset({
    "linux", "ubuntu", "debian", "rhel", "centos", "fedora", "amzn", "sles", "opensuse", "opensuse-leap",
    "opensuse-tumbleweed", "suse", "arch", "archarm", "manjaro", "gentoo", "kali", "linuxmint", "pop", "nixos",
    "void", "endeavouros", "neon", "tuxedo", "rocky", "almalinux", "ol", "alpine", "raspbian", "elementary",
})


def platform_family(platform: str) -> str:
    """``linux``/``darwin``/``windows``/``chrome`` for an os_version platform, "" if unknown."""
    value = (platform or "").lower()
    if value in (DARWIN, WINDOWS, CHROME):
        return value
    if value in LINUX_PLATFORMS or "linux" in value:
        return LINUX
    return LINUX if value else ""


@dataclass
class IngestContext:
    """What an ingest function may touch: the attached host row and its session."""

    session: Session
    host: Host
    now: datetime
    enable_host_users: bool = True
    enable_software_inventory: bool = True
    enable_scheduled_query_stats: bool = True


Ingest = Callable[[IngestContext, list[Row]], None]


@dataclass(frozen=True)
class DetailQuery:
    name: str
    sql: str
    ingest: Ingest
    platforms: frozenset[str] | None = None  # families; None = all
    discovery: str = "SELECT 1"

    def applies_to(self, family: str) -> bool:
        return self.platforms is None or family in self.platforms


# value parsing (osquery sends strings; hostql.query gives Python values)


def _text(row: Row, key: str) -> str:
    value = row.get(key)
    return "" if value is None else str(value).strip()


def _int(row: Row, key: str) -> int:
    try:
        return int(float(_text(row, key) or 0))
    except ValueError:
        return 0


def _float(row: Row, key: str) -> float:
    try:
        return float(_text(row, key) or 0)
    except ValueError:
        return 0.0


def _first(rows: list[Row]) -> Row | None:
    return rows[0] if rows else None


# ingestion


def ingest_system_info(ctx: IngestContext, rows: list[Row]) -> None:
    row = _first(rows)
    if row is None:
        return
    host = ctx.host
    for column in ("hostname", "uuid", "cpu_type", "cpu_subtype", "cpu_brand", "hardware_vendor",
                   "hardware_model", "hardware_version", "hardware_serial", "computer_name"):
        value = _text(row, column)
        if value or column not in ("hostname", "uuid"):
            setattr(host, column, value[:255])
    host.memory = _int(row, "physical_memory")
    host.cpu_physical_cores = _int(row, "cpu_physical_cores")
    host.cpu_logical_cores = _int(row, "cpu_logical_cores")


def os_version_text(row: Row) -> str:
    """Fleet's display form: ``"<name> <major>.<minor>.<patch>"`` (Ubuntu keeps its LTS text)."""
    name = _text(row, "name")
    if _text(row, "platform") == "ubuntu" and _text(row, "version"):
        return f"{name} {_text(row, 'version').split(' (')[0]}".strip()
    if _text(row, "major"):
        parts = [_text(row, "major"), _text(row, "minor") or "0", _text(row, "patch") or "0"]
        return f"{name} {'.'.join(parts)}".strip()
    return f"{name} {_text(row, 'version')}".strip()


def ingest_os_version(ctx: IngestContext, rows: list[Row]) -> None:
    row = _first(rows)
    if row is None:
        return
    host = ctx.host
    host.os_version = os_version_text(row)[:255]
    if _text(row, "platform"):
        host.platform = _text(row, "platform")
    host.platform_like = _text(row, "platform_like")
    host.code_name = _text(row, "codename")
    host.build = _text(row, "build")


def ingest_osquery_info(ctx: IngestContext, rows: list[Row]) -> None:
    row = _first(rows)
    if row is not None and _text(row, "version"):
        ctx.host.osquery_version = _text(row, "version")


def ingest_osquery_flags(ctx: IngestContext, rows: list[Row]) -> None:
    flags = {_text(row, "name"): _int(row, "value") for row in rows}
    host = ctx.host
    if "distributed_interval" in flags:
        host.distributed_interval = flags["distributed_interval"]
    # config_refresh is the current name; config_tls_refresh the old alias.
    refresh = flags.get("config_refresh") or flags.get("config_tls_refresh")
    if refresh is not None:
        host.config_tls_refresh = refresh
    if "logger_tls_period" in flags:
        host.logger_tls_period = flags["logger_tls_period"]


def ingest_uptime(ctx: IngestContext, rows: list[Row]) -> None:
    row = _first(rows)
    if row is not None:
        ctx.host.uptime = _int(row, "total_seconds")


def ingest_kernel_info(ctx: IngestContext, rows: list[Row]) -> None:
    row = _first(rows)
    if row is not None:
        ctx.host.kernel_version = _text(row, "version")[:255]


def ingest_network_interface(ctx: IngestContext, rows: list[Row]) -> None:
    row = _first(rows)
    if row is None:
        return
    ctx.host.primary_ip = _text(row, "address")[:45]
    ctx.host.primary_mac = _text(row, "mac")[:17]


GIB = 1024.0**3


def ingest_disk_space_unix(ctx: IngestContext, rows: list[Row]) -> None:
    row = _first(rows)
    if row is None:
        return
    block_size, blocks, available = _float(row, "blocks_size"), _float(row, "blocks"), _float(row, "blocks_available")
    if blocks <= 0:
        return
    _set_disk(ctx.host, available * block_size, blocks * block_size)


def ingest_disk_space_windows(ctx: IngestContext, rows: list[Row]) -> None:
    row = _first(rows)
    if row is None:
        return
    size = _float(row, "size")
    if size > 0:
        _set_disk(ctx.host, _float(row, "free_space"), size)


def _set_disk(host: Host, free_bytes: float, total_bytes: float) -> None:
    host.gigs_disk_space_available = round(free_bytes / GIB, 2)
    host.gigs_total_disk_space = round(total_bytes / GIB, 2)
    host.percent_disk_space_available = round(100.0 * free_bytes / total_bytes, 2)


def ingest_users(ctx: IngestContext, rows: list[Row]) -> None:
    """Replace the host's users, unless they are the ones stored (the usual hourly refresh)."""
    if not ctx.enable_host_users:
        return
    wanted: dict[tuple[int, str], dict[str, Any]] = {}
    for row in rows:
        username = _text(row, "username")
        if not username:
            continue
        uid = _int(row, "uid")
        wanted[(uid, username[:255])] = {"host_id": ctx.host.id, "uid": uid, "username": username[:255],
                                         "type": _text(row, "type")[:255],
                                         "groupname": _text(row, "groupname")[:255],
                                         "shell": _text(row, "shell")[:255]}
    columns = (HostUser.uid, HostUser.username, HostUser.type, HostUser.groupname, HostUser.shell)
    stored = {tuple(row) for row in ctx.session.execute(select(*columns).where(HostUser.host_id == ctx.host.id))}
    if stored == {(u["uid"], u["username"], u["type"], u["groupname"], u["shell"]) for u in wanted.values()}:
        return
    ctx.session.execute(delete(HostUser).where(HostUser.host_id == ctx.host.id))
    if wanted:
        ctx.session.execute(insert(HostUser), list(wanted.values()))


SoftwareKey = tuple[str, str, str, str]


def _chunks(items: list[SoftwareKey], size: int = 200) -> Iterable[list[SoftwareKey]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _insert_software(session: Session, rows: list[tuple[SoftwareKey, str]]) -> None:
    """Add ``software`` rows, skipping those that exist: several hosts reporting the same new
    package at once (each in its own transaction) must not fail on the unique key."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        statement: Any = pg_insert(Software).on_conflict_do_nothing()
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        statement = sqlite_insert(Software).on_conflict_do_nothing()
    else:  # mysql / mariadb
        from sqlalchemy import insert

        statement = insert(Software).prefix_with("IGNORE")
    values = [{"name": k[0], "version": k[1], "source": k[2], "arch": k[3], "vendor": vendor} for k, vendor in rows]
    for start in range(0, len(values), 200):
        session.execute(statement, values[start:start + 200])


def ingest_software(ctx: IngestContext, rows: list[Row]) -> None:
    """Replace the host's software list; new (name, version, source, arch) rows join ``software``."""
    if not ctx.enable_software_inventory:
        return
    session = ctx.session
    found: dict[SoftwareKey, tuple[str, str]] = {}  # key -> (vendor, installed_path)
    for row in rows:
        name = _text(row, "name")[:255]
        if not name:
            continue
        key = (name, _text(row, "version")[:255], _text(row, "source")[:64], _text(row, "arch")[:32])
        found.setdefault(key, (_text(row, "vendor")[:255], _text(row, "installed_path")[:1024]))
    keys = list(found)
    ids: dict[SoftwareKey, int] = {}
    for chunk in _chunks(keys):
        statement = select(Software.id, Software.name, Software.version, Software.source, Software.arch).where(
            tuple_(Software.name, Software.version, Software.source, Software.arch).in_(chunk))
        for sid, name, version, source, arch in session.execute(statement):
            ids[(name, version, source, arch)] = sid
    missing = [key for key in keys if key not in ids]
    if missing:
        _insert_software(session, [(key, found[key][0]) for key in missing])
        for chunk in _chunks(missing):
            # A locking read sees rows other hosts' transactions committed since this one began
            # (MySQL's REPEATABLE READ snapshot would not).
            statement = select(Software.id, Software.name, Software.version, Software.source, Software.arch).where(
                tuple_(Software.name, Software.version, Software.source, Software.arch).in_(chunk)
            ).with_for_update(read=True)
            for sid, name, version, source, arch in session.execute(statement):
                ids[(name, version, source, arch)] = sid
    # A key the database compares equal to another (MySQL collations ignore case) has no id of its own.
    wanted = {ids[key]: found[key][1] for key in keys if key in ids}
    current = dict(session.execute(
        select(HostSoftware.software_id, HostSoftware.installed_path).where(HostSoftware.host_id == ctx.host.id)
    ).all())
    stale = [sid for sid, path in current.items() if sid not in wanted or wanted[sid] != path]
    for start in range(0, len(stale), 500):
        session.execute(delete(HostSoftware).where(HostSoftware.host_id == ctx.host.id,
                                                   HostSoftware.software_id.in_(stale[start:start + 500])))
    session.add_all(HostSoftware(host_id=ctx.host.id, software_id=sid, installed_path=path)
                    for sid, path in wanted.items() if sid not in current or current[sid] != path)


def _unix_time(value: int) -> datetime:
    return datetime.fromtimestamp(value, UTC).replace(tzinfo=None) if value > 0 else datetime(1970, 1, 2)


def ingest_scheduled_query_stats(ctx: IngestContext, rows: list[Row]) -> None:
    if not ctx.enable_scheduled_query_stats:
        return
    stats: dict[int, ScheduledQueryStats] = {}
    for row in rows:
        parsed = parse_schedule_name(_text(row, "name"))
        if parsed is None:
            continue
        query = find_scheduled_query(ctx.session, parsed[0], parsed[1])
        if query is None:
            continue
        wall_ms = _int(row, "wall_time_ms") or _int(row, "wall_time") * 1000
        stats[query.id] = ScheduledQueryStats(
            host_id=ctx.host.id, query_id=query.id, executions=_int(row, "executions"),
            denylisted=_text(row, "denylisted") in ("1", "true", "True"), wall_time=wall_ms,
            user_time=_int(row, "user_time"), system_time=_int(row, "system_time"),
            average_memory=_int(row, "average_memory"), last_executed=_unix_time(_int(row, "last_executed")),
            output_size=_int(row, "output_size"))
    ctx.session.execute(delete(ScheduledQueryStats).where(ScheduledQueryStats.host_id == ctx.host.id))
    ctx.session.add_all(stats.values())


# the query set

_NETWORK_SQL = (
    "SELECT ia.interface, ia.address, id.mac FROM interface_addresses ia "
    "JOIN interface_details id ON id.interface = ia.interface "
    "JOIN routes r ON r.interface = ia.interface "
    "WHERE r.destination IN ('0.0.0.0', '::') AND r.netmask = 0 "
    "AND ia.address NOT LIKE '127.%' AND ia.address NOT LIKE 'fe80:%' AND ia.address NOT LIKE '169.254.%' "
    "AND ia.address <> '::1' "
    "ORDER BY r.metric ASC, (ia.address LIKE '%.%') DESC LIMIT 1"
)
_SOFTWARE_LINUX_SQL = (
    "SELECT name, version, 'deb_packages' AS source, arch, maintainer AS vendor, '' AS installed_path "
    "FROM deb_packages WHERE status LIKE '% ok installed' "
    "UNION ALL "
    "SELECT name, CASE WHEN COALESCE(release, '') <> '' THEN version || '-' || release ELSE version END, "
    "'rpm_packages', arch, vendor, '' FROM rpm_packages "
    "UNION ALL "
    "SELECT name, version, 'python_packages', '', '', path FROM python_packages"
)
_SOFTWARE_MACOS_SQL = (
    "SELECT name, bundle_short_version AS version, 'apps' AS source, '' AS arch, '' AS vendor, "
    "path AS installed_path FROM apps "
    "UNION ALL SELECT name, version, 'homebrew_packages', '', '', path FROM homebrew_packages "
    "UNION ALL SELECT name, version, 'python_packages', '', '', path FROM python_packages"
)
_SOFTWARE_WINDOWS_SQL = (
    "SELECT name, version, 'programs' AS source, '' AS arch, publisher AS vendor, "
    "install_location AS installed_path FROM programs "
    "UNION ALL SELECT name, version, 'chocolatey_packages', '', '', path FROM chocolatey_packages "
    "UNION ALL SELECT name, version, 'python_packages', '', '', path FROM python_packages"
)
_USERS_UNIX_SQL = (
    "SELECT u.uid, u.username, '' AS type, g.groupname, u.shell FROM users u "
    "LEFT JOIN groups g ON g.gid = u.gid "
    "WHERE u.shell NOT LIKE '%/false' AND u.shell NOT LIKE '%/nologin' AND u.shell NOT LIKE '%/shutdown' "
    "AND u.shell NOT LIKE '%/halt' AND u.shell NOT LIKE '%/sync' AND u.username NOT LIKE '\\_%' ESCAPE '\\'"
)

DETAIL_QUERIES: tuple[DetailQuery, ...] = (
    DetailQuery("system_info",
                "SELECT hostname, uuid, cpu_type, cpu_subtype, cpu_brand, cpu_physical_cores, cpu_logical_cores, "
                "physical_memory, hardware_vendor, hardware_model, hardware_version, hardware_serial, "
                "computer_name FROM system_info LIMIT 1", ingest_system_info),
    DetailQuery("os_version",
                "SELECT name, version, major, minor, patch, build, platform, platform_like, codename, arch "
                "FROM os_version LIMIT 1", ingest_os_version),
    DetailQuery("osquery_info", "SELECT version, uuid, instance_id FROM osquery_info LIMIT 1", ingest_osquery_info),
    DetailQuery("osquery_flags",
                "SELECT name, value FROM osquery_flags WHERE name IN ('distributed_interval', "
                "'config_tls_refresh', 'config_refresh', 'logger_tls_period')", ingest_osquery_flags, DESKTOP),
    DetailQuery("uptime", "SELECT total_seconds FROM uptime LIMIT 1", ingest_uptime, DESKTOP),
    DetailQuery("kernel_info", "SELECT version FROM kernel_info LIMIT 1", ingest_kernel_info, DESKTOP),
    DetailQuery("network_interface", _NETWORK_SQL, ingest_network_interface, DESKTOP),
    DetailQuery("disk_space_unix", "SELECT blocks, blocks_size, blocks_available FROM mounts WHERE path = '/' LIMIT 1",
                ingest_disk_space_unix, UNIX),
    DetailQuery("disk_space_windows",
                "SELECT free_space, size FROM logical_drives WHERE boot_partition = 1 LIMIT 1",
                ingest_disk_space_windows, frozenset({WINDOWS})),
    DetailQuery("users", _USERS_UNIX_SQL, ingest_users, UNIX),
    DetailQuery("users_windows",
                "SELECT uid, username, type, '' AS groupname, shell FROM users WHERE type <> 'special'",
                ingest_users, frozenset({WINDOWS})),
    DetailQuery("software_linux", _SOFTWARE_LINUX_SQL, ingest_software, frozenset({LINUX})),
    DetailQuery("software_macos", _SOFTWARE_MACOS_SQL, ingest_software, frozenset({DARWIN})),
    DetailQuery("software_windows", _SOFTWARE_WINDOWS_SQL, ingest_software, frozenset({WINDOWS})),
    DetailQuery("scheduled_query_stats",
                "SELECT name, interval, executions, last_executed, denylisted, output_size, wall_time, "
                "wall_time_ms, user_time, system_time, average_memory FROM osquery_schedule",
                ingest_scheduled_query_stats, DESKTOP),
)
BY_NAME = {query.name: query for query in DETAIL_QUERIES}


def queries_for(platform: str) -> list[DetailQuery]:
    """The detail queries for a host whose os_version platform is ``platform``.

    With the platform still unknown, only the queries every platform answers
    go out; the rest follow once ``os_version`` has told us the platform.
    """
    family = platform_family(platform)
    if not family:
        return [query for query in DETAIL_QUERIES if query.platforms is None]
    return [query for query in DETAIL_QUERIES if query.applies_to(family)]


def ingest_enroll_details(ctx: IngestContext, details: dict[str, Any]) -> None:
    """Apply an enroll request's ``host_details`` (one row each of os_version, osquery_info, system_info)."""
    for table, ingest in (("os_version", ingest_os_version), ("osquery_info", ingest_osquery_info),
                          ("system_info", ingest_system_info)):
        row = details.get(table)
        if isinstance(row, dict) and row:
            ingest(ctx, [row])
