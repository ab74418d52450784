"""Errors in Fleet's shape: ``{"message": ..., "errors": [{"name", "reason"}], "uuid"}``."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class FleetError(Exception):
    """An error answered with ``status`` and Fleet's JSON error body."""

    status = 500
    message = "Internal server error"

    def __init__(self, reason: str = "", *, name: str = "base", message: str | None = None,
                 status: int | None = None, errors: list[dict[str, str]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(reason or message or self.message)
        self.headers = headers or {}
        if message is not None:
            self.message = message
        if status is not None:
            self.status = status
        self.errors = errors if errors is not None else ([{"name": name, "reason": reason}] if reason else [])

    def body(self) -> dict[str, Any]:
        return {"message": self.message, "errors": self.errors, "uuid": str(uuid.uuid4())}


class BadRequest(FleetError):
    status = 400
    message = "Bad request"


class AuthenticationRequired(FleetError):
    status = 401
    message = "Authentication required"


class Forbidden(FleetError):
    status = 403
    message = "forbidden"


class NotFound(FleetError):
    status = 404
    message = "Resource Not Found"


class Conflict(FleetError):
    status = 409
    message = "Resource Already Exists"


class ValidationFailed(FleetError):
    status = 422
    message = "Validation Failed"


class TooManyRequests(FleetError):
    status = 429
    message = "Too many requests"


def _field_name(loc: tuple[Any, ...]) -> str:
    """``("body", "teams", 0, "role")`` -> ``teams.0.role``; a field may itself be called "query"."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    return ".".join(parts) or "body"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(FleetError)
    async def fleet_error(request: Request, exc: FleetError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers or None)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"name": _field_name(tuple(e.get("loc", ()))), "reason": str(e.get("msg", "invalid"))}
                  for e in exc.errors()]
        status = 400 if any(e.get("type") == "json_invalid" for e in exc.errors()) else 422
        message = "Bad request" if status == 400 else "Validation Failed"
        return JSONResponse({"message": message, "errors": errors, "uuid": str(uuid.uuid4())}, status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = {404: "Resource Not Found", 405: "Method Not Allowed"}.get(exc.status_code, str(exc.detail))
        return JSONResponse({"message": message, "errors": [{"name": "base", "reason": str(exc.detail)}],
                             "uuid": str(uuid.uuid4())}, status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("Unhandled error on %s %s", request.method, request.url.path)
        return internal_error_response()


def internal_error_response() -> JSONResponse:
    """The 500 answer to an unexpected error (logged by the caller)."""
    return JSONResponse({"message": "Internal server error", "errors": [], "uuid": str(uuid.uuid4())},
                        status_code=500)
