"""The osquery TLS API agents talk to (``/api/osquery/*`` and ``/api/v1/osquery/*``)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
