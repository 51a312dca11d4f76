"""The /api/v1 request body limit, answered in the API's JSON error format."""

from __future__ import annotations

from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from services.registry.api.common import API_PREFIX, MAX_BODY_BYTES


class DeclaredBodyLimit:
    """ASGI middleware: 413 ``{"detail": "Content Too Large"}`` for an /api/v1 request whose declared
    Content-Length is over MAX_BODY_BYTES, before anything is read.

    The routers' own limit (Starlette's, see common.api_router) still counts the bytes of bodies
    sent without a length; it answers declared oversized bodies in plain text, hence this.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(API_PREFIX + "/"):
            length = Headers(scope=scope).get("content-length", "")
            if length.isdigit() and int(length) > MAX_BODY_BYTES:
                await JSONResponse({"detail": "Content Too Large"}, status_code=413)(scope, receive, send)
                return
        await self.app(scope, receive, send)
