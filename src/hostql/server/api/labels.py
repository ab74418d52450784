"""REST API: labels (``/api/v1/fleet/...``)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
