"""Generators of the osquery_* tables: they report the process's Runtime."""

from __future__ import annotations

import platform
from collections.abc import Iterator

from hostql.agent.flags import format_value
from hostql.runtime import Runtime
from hostql.sql.context import QueryContext
from hostql.tables.common.host_identity import host_uuid

# osquery's platform bitmask: POSIX=1, WINDOWS=2, BSD=4, LINUX=8, OSX=16.
PLATFORM_MASKS = {"linux": 9, "darwin": 17, "windows": 2}


def _runtime(ctx: QueryContext) -> Runtime:
    return ctx.runtime if ctx.runtime is not None else Runtime()


def _build_platform() -> str:
    system = platform.system().lower()
    return "darwin" if system == "darwin" else system


def gen_osquery_info(ctx: QueryContext) -> Iterator[tuple[object, ...]]:
    from hostql import OSQUERY_VERSION

    rt = _runtime(ctx)
    build = _build_platform()
    yield (
        rt.pid,
        host_uuid(rt) if ctx.is_used("uuid") else None,
        rt.instance_id,
        OSQUERY_VERSION,
        rt.config_hash,
        int(rt.config_valid),
        "active" if rt.extensions_active else "inactive",
        build,
        platform.freedesktop_os_release().get("ID", "") if build == "linux" and ctx.is_used("build_distro")
        else build,
        rt.start_time,
        rt.watcher_pid,
        PLATFORM_MASKS.get(build, 0),
    )


def gen_osquery_flags(ctx: QueryContext) -> Iterator[tuple[object, ...]]:
    rt = _runtime(ctx)
    for flag, value in rt.flags.items():
        if flag.hidden:
            continue
        yield (flag.name, flag.type, flag.description, format_value(flag.default), format_value(value),
               int(flag.shell_only))


def gen_osquery_registry(ctx: QueryContext) -> Iterator[tuple[object, ...]]:
    rt = _runtime(ctx)
    for name in sorted(_table_names(ctx)):
        yield ("table", name, 0, 0, 1)
    for registry, names in sorted(rt.plugins.items()):
        for name in names:
            yield (registry, name, 0, 0, 1)


def _table_names(ctx: QueryContext) -> list[str]:
    from hostql.tables.registry import platform_specs

    return list(platform_specs())


def gen_osquery_extensions(ctx: QueryContext) -> Iterator[tuple[object, ...]]:
    from hostql import OSQUERY_VERSION

    rt = _runtime(ctx)
    socket = str(rt.flags.get("extensions_socket"))
    yield (0, "core", OSQUERY_VERSION, "0.0.0", socket, "core")
    for ext in rt.extensions:
        yield (ext.uuid, ext.name, ext.version, ext.sdk_version, ext.path, ext.type)


def gen_osquery_schedule(ctx: QueryContext) -> Iterator[tuple[object, ...]]:
    for q in _runtime(ctx).schedule:
        yield (q.name, q.query, q.interval, q.executions, q.last_executed, int(q.denylisted), q.output_size,
               q.wall_time, q.wall_time_ms, q.last_wall_time_ms, q.user_time, q.last_user_time,
               q.system_time, q.last_system_time, q.average_memory, q.last_memory)


def gen_osquery_packs(ctx: QueryContext) -> Iterator[tuple[object, ...]]:
    for p in _runtime(ctx).packs:
        yield (p.name, p.platform, p.version, p.shard, p.discovery_cache_hits, p.discovery_executions,
               int(p.active))


def gen_osquery_events(ctx: QueryContext) -> Iterator[tuple[object, ...]]:
    # No event publishers exist yet; the agent's event framework fills this in.
    return iter(())
