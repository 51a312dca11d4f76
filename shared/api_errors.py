"""Quay's error answers on /api/v1, shared by every service that serves part of that API.

Quay answers ``{"detail", "error_message", "error_type", "status", "title", "type"}``; clients
format ``detail`` as a string, so it is always one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Match

ERROR_TYPE_BY_STATUS: dict[int, str] = {
    400: "invalid_request",
    401: "invalid_token",
    403: "insufficient_scope",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "request_too_large",
    429: "too_many_requests",
    503: "service_unavailable",
}


def quay_error_body(status: int, detail: str, error_type: str | None = None) -> dict[str, object]:
    kind = error_type or ERROR_TYPE_BY_STATUS.get(
        status, "server_error" if status >= 500 else "invalid_request"
    )
    return {
        "detail": detail,
        "error_message": detail,
        "error_type": kind,
        "status": status,
        "title": kind,
        "type": f"/api/v1/error/{kind}",
    }


def quay_error_response(
    status: int,
    detail: str,
    *,
    error_type: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        quay_error_body(status, detail, error_type), status_code=status, headers=dict(headers or {})
    )


def validation_detail(errors: Sequence[Mapping[str, Any]]) -> str:
    """Validation items as one string naming each wrong field: 'body.limit_bytes: Input should be …'."""
    return "; ".join(
        f"{'.'.join(str(part) for part in item.get('loc', ())) or 'body'}: {item.get('msg', 'invalid value')}"
        for item in errors
    )


def allowed_methods(request: Request) -> str:
    """Every method some route serves at the request's path, for a 405's ``Allow`` header."""
    methods: set[str] = set()
    # FastAPI keeps included routers nested: iter_route_contexts walks down to every route.
    for route in iter_route_contexts(request.app.router.routes):
        if route.methods and route.matches(request.scope)[0] != Match.NONE:
            methods |= route.methods
    return ", ".join(sorted(methods))


class QuayHTTPException(HTTPException):
    """An HTTPException answered with a specific Quay ``error_type`` (e.g. ``tag_immutable``)."""

    def __init__(self, status_code: int, detail: str, error_type: str) -> None:
        super().__init__(status_code=status_code, detail=detail)
        self.error_type = error_type


async def quay_http_error_handler(request: Request, error: Exception) -> JSONResponse:
    """An ``HTTPException`` (raised by an endpoint, or the router's 404/405) in Quay's shape."""
    assert isinstance(error, HTTPException)
    headers = dict(error.headers or {})
    if error.status_code == 405:
        headers["Allow"] = allowed_methods(request)
    detail = error.detail if isinstance(error.detail, str) else str(error.detail)
    error_type = error.error_type if isinstance(error, QuayHTTPException) else None
    return quay_error_response(error.status_code, detail, error_type=error_type, headers=headers)


async def quay_validation_error_handler(_: Request, error: Exception) -> JSONResponse:
    """A request that fails validation: 400, ``detail`` naming the wrong fields."""
    assert isinstance(error, RequestValidationError)
    return quay_error_response(400, validation_detail(error.errors()))
