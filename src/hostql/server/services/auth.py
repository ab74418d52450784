"""Passwords, sessions and login rate limiting.

* Passwords are hashed with argon2id; the policy is Fleet's: at least 12
  characters with a digit and a symbol (at most 48, as Fleet).
* A session is a random 64-byte URL-safe token handed to the client once; only
  its SHA-256 is stored.  Sessions expire after ``settings.session_duration``
  (5 days by default); API-only users' sessions never expire.
* Login attempts are limited per caller IP and email with a fixed window held
  in memory behind the :class:`RateLimiter` protocol (a Redis implementation
  can replace it on a multi-instance deployment).
"""

from __future__ import annotations

import math
import re
import secrets
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Protocol

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm.attributes import set_committed_value

from hostql.server.api.deps import token_hash
from hostql.server.errors import ValidationFailed
from hostql.server.storage.models import Session, User, utcnow

SESSION_KEY_BYTES = 64
DEFAULT_SESSION_DURATION = timedelta(days=5)
# A session's access time is written at most this often (each write is a transaction of its own).
ACCESS_RESOLUTION = timedelta(minutes=1)
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 48

# OWASP's argon2id baseline (19 MiB, 2 passes, 1 lane): about Fleet's bcrypt cost 12 in time, far
# harder on GPUs, and cheap enough that login floods do not starve the API of CPU.
_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
# Verifying against this keeps the time of "no such user" close to "wrong password".
_DUMMY_HASH = _hasher.hash("not a real password 1!")


# --- passwords ---------------------------------------------------------------------


def password_problems(password: str) -> list[str]:
    """Why ``password`` breaks the policy (empty when it is acceptable)."""
    problems = []
    if len(password) < MIN_PASSWORD_LENGTH:
        problems.append(f"Password must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        problems.append(f"Password must be at most {MAX_PASSWORD_LENGTH} characters")
    if not re.search(r"\d", password):
        problems.append("Password must contain a number")
    if not re.search(r"[^\w\s]|_", password):
        problems.append("Password must contain a symbol")
    return problems


def check_password_policy(password: str, field: str = "password") -> None:
    problems = password_problems(password)
    if problems:
        raise ValidationFailed(errors=[{"name": field, "reason": problem} for problem in problems])


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether ``password`` matches; hashes made with other argon2 parameters verify too."""
    if not password_hash:
        _verify_dummy(password)
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    try:
        return _hasher.check_needs_rehash(password_hash)
    except (InvalidHashError, ValueError):
        return True


def _verify_dummy(password: str) -> None:
    try:
        _hasher.verify(_DUMMY_HASH, password)
    except VerificationError:
        pass


def authenticate(session: OrmSession, email: str, password: str) -> User | None:
    """The enabled user with this email and password, else ``None`` (constant-ish time)."""
    user = session.scalars(select(User).where(func.lower(User.email) == email.strip().lower())).first()
    if user is None:
        _verify_dummy(password)
        return None
    if not verify_password(user.password_hash, password) or user.disabled:
        return None
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


# --- sessions ----------------------------------------------------------------------


def session_duration(settings: Any) -> timedelta:
    """``settings.session_duration`` as a timedelta (seconds or a timedelta accepted)."""
    value = getattr(settings, "session_duration", None)
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return timedelta(seconds=value)
    return DEFAULT_SESSION_DURATION


def new_token() -> str:
    return secrets.token_urlsafe(SESSION_KEY_BYTES)


def create_session(session: OrmSession, user: User, settings: Any = None) -> tuple[str, Session]:
    """Start a session for ``user``; returns the bearer token (shown once) and the row."""
    token = new_token()
    now = utcnow()
    expires = None if user.api_only else now + session_duration(settings)
    row = Session(key_hash=token_hash(token), user_id=user.id, created_at=now, accessed_at=now, expires_at=expires)
    session.add(row)
    session.flush()
    return token, row


def valid_session(database: Any, session: OrmSession, token: str) -> Session | None:
    """The unexpired session for ``token``, else ``None``.  Read only in ``session`` (the
    request's); the use is recorded by :func:`_note_use` in a transaction of its own."""
    row = session.scalars(select(Session).where(Session.key_hash == token_hash(token))).first() if token else None
    _note_use(database, row)
    return None if row is None or _expired(row) else row


def _expired(row: Session) -> bool:
    return row.expires_at is not None and row.expires_at <= utcnow()


def _note_use(database: Any, row: Session | None) -> None:
    """Delete ``row`` when it has expired, else refresh its access time (at most once per
    :data:`ACCESS_RESOLUTION`): in a short transaction of its own.

    Never in the request's own transaction: a request runs its dependencies and its endpoint
    on different worker threads, and one that held SQLite's write lock while it waited for a
    free worker deadlocked a busy server whose every worker waited for that lock.
    """
    if row is None:
        return
    moment = utcnow()
    if _expired(row):
        with database.session() as own:
            own.execute(delete(Session).where(Session.id == row.id))
        return
    if row.accessed_at is not None and moment - row.accessed_at < ACCESS_RESOLUTION:
        return
    with database.session() as own:
        own.execute(update(Session).where(Session.id == row.id).values(accessed_at=moment))
    set_committed_value(row, "accessed_at", moment)  # shown as is; not a change for the caller's session


def delete_user_sessions(session: OrmSession, user_id: int) -> int:
    result = session.execute(delete(Session).where(Session.user_id == user_id))
    return int(getattr(result, "rowcount", 0) or 0)


def user_sessions(session: OrmSession, user_id: int) -> list[Session]:
    return list(session.scalars(select(Session).where(Session.user_id == user_id).order_by(Session.id)))


def session_dict(row: Session) -> dict[str, Any]:
    """Fleet's session shape (the key itself is never shown again)."""
    from hostql.server.services.users import iso

    return {"id": row.id, "user_id": row.user_id, "created_at": iso(row.created_at),
            "accessed_at": iso(row.accessed_at), "expires_at": iso(row.expires_at) if row.expires_at else None}


# --- login rate limiting -------------------------------------------------------------


class RateLimiter(Protocol):
    """Counts attempts per key within a window."""

    def retry_after(self, key: str) -> int | None:
        """Seconds to wait when ``key`` is over its limit, else ``None``."""

    def hit(self, key: str) -> None:
        """Count one (failed) attempt."""

    def reset(self, key: str) -> None:
        """Forget ``key`` (after a successful login)."""


class MemoryRateLimiter:
    """A fixed-window counter per key, in this process's memory."""

    def __init__(self, limit: int = 10, window: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[float, int]] = {}

    def _current(self, key: str, now: float) -> tuple[float, int]:
        start, count = self._windows.get(key, (now, 0))
        if now - start >= self.window:
            return now, 0
        return start, count

    def retry_after(self, key: str) -> int | None:
        with self._lock:
            now = self.clock()
            start, count = self._current(key, now)
            if count < self.limit:
                return None
            return max(1, math.ceil(start + self.window - now))

    def hit(self, key: str) -> None:
        with self._lock:
            now = self.clock()
            start, count = self._current(key, now)
            self._windows[key] = (start, count + 1)
            if len(self._windows) > 100_000:  # bound memory under a spray of keys
                cutoff = now - self.window
                self._windows = {k: v for k, v in self._windows.items() if v[0] > cutoff}

    def reset(self, key: str) -> None:
        with self._lock:
            self._windows.pop(key, None)


def login_limiter(extras: dict[str, Any], settings: Any = None) -> RateLimiter:
    """The process's login limiter, kept in ``ServerState.extras`` (created on first use)."""
    limiter = extras.get("login_rate_limiter")
    if limiter is None:
        limit = getattr(settings, "login_rate_limit", None)
        window = getattr(settings, "login_rate_window", None)
        limiter = MemoryRateLimiter(
            limit=limit if isinstance(limit, int) and limit > 0 else 10,
            window=float(window) if isinstance(window, int | float) and window > 0 else 60.0,
        )
        extras["login_rate_limiter"] = limiter
    result: RateLimiter = limiter
    return result


def login_key(ip: str, email: str) -> str:
    return f"login:{ip}:{email.strip().lower()}"
