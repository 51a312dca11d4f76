"""The mirror service's HTTP application: Quay's mirroring API, /health/instance and /metrics.

``create_app`` is the service on its own; ``include_mirror_api`` serves the mirroring API from
another app (the embedded suite runs every service in one process).
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from fastapi import APIRouter, Depends, FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from services.mirror import api
from services.mirror.api import MirrorContext, get_mirror_context
from services.mirror.credentials import SecretBox
from shared.api_errors import quay_http_error_handler, quay_validation_error_handler
from shared.auth.sessions import NextCsrfToken
from shared.config import Settings
from shared.db import create_pool
from shared.health import health_report, run_checks
from shared.http_guard import api_docs_urls
from shared.http_input import InputGuard, database_input_handler
from shared.observability import metrics_response

_HEALTH_TIMEOUT_S = 2.0
_API_POOL_SIZE = 4

operations = APIRouter(tags=["operations"])
metrics_router = APIRouter(tags=["operations"])


@operations.get("/health/instance")
async def health_instance(context: MirrorContext = Depends(get_mirror_context)) -> JSONResponse:
    """Quay's health answer: whether this instance reaches its database (200), or not (503)."""
    database = functools.partial(context.pool.fetchval, "SELECT true")
    return health_report(await run_checks({"database": database}, _HEALTH_TIMEOUT_S))


@metrics_router.get("/metrics")
async def prometheus_metrics() -> Response:
    return await metrics_response()


@asynccontextmanager
async def mirror_context(settings: Settings) -> AsyncIterator[MirrorContext]:
    pool = await create_pool(settings.database_url, max_size=_API_POOL_SIZE)
    try:
        yield MirrorContext(settings=settings, pool=pool, secrets=SecretBox.from_settings(settings))
    finally:
        await pool.close()


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with mirror_context(settings) as context:
            app.state.mirror = context
            yield

    app = FastAPI(title="Quayside mirror", lifespan=lifespan, **api_docs_urls(settings))
    app.add_exception_handler(RequestValidationError, quay_validation_error_handler)
    app.add_exception_handler(HTTPException, quay_http_error_handler)
    app.add_middleware(NextCsrfToken)
    app.add_exception_handler(asyncpg.DataError, database_input_handler)
    app.add_middleware(InputGuard, max_body_bytes=api.MAX_BODY_BYTES)
    app.include_router(api.router)
    app.include_router(operations)
    if settings.http_metrics:
        app.include_router(metrics_router)
    return app


def include_mirror_api(app: FastAPI, settings: Settings) -> None:
    """Serve the mirroring API from `app` too, its context opened and closed with `app`'s lifespan."""
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(outer: FastAPI) -> AsyncIterator[None]:
        async with mirror_context(settings) as context, inner(outer):
            outer.state.mirror = context
            yield

    app.router.lifespan_context = lifespan
    # First: the host app may have catch-all routes (/repository/{namespace}/{repository:path})
    # that would also match the mirror's paths.
    existing = len(app.router.routes)
    app.include_router(api.router)
    added = app.router.routes[existing:]
    del app.router.routes[existing:]
    app.router.routes[0:0] = added
