"""Helpers shared by the list endpoints: paging, ordering, time format, clock.

Fleet's list endpoints take ``page`` (0-based), ``per_page``, ``order_key`` and
``order_direction`` (``asc``/``desc``).  Without ``page`` and ``per_page`` the
whole list is returned; ``page`` alone uses :data:`DEFAULT_PER_PAGE`.

The clock is injectable: ``state.extras["clock"]`` may hold a zero-argument
callable returning a naive UTC ``datetime``; tests use it to freeze time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select

from hostql.server.errors import ValidationFailed
from hostql.server.state import ServerState
from hostql.server.storage.models import utcnow

DEFAULT_PER_PAGE = 20
CLOCK_KEY = "clock"

S = TypeVar("S", bound=Select)  # type: ignore[type-arg]


def now(state: ServerState) -> datetime:
    """The current UTC time (naive), from the injected clock when there is one."""
    clock: Callable[[], datetime] | None = state.extras.get(CLOCK_KEY)
    return clock() if clock is not None else utcnow()


def iso(value: datetime | None) -> str | None:
    """Fleet's timestamp format: ``2021-01-19T17:08:31Z``."""
    if value is None:
        return None
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class ListOptions:
    page: int | None = None
    per_page: int | None = None
    order_key: str | None = None
    order_direction: str | None = None

    def __post_init__(self) -> None:
        if self.page is not None and self.page < 0:
            raise ValidationFailed("page must not be negative", name="page")
        if self.per_page is not None and self.per_page < 1:
            raise ValidationFailed("per_page must be positive", name="per_page")
        if self.order_direction not in (None, "", "asc", "desc"):
            raise ValidationFailed("order_direction must be asc or desc", name="order_direction")


def apply_list_options(
    stmt: S,
    options: ListOptions,
    columns: Mapping[str, Any],
    tiebreak: Any,
) -> S:
    """Order (by ``order_key`` among ``columns``, then ``tiebreak``) and page ``stmt``."""
    key = options.order_key or ""
    if key:
        column = columns.get(key)
        if column is None:
            raise ValidationFailed(f"invalid order key: {key}", name="order_key")
        ordered = column.desc() if options.order_direction == "desc" else column.asc()
        stmt = stmt.order_by(ordered, tiebreak.asc())
    else:
        stmt = stmt.order_by(tiebreak.desc() if options.order_direction == "desc" else tiebreak.asc())
    per_page = options.per_page
    if per_page is None and options.page is not None:
        per_page = DEFAULT_PER_PAGE
    if per_page is not None:
        stmt = stmt.limit(per_page).offset((options.page or 0) * per_page)
    return stmt


def list_options(page: int | None = None, per_page: int | None = None, order_key: str | None = None,
                 order_direction: str | None = None) -> ListOptions:
    """The paging/ordering query parameters (usable as a FastAPI dependency)."""
    return ListOptions(page=page, per_page=per_page, order_key=order_key, order_direction=order_direction)
