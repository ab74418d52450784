"""Checks run before the server accepts a request; each failure names its setting.

* :func:`check_database` connects once with a bounded timeout;
* :func:`check_migrations` refuses a database whose schema is behind (or ahead of) the code;
* :func:`check_redis` pings Redis;
* :func:`open_listener` binds the listening socket, so "address in use" is
  reported against ``listen`` before anything is printed.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from hostql.server.settings import Settings, SettingsError, redact_url
from hostql.server.storage.db import Database, DatabaseError, normalise_url

CONNECT_TIMEOUT = 10  # seconds, for the first database and Redis connections


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip() or type(orig).__name__
    return text.splitlines()[0]


def sqlite_path(url: str) -> Path | None:
    from sqlalchemy.engine import make_url

    parsed = make_url(normalise_url(url))
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def check_database(settings: Settings, *, create_sqlite_dir: bool = False) -> None:
    """Connect once to ``settings.db`` (bounded wait), or raise SettingsError."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    source = settings.source("db")
    path = sqlite_path(settings.db)
    if path is not None:
        if create_sqlite_dir:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise SettingsError("db", f"cannot create {path.parent}: {exc.strerror or exc}", source) from None
        elif not path.parent.is_dir():
            raise SettingsError("db", f"directory {path.parent} does not exist", source)
    url = normalise_url(settings.db)
    connect_args: dict[str, Any] = {}
    if url.startswith(("postgresql", "mysql")):
        connect_args["connect_timeout"] = CONNECT_TIMEOUT
    try:
        engine = create_engine(url, poolclass=NullPool, connect_args=connect_args)
    except Exception as exc:
        raise SettingsError("db", f"malformed database URL {redact_url(settings.db)!r}: {_reason(exc)}",
                            source) from None
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        raise SettingsError("db", f"cannot connect to {redact_url(settings.db)}: {_reason(exc)}", source) from None
    finally:
        engine.dispose()


def open_database(settings: Settings) -> Database:
    try:
        return Database(settings.db)
    except DatabaseError as exc:
        raise SettingsError("db", str(exc), settings.source("db")) from None


def check_migrations(settings: Settings, database: Database) -> None:
    from hostql.server.storage import migrate

    status = migrate.status(database)
    if status.up_to_date:
        return
    where = redact_url(settings.db)
    if status.unknown:
        raise SettingsError("db", f"the database at {where} has schema revision {', '.join(status.unknown)}, "
                                  "newer than this hostql knows: upgrade hostql", settings.source("db"))
    state = "is not initialised" if not status.current else \
        f"is at schema revision {', '.join(status.current)}, {len(status.pending)} migration(s) behind"
    raise SettingsError("db", f"the database at {where} {state}: run `hostql server prepare-db` with the same "
                              "--db (or HOSTQL_DB) first, or use --dev", settings.source("db"))


def check_redis(settings: Settings) -> None:
    if not settings.redis:
        return
    import redis

    try:
        client = redis.Redis.from_url(settings.redis, socket_connect_timeout=CONNECT_TIMEOUT,
                                      socket_timeout=CONNECT_TIMEOUT)
    except ValueError as exc:
        raise SettingsError("redis", f"malformed URL {redact_url(settings.redis)!r}: {exc}",
                            settings.source("redis")) from None
    try:
        client.ping()
    except redis.RedisError as exc:
        raise SettingsError("redis", f"cannot connect to {redact_url(settings.redis)}: {_reason(exc)}",
                            settings.source("redis")) from None
    finally:
        client.close()


def open_listener(settings: Settings) -> socket.socket:
    """A bound, listening TCP socket for ``settings.listen``."""
    host, port = settings.host, settings.port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and host == "::":
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((host or "0.0.0.0", port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise SettingsError("listen", f"cannot listen on {settings.listen}: {exc.strerror or exc}",
                            settings.source("listen")) from None
    sock.set_inheritable(True)
    return sock
