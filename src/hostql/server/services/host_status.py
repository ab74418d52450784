"""Host status by Fleet's rules (fleet-reference §2.8), in Python and as SQL filters.

* **online**: seen within ``min(distributed_interval, config_tls_refresh) + 60 s``.
  An interval of 0 means "not reported yet" and is left out of the minimum;
  with neither known the window is the 60 s buffer alone.
* **offline**: not online (a missing host is also offline when filtering).
* **missing**: not seen for 30 days (Fleet's "mia").
* **new**: first enrolled (``created_at``) within the last 24 hours; independent of
  the others, so a host can be new and online.

:func:`host_status` gives the single status Fleet shows for a host (missing,
else offline, else online); :func:`status_filter` gives a SQLAlchemy condition
for ``online``/``offline``/``new``/``missing``/``mia`` that works on SQLite,
PostgreSQL and MySQL.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, Float, and_, case, literal, not_
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from hostql.server.storage.models import Host

ONLINE_BUFFER = 60  # seconds
MISSING_AFTER = timedelta(days=30)
NEW_FOR = timedelta(days=1)
STATUSES = ("online", "offline", "new", "missing", "mia")


def online_window(distributed_interval: int, config_tls_refresh: int) -> int:
    """Seconds since the last check-in during which a host counts as online."""
    known = [value for value in (distributed_interval, config_tls_refresh) if value and value > 0]
    return (min(known) if known else 0) + ONLINE_BUFFER


def is_online(host: Host, now: datetime, seen_time: datetime | None = None) -> bool:
    seen = seen_time or host.seen_time
    window = online_window(host.distributed_interval, host.config_tls_refresh)
    return now - seen < timedelta(seconds=window)


def is_missing(host: Host, now: datetime, seen_time: datetime | None = None) -> bool:
    return now - (seen_time or host.seen_time) >= MISSING_AFTER


def is_new(host: Host, now: datetime) -> bool:
    return now - host.created_at < NEW_FOR


def host_status(host: Host, now: datetime, seen_time: datetime | None = None) -> str:
    """``missing``, ``offline`` or ``online`` (pass a fresher ``seen_time`` if known)."""
    if is_missing(host, now, seen_time):
        return "missing"
    return "online" if is_online(host, now, seen_time) else "offline"


class seconds_between(FunctionElement[float]):
    """``later - earlier`` in seconds, compiled per dialect."""

    type = Float()
    inherit_cache = True
    name = "seconds_between"


@compiles(seconds_between)
def _seconds_generic(element: seconds_between, compiler: Any, **kw: Any) -> str:
    earlier, later = list(element.clauses)
    return f"((julianday({compiler.process(later, **kw)}) - julianday({compiler.process(earlier, **kw)})) * 86400.0)"


@compiles(seconds_between, "postgresql")
def _seconds_pg(element: seconds_between, compiler: Any, **kw: Any) -> str:
    earlier, later = list(element.clauses)
    return f"EXTRACT(EPOCH FROM ({compiler.process(later, **kw)} - {compiler.process(earlier, **kw)}))"


@compiles(seconds_between, "mysql")
@compiles(seconds_between, "mariadb")
def _seconds_mysql(element: seconds_between, compiler: Any, **kw: Any) -> str:
    earlier, later = list(element.clauses)
    return f"TIMESTAMPDIFF(MICROSECOND, {compiler.process(earlier, **kw)}, {compiler.process(later, **kw)}) / 1000000.0"


def _window_expr() -> ColumnElement[Any]:
    di, ctr = Host.distributed_interval, Host.config_tls_refresh
    least = case(
        (and_(di > 0, ctr > 0, di <= ctr), di),
        (and_(di > 0, ctr > 0), ctr),
        (di > 0, di),
        (ctr > 0, ctr),
        else_=0,
    )
    return least + ONLINE_BUFFER


def online_filter(now: datetime) -> ColumnElement[bool]:
    now_param = literal(now, DateTime())
    return seconds_between(Host.seen_time, now_param) < _window_expr()


def status_filter(status: str, now: datetime) -> ColumnElement[bool]:
    """A WHERE condition on ``Host`` for one of :data:`STATUSES`; ValueError otherwise."""
    if status == "online":
        return online_filter(now)
    if status == "offline":
        return not_(online_filter(now))
    if status in ("missing", "mia"):
        return Host.seen_time <= now - MISSING_AFTER
    if status == "new":
        return Host.created_at > now - NEW_FOR
    raise ValueError(f"unknown host status {status!r}; expected one of {', '.join(STATUSES)}")


def summary_filters(now: datetime) -> dict[str, ColumnElement[bool]]:
    """Conditions for the host summary counts (online, offline, new, missing_30_days)."""
    return {
        "online": status_filter("online", now),
        "offline": status_filter("offline", now),
        "new": status_filter("new", now),
        "missing_30_days": status_filter("missing", now),
    }
