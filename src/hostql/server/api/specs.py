"""REST API: the ``/spec/*`` endpoints that ``fleetctl apply`` and ``fleetctl get`` use.

``POST`` applies a list of specs (create or update by name); ``GET`` returns
them in the same shape.  ``/spec/enroll_secret`` lives in ``api/teams.py``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from hostql.server.api.deps import CurrentUser, DbSession
from hostql.server.services import specs as spec_service
from hostql.server.services.authz import ADMIN, READ, WRITE, require, require_any
from hostql.server.storage.models import Label, Pack, Query

router = APIRouter(prefix="/api/v1/fleet/spec", tags=["specs"])


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def fields(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


class QuerySpec(_Spec):
    name: str
    query: str
    description: str = ""
    team: str | None = None
    interval: int = 0
    platform: str = ""
    min_osquery_version: str = ""
    automations_enabled: bool = False
    logging: str = "snapshot"
    observer_can_run: bool = False
    discard_data: bool = False


class LabelSpec(_Spec):
    name: str
    description: str = ""
    query: str = ""
    platform: str = ""
    label_membership_type: str | None = None
    hosts: list[str] | None = None
    id: int | None = None  # present in ``fleetctl get`` output; ignored
    label_type: str | None = None  # idem


class PolicySpec(_Spec):
    name: str
    query: str
    description: str = ""
    resolution: str = ""
    platform: str = ""
    critical: bool = False
    team: str | None = None
    calendar_events_enabled: bool = False


class PackQuerySpec(_Spec):
    query: str
    name: str | None = None
    description: str | None = None
    interval: int = 0
    snapshot: bool | None = None
    removed: bool | None = None
    platform: str | None = None
    version: str | None = None
    shard: int | None = None
    denylist: bool | None = None


class PackTargets(_Spec):
    labels: list[str] = []
    teams: list[str] = []


class PackSpec(_Spec):
    name: str
    description: str = ""
    platform: str = ""
    disabled: bool = False
    targets: PackTargets | None = None
    queries: list[PackQuerySpec] = []
    id: int | None = None  # present in ``fleetctl get`` output; ignored


class TeamSecret(BaseModel):
    model_config = ConfigDict(extra="ignore")
    secret: str


class TeamSpec(_Spec):
    name: str
    description: str = ""
    agent_options: dict[str, Any] | None = None
    secrets: list[TeamSecret] | None = None
    webhook_settings: dict[str, Any] | None = None
    features: dict[str, Any] | None = None
    host_expiry_settings: dict[str, Any] | None = None
    integrations: dict[str, Any] | None = None


class QuerySpecs(_Spec):
    specs: list[QuerySpec]


class LabelSpecs(_Spec):
    specs: list[LabelSpec]


class PolicySpecs(_Spec):
    specs: list[PolicySpec]


class PackSpecs(_Spec):
    specs: list[PackSpec]


class TeamSpecs(_Spec):
    specs: list[TeamSpec]


@router.post("/queries")
def apply_queries(session: DbSession, user: CurrentUser, body: QuerySpecs) -> dict[str, Any]:
    require(user, WRITE)
    spec_service.apply_queries(session, user, [s.fields() for s in body.specs])
    return {}


@router.get("/queries")
def get_queries(session: DbSession, user: CurrentUser) -> dict[str, Any]:
    require_any(user, READ)
    return {"specs": spec_service.query_specs(session)}


@router.get("/queries/{name}")
def get_query(session: DbSession, user: CurrentUser, name: str) -> dict[str, Any]:
    require_any(user, READ)
    return {"specs": spec_service.query_spec(session, spec_service.get_named(session, Query, name))}


@router.post("/labels")
def apply_labels(session: DbSession, user: CurrentUser, body: LabelSpecs) -> dict[str, Any]:
    require(user, WRITE)
    spec_service.apply_labels(session, user, [s.fields() for s in body.specs])
    return {}


@router.get("/labels")
def get_labels(session: DbSession, user: CurrentUser) -> dict[str, Any]:
    require_any(user, READ)
    return {"specs": spec_service.label_specs(session)}


@router.get("/labels/{name}")
def get_label(session: DbSession, user: CurrentUser, name: str) -> dict[str, Any]:
    require_any(user, READ)
    return {"specs": spec_service.label_spec(session, spec_service.get_named(session, Label, name))}


@router.post("/policies")
def apply_policies(session: DbSession, user: CurrentUser, body: PolicySpecs) -> dict[str, Any]:
    require(user, WRITE)
    spec_service.apply_policies(session, user, [s.fields() for s in body.specs])
    return {}


@router.get("/policies")
def get_policies(session: DbSession, user: CurrentUser) -> dict[str, Any]:
    require_any(user, READ)
    return {"specs": spec_service.policy_specs(session)}


@router.post("/packs")
def apply_packs(session: DbSession, user: CurrentUser, body: PackSpecs) -> dict[str, Any]:
    require(user, WRITE)
    specs = []
    for spec in body.specs:
        fields = spec.fields()
        fields["queries"] = [q.fields() for q in spec.queries]
        fields["targets"] = spec.targets.model_dump() if spec.targets is not None else {"labels": [], "teams": []}
        specs.append(fields)
    spec_service.apply_packs(session, user, specs)
    return {}


@router.get("/packs")
def get_packs(session: DbSession, user: CurrentUser) -> dict[str, Any]:
    require_any(user, READ)
    return {"specs": spec_service.pack_specs(session)}


@router.get("/packs/{name}")
def get_pack(session: DbSession, user: CurrentUser, name: str) -> dict[str, Any]:
    require_any(user, READ)
    return {"specs": spec_service.pack_spec(spec_service.get_named(session, Pack, name))}


@router.post("/teams")
def apply_teams(session: DbSession, user: CurrentUser, body: TeamSpecs, dry_run: bool = False,
                force: bool = False) -> dict[str, Any]:
    require(user, ADMIN)
    specs = []
    for spec in body.specs:
        fields = spec.fields()
        if spec.secrets is not None:
            fields["secrets"] = [{"secret": s.secret} for s in spec.secrets]
        specs.append(fields)
    applied = spec_service.apply_teams(session, user, specs)
    if dry_run:
        session.rollback()
    return {"team_ids_by_name": applied}
