"""The audit log: every change and every live query becomes an activity.

Other services call :func:`record_activity` in the same database session as
the change itself, so the activity is committed (or rolled back) with it.
Use Fleet's type names (``created_saved_query``, ``edited_saved_query``,
``deleted_saved_query``, ``created_policy``, ``created_team``,
``transferred_hosts``, ``edited_agent_options``, ``live_query`` with
``{"targets_count": n}``, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session as OrmSession

from hostql.server.errors import ValidationFailed
from hostql.server.storage.models import Activity, User

ORDER_KEYS = {"created_at": Activity.created_at, "id": Activity.id, "type": Activity.type}


def record_activity(
    session: OrmSession, user: User | None, type_: str, details: dict[str, Any] | None = None
) -> Activity:
    """Add an activity (Fleet's type names, e.g. ``created_saved_query``, ``live_query``)."""
    activity = Activity(
        user_id=user.id if user is not None else None,
        user_name=user.name if user is not None else "",
        user_email=user.email if user is not None else "",
        type=type_,
        details=details or {},
    )
    session.add(activity)
    return activity


def activity_dict(activity: Activity) -> dict[str, Any]:
    """Fleet's activity object."""
    return {
        "id": activity.id,
        "created_at": activity.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "actor_full_name": activity.user_name or None,
        "actor_id": activity.user_id,
        "actor_gravatar": "",
        "actor_email": activity.user_email or None,
        "type": activity.type,
        "fleet_initiated": activity.user_id is None and not activity.user_name,
        "details": activity.details or {},
    }


@dataclass
class ActivityPage:
    activities: list[Activity]
    has_next: bool
    has_previous: bool


def list_activities(
    session: OrmSession, *, page: int = 0, per_page: int = 100, order_key: str = "created_at",
    descending: bool = True, type_: str | None = None,
) -> ActivityPage:
    """One page of activities plus whether pages exist before and after it."""
    column = ORDER_KEYS.get(order_key)
    if column is None:
        raise ValidationFailed(f"cannot order by {order_key!r}", name="order_key")
    stmt = select(Activity)
    if type_:
        stmt = stmt.where(Activity.type == type_)
    order = column.desc() if descending else column.asc()
    tie = Activity.id.desc() if descending else Activity.id.asc()
    rows = list(session.scalars(stmt.order_by(order, tie).offset(page * per_page).limit(per_page + 1)))
    return ActivityPage(activities=rows[:per_page], has_next=len(rows) > per_page, has_previous=page > 0)
