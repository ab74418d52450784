"""The audit log: every change and every live query becomes an activity."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session as OrmSession

from hostql.server.storage.models import Activity, User


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
