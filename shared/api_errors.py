"""Quay's error answers on /api/v1, shared by every service that serves part of that API.

Quay answers ``{"detail", "error_message", "error_type", "status", "title", "type"}``; clients
format ``detail`` as a string, so it is always one.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import JSONResponse

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
    kind = error_type or ERROR_TYPE_BY_STATUS.get(status, "server_error" if status >= 500 else "invalid_request")
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
    return JSONResponse(quay_error_body(status, detail, error_type), status_code=status, headers=dict(headers or {}))
