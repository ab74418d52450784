"""The global settings document (Fleet's app config), kept in one ``app_config_json`` row.

:func:`load` returns the stored document laid over :data:`DEFAULTS`;
:func:`apply_patch` validates a ``PATCH /api/v1/fleet/config`` body and merges
it (objects are merged key by key, ``agent_options`` is replaced whole, as in
Fleet); :func:`save` stores it.
"""

from __future__ import annotations

import copy
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session as OrmSession

from hostql.server.errors import ValidationFailed
from hostql.server.storage.changes import ChangeCache
from hostql.server.storage.models import AppConfig

DEFAULT_AGENT_OPTIONS: dict[str, Any] = {
    "config": {
        "options": {
            "logger_plugin": "tls",
            "pack_delimiter": "/",
            "logger_tls_period": 10,
            "distributed_plugin": "tls",
            "disable_distributed": False,
            "logger_tls_endpoint": "/api/osquery/log",
            "distributed_interval": 10,
            "distributed_tls_max_attempts": 3,
        },
        "decorators": {
            "load": ["SELECT uuid AS host_uuid FROM system_info;", "SELECT hostname AS hostname FROM system_info;"]
        },
    },
    "overrides": {},
}

# Sections a PATCH may change, with the keys each accepts (None: any key, e.g. free-form objects).
EDITABLE: dict[str, frozenset[str] | None] = {
    "org_info": frozenset({"org_name", "org_logo_url", "org_logo_url_light_background", "contact_url"}),
    "server_settings": frozenset({"server_url", "live_query_disabled", "query_reports_disabled", "enable_analytics",
                                  "deferred_save_host", "query_report_cap", "scripts_disabled",
                                  "ai_features_disabled"}),
    "host_expiry_settings": frozenset({"host_expiry_enabled", "host_expiry_window"}),
    "activity_expiry_settings": frozenset({"activity_expiry_enabled", "activity_expiry_window"}),
    "features": frozenset({"enable_host_users", "enable_software_inventory", "additional_queries",
                           "detail_query_overrides"}),
    "agent_options": None,
    "smtp_settings": None,
    "sso_settings": None,
    "webhook_settings": None,
    "integrations": None,
    "fleet_desktop": None,
}
# Shown by GET, ignored when sent back in a PATCH (``fleetctl get config`` output re-applied).
READ_ONLY = frozenset({"license", "logging", "update_interval", "vulnerabilities", "version"})

DEFAULTS: dict[str, Any] = {
    "org_info": {"org_name": "", "org_logo_url": "", "org_logo_url_light_background": "", "contact_url": ""},
    "server_settings": {"server_url": "", "live_query_disabled": False, "query_reports_disabled": False,
                        "enable_analytics": False, "deferred_save_host": False, "query_report_cap": 1000,
                        "scripts_disabled": False, "ai_features_disabled": False},
    "host_expiry_settings": {"host_expiry_enabled": False, "host_expiry_window": 0},
    "activity_expiry_settings": {"activity_expiry_enabled": False, "activity_expiry_window": 0},
    "features": {"enable_host_users": True, "enable_software_inventory": True, "additional_queries": None,
                 "detail_query_overrides": None},
    "agent_options": DEFAULT_AGENT_OPTIONS,
    "smtp_settings": {"enable_smtp": False, "configured": False, "sender_address": "", "server": "", "port": 587,
                      "authentication_type": "authtype_username_password", "user_name": "", "password": "",
                      "enable_ssl_tls": True, "authentication_method": "authmethod_plain",
                      "domain": "", "verify_ssl_certs": True, "enable_start_tls": True},
    "sso_settings": {"enable_sso": False, "entity_id": "", "idp_name": "", "metadata_url": "", "metadata": ""},
    "webhook_settings": {
        "interval": "24h0m0s",
        "host_status_webhook": {"enable_host_status_webhook": False, "destination_url": "",
                                "host_percentage": 0, "days_count": 0},
        "failing_policies_webhook": {"enable_failing_policies_webhook": False, "destination_url": "",
                                     "policy_ids": [], "host_batch_size": 0},
    },
    "integrations": {"jira": None, "zendesk": None},
    "fleet_desktop": {"transparency_url": ""},
}
SECRET_FIELDS = (("smtp_settings", "password"),)
MASK = "********"


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _row(session: OrmSession) -> AppConfig | None:
    return session.scalars(select(AppConfig).order_by(AppConfig.id)).first()


CACHE_TTL = 1.0  # seconds the agent paths reuse the stored document; changes in this process end it at once
_documents: ChangeCache[dict[str, Any]] = ChangeCache((AppConfig,), CACHE_TTL)


def cached_document(session: OrmSession) -> dict[str, Any]:
    """The stored document for the agent hot paths (config fetches, writes, logs): read at
    most once per :data:`CACHE_TTL` per process instead of once per request (an ORM load
    and a JSON parse of the whole document each time).  A change made through the ORM in
    this process is seen at once, other processes' within the TTL.  Shared: callers must
    not change it (copy what they change)."""

    def load() -> dict[str, Any]:
        row = session.execute(select(AppConfig.json_value).order_by(AppConfig.id).limit(1)).first()
        return row[0] if row is not None and isinstance(row[0], dict) else {}

    return _documents.get(session.get_bind(), None, load)


def stored(session: OrmSession) -> dict[str, Any]:
    row = _row(session)
    return dict(row.json_value) if row is not None and isinstance(row.json_value, dict) else {}


def load(session: OrmSession) -> dict[str, Any]:
    """The app config: the stored document over the defaults (``agent_options`` as stored)."""
    data = stored(session)
    merged = _merge(DEFAULTS, {k: v for k, v in data.items() if k != "agent_options"})
    if isinstance(data.get("agent_options"), dict):
        merged["agent_options"] = copy.deepcopy(data["agent_options"])
    return merged


def save(session: OrmSession, document: dict[str, Any]) -> None:
    row = _row(session)
    if row is None:
        session.add(AppConfig(json_value=document))
    else:
        row.json_value = document
    session.flush()


def _type_name(value: Any) -> str:
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list",
            dict: "an object"}.get(type(value), type(value).__name__)


def validate_patch(patch: Any) -> dict[str, Any]:
    """The editable part of ``patch``; raises 422 naming the first unknown or mistyped field."""
    if not isinstance(patch, dict):
        raise ValidationFailed("the body must be a JSON object", name="base")
    out: dict[str, Any] = {}
    for key, value in patch.items():
        if key in READ_ONLY:
            continue
        if key not in EDITABLE:
            raise ValidationFailed(f"unsupported key provided: {key!r}", name=key)
        if not isinstance(value, dict):
            if value is None and key != "agent_options":
                continue
            raise ValidationFailed(f"{key} must be an object", name=key)
        allowed = EDITABLE[key]
        defaults = DEFAULTS.get(key, {})
        if allowed is not None:
            for sub, sub_value in value.items():
                field = f"{key}.{sub}"
                if sub not in allowed:
                    raise ValidationFailed(f"unsupported key provided: {field!r}", name=field)
                expected = defaults.get(sub)
                if expected is None or (sub_value is None and not isinstance(expected, bool)):
                    continue
                same = isinstance(sub_value, type(expected)) and not (
                    isinstance(sub_value, bool) and not isinstance(expected, bool))
                if isinstance(expected, int | float) and not isinstance(expected, bool):
                    same = isinstance(sub_value, int | float) and not isinstance(sub_value, bool)
                if not same:
                    raise ValidationFailed(f"{field} must be {_type_name(expected)}", name=field)
        if key == "agent_options" and "config" in value and not isinstance(value["config"], dict):
            raise ValidationFailed("agent_options.config must be an object", name="agent_options.config")
        out[key] = value
    return out


def apply_patch(session: OrmSession, patch: Any, *, dry_run: bool = False) -> tuple[dict[str, Any], set[str]]:
    """Validate and merge ``patch``; returns the new full config and the changed sections."""
    accepted = validate_patch(patch)
    document = stored(session)
    changed: set[str] = set()
    for key, value in accepted.items():
        new = copy.deepcopy(value) if key == "agent_options" else _merge(document.get(key) or {}, value)
        if document.get(key) != new:
            changed.add(key)
        document[key] = new
    if not dry_run and changed:
        save(session, document)
    full = _merge(DEFAULTS, {k: v for k, v in document.items() if k != "agent_options"})
    if isinstance(document.get("agent_options"), dict):
        full["agent_options"] = copy.deepcopy(document["agent_options"])
    return full, changed


def masked(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with secrets (SMTP password) hidden, for users who are not admins."""
    out = copy.deepcopy(config)
    for section, key in SECRET_FIELDS:
        if isinstance(out.get(section), dict) and out[section].get(key):
            out[section][key] = MASK
    return out
