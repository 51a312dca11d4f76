"""The registry's HTTP hygiene: shared.http_guard with the registry's headers, and a bound on the
blob upload requests one client runs at once."""

from __future__ import annotations

import collections
import re

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.config import Settings
from shared.http_guard import NO_STORE, install_http_guard, protocol_error

# Token answers and the management API's (robot and application tokens, per-user data) are never cached.
HEADERS_BY_PREFIX: dict[str, tuple[tuple[str, str], ...]] = {
    "/v2": (("Docker-Distribution-API-Version", "registry/2.0"),),
    "/v2/auth": (NO_STORE,),
    "/api/v1": (NO_STORE,),
    "/oauth": (NO_STORE,),
}
_UPLOAD_PATH = re.compile(r"/v2/.+/blobs/uploads(/[^/]*)?")
_UPLOAD_METHODS = frozenset({"POST", "PATCH", "PUT"})
_RETRY_AFTER_S = 1


class UploadsPerClient:
    """Pure ASGI middleware: at most `limit` blob upload requests (POST, PATCH, PUT below
    /v2/<name>/blobs/uploads) at once per client address and process; beyond, OCI TOOMANYREQUESTS
    (429) with Retry-After."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self._limit = limit
        self._running: collections.Counter[str] = collections.Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._is_upload(scope):
            await self.app(scope, receive, send)
            return
        client = scope["client"][0] if scope.get("client") else ""
        if self._running[client] >= self._limit:
            response = protocol_error(
                scope["path"],
                429,
                "TOOMANYREQUESTS",
                f"more than {self._limit} uploads at once from this client",
                {"Retry-After": str(_RETRY_AFTER_S)},
            )
            await response(scope, receive, send)
            return
        self._running[client] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self._running[client] -= 1
            if not self._running[client]:
                del self._running[client]

    @staticmethod
    def _is_upload(scope: Scope) -> bool:
        return (
            scope["type"] == "http"
            and scope["method"] in _UPLOAD_METHODS
            and _UPLOAD_PATH.fullmatch(scope["path"]) is not None
        )


def install_hygiene(app: FastAPI, settings: Settings) -> None:
    """The upload bound inside the guard, so that its 429s get the guard's headers."""
    app.add_middleware(UploadsPerClient, limit=settings.http_max_uploads_per_client)
    install_http_guard(app, settings, HEADERS_BY_PREFIX)
