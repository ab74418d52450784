"""Agent enrollment: enroll secret -> node key, one host row per identifier.

* The secret is compared in constant time against every stored secret (global
  ones have no team; a team secret puts the host in that team).
* The host is identified per the ``osquery_host_identifier`` setting
  (Fleet's ``osquery.host_identifier``): ``provided`` (default; the request's
  ``host_identifier``), ``uuid`` (``osquery_info.uuid``, else
  ``system_info.uuid``), ``hostname`` (``system_info.hostname``) or
  ``instance`` (``osquery_info.instance_id``).  Use ``instance`` when cloned
  machines share a hardware UUID: each osquery instance then gets its own host
  instead of the clones flapping over one row.
* Re-enrolling with a known identifier reuses the row and replaces its node
  key; the old key stops working at once (the node-key cache is invalidated).
* ``enroll_cooldown`` (seconds, default 0) refuses a re-enroll of the same
  identifier sooner than that after the previous one.
"""

from __future__ import annotations

import hmac
import secrets as secrets_module
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hostql.server.services.detail_queries import IngestContext, ingest_enroll_details
from hostql.server.storage.models import EnrollSecret, Host, utcnow

IDENTIFIERS = ("provided", "uuid", "hostname", "instance")


class EnrollFailed(Exception):
    """Enrollment refused; the message goes to the agent as ``enroll failed: <message>``."""


@dataclass(frozen=True)
class Enrolled:
    host_id: int
    node_key: str
    old_node_key: str | None
    team_id: int | None


def match_secret(session: Session, given: str) -> EnrollSecret | None:
    """The stored secret equal to ``given``; every candidate is compared in constant time."""
    found: EnrollSecret | None = None
    given_bytes = given.encode("utf-8")
    for candidate in session.scalars(select(EnrollSecret)):
        if hmac.compare_digest(candidate.secret.encode("utf-8"), given_bytes) and found is None:
            found = candidate
    return found


def _detail(details: dict[str, Any], table: str, column: str) -> str:
    row = details.get(table)
    value = row.get(column) if isinstance(row, dict) else None
    return str(value).strip() if value is not None else ""


def host_identifier(mode: str, body: dict[str, Any]) -> str:
    """The identifier ``mode`` picks from an enroll request ("" when absent)."""
    details = body.get("host_details") if isinstance(body.get("host_details"), dict) else {}
    details = details or {}
    provided = str(body.get("host_identifier") or "").strip()
    if mode == "uuid":
        return _detail(details, "osquery_info", "uuid") or _detail(details, "system_info", "uuid") or provided
    if mode == "hostname":
        return _detail(details, "system_info", "hostname") or provided
    if mode == "instance":
        return _detail(details, "osquery_info", "instance_id") or provided
    return provided


def new_node_key(size: int = 24) -> str:
    return secrets_module.token_urlsafe(size)


def enroll(session: Session, body: dict[str, Any], *, identifier_mode: str = "provided", cooldown: float = 0,
           node_key_size: int = 24, now: datetime | None = None) -> Enrolled:
    """Enroll (or re-enroll) the agent that sent ``body``; raises EnrollFailed."""
    now = now or utcnow()
    secret = body.get("enroll_secret")
    if not isinstance(secret, str) or not secret:
        raise EnrollFailed("missing enroll secret")
    matched = match_secret(session, secret)
    if matched is None:
        raise EnrollFailed("invalid secret")
    if identifier_mode not in IDENTIFIERS:
        raise EnrollFailed(f"server misconfigured: unknown host identifier {identifier_mode!r}")
    identifier = host_identifier(identifier_mode, body)
    if not identifier:
        raise EnrollFailed(f"missing host identifier ({identifier_mode})")
    host = session.scalars(select(Host).where(Host.osquery_host_id == identifier).order_by(Host.id)).first()
    old_key: str | None = None
    if host is None:
        host = Host(osquery_host_id=identifier, created_at=now, seen_time=now)
        session.add(host)
    else:
        if cooldown > 0 and now - host.last_enrolled_at < timedelta(seconds=cooldown):
            raise EnrollFailed(f"host re-enrolled too soon; cooldown {int(cooldown)} s")
        old_key = host.node_key
    host.node_key = new_node_key(node_key_size)
    host.team_id = matched.team_id
    host.last_enrolled_at = now
    host.seen_time = now
    session.flush()
    details = body.get("host_details")
    if isinstance(details, dict):
        ingest_enroll_details(IngestContext(session=session, host=host, now=now), details)
    if not host.hostname:
        host.hostname = _detail(details if isinstance(details, dict) else {}, "system_info", "hostname")
    session.flush()
    return Enrolled(host_id=host.id, node_key=host.node_key or "", old_node_key=old_key, team_id=host.team_id)
