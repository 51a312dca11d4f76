"""Refusing writes: the whole registry in read-only mode (Quay's REGISTRY_STATE=readonly, or switched
at run time: shared/readonly_state.py), and one repository by its state (READ_ONLY, MIRROR, MARKED_FOR_DELETION) on the /api/v1 side.

/v2 writes to a repository whose state refuses them are answered by services.registry.v2.access.
"""

from __future__ import annotations

import asyncpg
from fastapi import HTTPException
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from services.registry.api.registry_state import FULL_PATH as STATE_SWITCH_PATH
from services.registry.domain.repositories import Repository
from shared.auth.identity import Identity
from shared.auth.mirrors import is_mirror_robot
from shared.config import Settings
from shared.readonly_state import READ_ONLY_MESSAGE, registry_read_only

_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _v2_refusal() -> JSONResponse:
    """Quay's answer on /v2: DENIED with HTTP 405, the error flagged ``is_readonly``."""
    error = {"code": "DENIED", "message": READ_ONLY_MESSAGE, "detail": {}, "is_readonly": True}
    return JSONResponse({"errors": [error]}, status_code=405, headers={"Allow": "GET, HEAD"})


def _api_refusal() -> JSONResponse:
    """Quay's answer elsewhere (503, ``message`` and ``is_readonly``), with the API's ``detail``."""
    body = {"detail": READ_ONLY_MESSAGE, "message": READ_ONLY_MESSAGE, "is_readonly": True}
    return JSONResponse(body, status_code=503)


class RefuseWrites:
    """ASGI middleware of read-only mode: any request other than GET, HEAD or OPTIONS is refused
    before routing, whoever sends it. Reads, pulls and the token endpoint (GET /v2/auth) pass, and
    so does the superusers' switch (PUT /api/v1/superuser/registrystate), to switch it off again.

    Reads pay nothing; a write pays the cached look at the registry state (about one query a second).
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] in _READ_METHODS
            or scope["path"] == STATE_SWITCH_PATH
            or not await registry_read_only(scope["app"].state.context.pool, self.settings)
        ):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        refusal = _v2_refusal() if path == "/v2" or path.startswith("/v2/") else _api_refusal()
        await refusal(scope, receive, send)


async def ensure_repository_writable(
    conn: asyncpg.Connection, repository: Repository, identity: Identity | None
) -> None:
    """Refuse an /api/v1 change to the repository's content (tags, labels, expirations) as Quay does:
    404 while it is being deleted, 405 when it is READ_ONLY, 405 when it is a MIRROR unless the
    caller is its mirror robot. Returns when the change may go ahead.
    """
    if repository.state == "MARKED_FOR_DELETION":
        raise HTTPException(status_code=404, detail="Not Found")
    if repository.state == "READ_ONLY":
        raise HTTPException(status_code=405, detail=f"{repository.full_name} is in read-only mode.")
    if repository.state == "MIRROR" and not await is_mirror_robot(conn, identity, repository.id):
        raise HTTPException(
            status_code=405,
            detail=f"Repository {repository.full_name} is a mirror. Mirrored repositories cannot be modified directly.",
        )
