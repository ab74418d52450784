"""Engines and sessions for SQLite (default), PostgreSQL and MySQL/MariaDB."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Self, cast

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from hostql.server import fastjson
from hostql.server.storage.models import Base


class DatabaseError(ValueError):
    """A database URL or connection the server cannot use."""


def normalise_url(url: str) -> str:
    """Accept the short forms users type and pick the drivers we ship."""
    if url.startswith(("postgres://", "postgresql://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith(("mysql://", "mariadb://")):
        return "mysql+pymysql://" + url.split("://", 1)[1]
    return url


SQLITE_BUSY_TIMEOUT = 10.0
# How long a writer waits for this process's SQLite write lock before trying anyway
# (SQLite's own busy timeout then still applies, so a stuck holder cannot hang writers).
SQLITE_WRITE_LOCK_WAIT = 120.0
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLAC")


# MySQL/MariaDB deadlock and lock wait timeout; PostgreSQL deadlock_detected and serialization_failure.
TRANSIENT_MYSQL = (1213, 1205)
TRANSIENT_POSTGRES = ("40P01", "40001")


def is_transient(exc: BaseException) -> bool:
    """True for a database error that a retry of the whole transaction cures (a deadlock victim)."""
    orig = getattr(exc, "orig", None) or exc
    args: tuple[Any, ...] = tuple(getattr(orig, "args", ()) or ())
    return (bool(args) and args[0] in TRANSIENT_MYSQL) or getattr(orig, "sqlstate", None) in TRANSIENT_POSTGRES


def _is_write(statement: str) -> bool:
    return statement.lstrip()[:6].upper() in _WRITES


class _SerializedWrites(sqlite3.Connection):
    """A pysqlite connection that takes its database's in-process write lock before its first write.

    SQLite allows one writer at a time.  Its busy handler makes the others sleep and
    poll, unfairly: under an enroll storm (or big software writes) some writer polled
    past ``busy_timeout`` and failed with "database is locked" (an HTTP 500).  Queuing
    the writers of this process on a lock instead means each one finds SQLite's write
    lock free.  pysqlite opens its transaction (BEGIN) just before the first
    INSERT/UPDATE/DELETE/REPLACE, so the lock covers exactly the write transaction; it is
    released when the transaction ends (commit, rollback, close).  Readers never wait (WAL).
    """

    write_lock: threading.Lock | None = None
    holds_write_lock = False

    def cursor(self, factory: Any = None) -> Any:  # type: ignore[override]
        return super().cursor(factory or _SerializedCursor)

    def before_write(self) -> None:
        if self.write_lock is not None and not self.holds_write_lock:
            self.holds_write_lock = self.write_lock.acquire(timeout=SQLITE_WRITE_LOCK_WAIT)

    def _release(self) -> None:
        if self.holds_write_lock and self.write_lock is not None:
            self.holds_write_lock = False
            self.write_lock.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self._release()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._release()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._release()


class _SerializedCursor(sqlite3.Cursor):
    def execute(self, sql: str, parameters: Any = (), /) -> Self:
        if _is_write(sql):
            cast(_SerializedWrites, self.connection).before_write()
        return super().execute(sql, parameters)

    def executemany(self, sql: str, seq_of_parameters: Iterable[Any], /) -> Self:
        if _is_write(sql):
            cast(_SerializedWrites, self.connection).before_write()
        return super().executemany(sql, seq_of_parameters)


def _sqlite_setup(write_lock: threading.Lock, busy_timeout: float) -> Any:
    def setup(dbapi_connection: Any, record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # WAL lets API readers run while agents write; foreign keys are off by default in SQLite.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cursor.close()
        if isinstance(dbapi_connection, _SerializedWrites):
            dbapi_connection.write_lock = write_lock

    return setup


class Database:
    """One engine and its session factory."""

    def __init__(self, url: str, *, echo: bool = False, sqlite_busy_timeout: float = SQLITE_BUSY_TIMEOUT) -> None:
        try:
            parsed = make_url(normalise_url(url))
        except Exception as exc:
            raise DatabaseError(f"malformed database URL {url!r}: {exc}") from None
        self.url = parsed
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if parsed.get_backend_name() == "sqlite":
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": sqlite_busy_timeout,
                                      "factory": _SerializedWrites}
        else:
            kwargs["pool_pre_ping"] = True
            kwargs["pool_size"] = 10
            kwargs["max_overflow"] = 20
        # JSON columns are written with the fast encoder (compact UTF-8; read by any JSON parser).
        kwargs.setdefault("json_serializer", fastjson.dumps_str)
        self.engine: Engine = create_engine(parsed, **kwargs)
        self.write_lock: threading.Lock | None = None
        if parsed.get_backend_name() == "sqlite":
            # One writer lock per database per process: see _SerializedWrites.
            self.write_lock = threading.Lock()
            event.listen(self.engine, "connect", _sqlite_setup(self.write_lock, sqlite_busy_timeout))
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def backend(self) -> str:
        return self.url.get_backend_name()

    def create_all(self) -> None:
        """Create every table directly (tests); production uses migrations."""
        Base.metadata.create_all(self.engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed at the end of the block, rolled back on error."""
        session = self.sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()
