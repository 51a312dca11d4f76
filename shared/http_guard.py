"""HTTP hygiene every service's app shares: a time limit on each read of a request body, the
security headers, a complete ``Allow`` on 405s, and unhandled errors answered as a 500 that closes
the connection.

Errors are answered in the protocol's own shape: OCI error JSON below /v2, Quay's elsewhere.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

from fastapi import FastAPI
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.api_errors import allowed_methods, quay_error_body
from shared.config import Settings

log = logging.getLogger(__name__)

ALWAYS_HEADERS: tuple[tuple[str, str], ...] = (("X-Content-Type-Options", "nosniff"),)
NO_STORE = ("Cache-Control", "no-store")


def _is_below(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix.rstrip("/") + "/")


def protocol_error(
    path: str, status: int, code: str, message: str, headers: Mapping[str, str]
) -> JSONResponse:
    """An error answer in the shape of the API path belongs to."""
    body: dict[str, Any]
    protocol_headers = dict(ALWAYS_HEADERS)
    if _is_below(path, "/v2"):
        body = {"errors": [{"code": code, "message": message, "detail": None}]}
        protocol_headers["Docker-Distribution-API-Version"] = "registry/2.0"
    else:
        body = quay_error_body(status, message)
    return JSONResponse(body, status_code=status, headers={**protocol_headers, **headers})


async def server_error_handler(request: Request, _error: Exception) -> JSONResponse:
    """An unhandled exception: a protocol-shaped 500 with ``Connection: close``.

    Starlette re-raises the exception after this answer, and uvicorn then drops the connection; the
    header tells the client so, instead of its next request failing on a closed connection.
    """
    # uvicorn logs the exception with its traceback once Starlette re-raises it.
    return protocol_error(request.url.path, 500, "UNKNOWN", "internal server error", {"Connection": "close"})


class DocsUrls(TypedDict):
    docs_url: str | None
    redoc_url: str | None
    openapi_url: str | None


def api_docs_urls(settings: Settings) -> DocsUrls:
    """FastAPI's docs_url, redoc_url and openapi_url: the defaults with QUAYSIDE_HTTP_API_DOCS, else none."""
    if settings.http_api_docs:
        return {"docs_url": "/docs", "redoc_url": "/redoc", "openapi_url": "/openapi.json"}
    return {"docs_url": None, "redoc_url": None, "openapi_url": None}


class HttpGuard:
    """Pure ASGI middleware: body reads with a deadline, headers added by path, 405s' full ``Allow``.

    A body read that waits longer than body_timeout_s for the client ends the request: the app sees
    the client as gone (``http.disconnect``) and the client gets a 408 with ``Connection: close``
    (when nothing was answered yet). Once the body is complete, reads pass untouched, since
    Starlette keeps one waiting for the client's disconnect while it streams a response.

    headers_by_prefix adds headers to every answer below a path prefix unless the app set them.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        body_timeout_s: float,
        headers_by_prefix: Mapping[str, Sequence[tuple[str, str]]] | None = None,
    ) -> None:
        self.app = app
        self._body_timeout_s = body_timeout_s
        self._headers_by_prefix = dict(headers_by_prefix or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_complete = False
        timed_out = False
        answered = False

        async def receive_with_deadline() -> Message:
            nonlocal body_complete, timed_out
            if body_complete:
                return await receive()
            if timed_out:
                return {"type": "http.disconnect"}
            try:
                async with asyncio.timeout(self._body_timeout_s):
                    message = await receive()
            except TimeoutError:
                timed_out = True
                return {"type": "http.disconnect"}
            body_complete = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        async def send_with_headers(message: Message) -> None:
            nonlocal answered
            if timed_out and not answered:
                # The 408 below answers instead of whatever the app makes of the "disconnect".
                return
            answered = answered or message["type"] == "http.response.start"
            await self._send_with_headers(scope, send, message)

        try:
            await self.app(scope, receive_with_deadline, send_with_headers)
        except Exception:
            # An app may fail on the "disconnect" (Starlette's ClientDisconnect): the 408 stands.
            if not timed_out or answered:
                raise
        if timed_out and not answered:
            await self._answer_timeout(scope, receive, send)

    async def _answer_timeout(self, scope: Scope, receive: Receive, send: Send) -> None:
        log.info("request body not received in time on %s %s", scope["method"], scope["path"])
        response = protocol_error(
            scope["path"],
            408,
            "UNKNOWN",
            f"the request body did not arrive within {self._body_timeout_s:g} s",
            {"Connection": "close"},
        )

        async def send_response(message: Message) -> None:
            await self._send_with_headers(scope, send, message)

        await response(scope, receive, send_response)

    async def _send_with_headers(self, scope: Scope, send: Send, message: Message) -> None:
        if message["type"] == "http.response.start":
            self._add_headers(scope, message)
        await send(message)

    def _add_headers(self, scope: Scope, message: Message) -> None:
        headers = MutableHeaders(scope=message)
        for name, value in ALWAYS_HEADERS:
            headers.setdefault(name, value)
        for prefix, extra in self._headers_by_prefix.items():
            if _is_below(scope["path"], prefix):
                for name, value in extra:
                    headers.setdefault(name, value)
        if message["status"] == 405:
            headers["Allow"] = allowed_methods(Request(scope))


def install_http_guard(
    app: FastAPI, settings: Settings, headers_by_prefix: Mapping[str, Sequence[tuple[str, str]]] | None = None
) -> None:
    """Add HttpGuard and the 500 handler to app."""
    app.add_exception_handler(Exception, server_error_handler)
    app.add_middleware(
        HttpGuard, body_timeout_s=settings.http_body_timeout_s, headers_by_prefix=headers_by_prefix
    )
