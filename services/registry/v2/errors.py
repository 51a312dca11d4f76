"""OCI distribution error responses: {"errors": [{"code", "message", "detail"}]}; every other path
answers Quay's error shape (shared.api_errors)."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.api_errors import quay_http_error_handler, quay_validation_error_handler

STATUS_BY_CODE: dict[str, int] = {
    "BLOB_UNKNOWN": 404,
    "BLOB_UPLOAD_INVALID": 400,
    "BLOB_UPLOAD_UNKNOWN": 404,
    "DIGEST_INVALID": 400,
    "MANIFEST_BLOB_UNKNOWN": 400,
    "MANIFEST_INVALID": 400,
    "MANIFEST_UNKNOWN": 404,
    "NAME_INVALID": 400,
    "NAME_UNKNOWN": 404,
    "SIZE_INVALID": 400,
    "UNAUTHORIZED": 401,
    "DENIED": 403,
    "UNSUPPORTED": 415,
    "TOOMANYREQUESTS": 429,
}


class RegistryError(Exception):
    """An error answered in the OCI format. ``status`` overrides the code's usual status."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        detail: Any = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.detail = detail
        self.status = status or STATUS_BY_CODE[code]
        self.headers = headers or {}


def error_body(code: str, message: str, detail: Any = None) -> dict[str, Any]:
    return {"errors": [{"code": code, "message": message, "detail": detail}]}


async def registry_error_handler(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RegistryError)
    return JSONResponse(
        error_body(error.code, error.message, error.detail), status_code=error.status, headers=error.headers
    )


async def http_error_handler(request: Request, error: Exception) -> JSONResponse:
    """Starlette's own errors (unknown route, wrong method) in the protocol's format."""
    assert isinstance(error, StarletteHTTPException)
    if not request.url.path.startswith("/v2"):
        return await quay_http_error_handler(request, error)
    code = "UNSUPPORTED" if error.status_code == 405 else "NAME_UNKNOWN"
    if error.status_code not in (404, 405):
        code = "UNSUPPORTED"
    return JSONResponse(
        error_body(code, str(error.detail)), status_code=error.status_code, headers=error.headers
    )


async def validation_error_handler(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    if not request.url.path.startswith("/v2"):
        return await quay_validation_error_handler(request, error)
    # jsonable_encoder: a validator's ValueError sits in the errors' context and is not JSON as is.
    errors = jsonable_encoder(error.errors())
    return JSONResponse(error_body("UNSUPPORTED", "invalid request parameters", errors), status_code=400)
