"""The replication service's API: GET /api/v1/replication/status.

Per location, the copies pending, in flight and failing (with the storage's errors), the lag and
what was copied (shared.replication.ReplicationStatus). Read-only operational figures without names,
served like /metrics without authentication: expose the port only where operators reach it (the
registry serves the same answer to superusers at /api/v1/superuser/replication/status).
"""

from __future__ import annotations

import asyncpg
from fastapi import APIRouter, Request

from shared.config import Settings
from shared.replication import ReplicationStatus, replication_status

router = APIRouter(tags=["replication"])


def state_of(request: Request) -> tuple[Settings, asyncpg.Pool]:
    """The settings and database pool the app's lifespan opened."""
    return request.app.state.settings, request.app.state.pool


@router.get("/api/v1/replication/status", response_model=ReplicationStatus)
async def get_replication_status(request: Request) -> ReplicationStatus:
    """Replication per location (see the module docstring)."""
    settings, pool = state_of(request)
    async with pool.acquire() as conn:
        return await replication_status(conn, settings)
