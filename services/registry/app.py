"""The registry's HTTP application: the OCI distribution API under /v2, the management API under /api/v1."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.registry import api, health, metrics
from services.registry.context import RegistryContext
from services.registry.readonly import RefuseWrites
from services.registry.v2 import blobs, catalog, manifests, referrers, tags, token, uploads
from services.registry.v2.errors import (
    RegistryError,
    http_error_handler,
    registry_error_handler,
    validation_error_handler,
)
from shared.config import Settings
from shared.db import create_pool
from shared.observability import RequestMetrics
from shared.storage import Locations


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await create_pool(settings.database_url, max_size=settings.database_pool_size)
        locations = await Locations.open(settings)
        context = RegistryContext(settings=settings, pool=pool, locations=locations)
        app.state.context = context
        cache_listener = asyncio.create_task(context.manifests.listen(settings.database_url))
        try:
            yield
        finally:
            cache_listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await cache_listener
            await locations.close()
            await pool.close()

    app = FastAPI(title="Quayside registry", lifespan=lifespan)
    app.add_exception_handler(RegistryError, registry_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    # Uploads and manifests before blobs: '/blobs/uploads/' must not match '/blobs/{digest}'.
    for module in (token, catalog, uploads, blobs, referrers, tags, manifests):
        app.include_router(module.router)
    for router in api.routers:
        app.include_router(router)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.add_middleware(api.DeclaredBodyLimit)
    if settings.registry_state == "readonly":
        app.add_middleware(RefuseWrites)
    # Added last, so outermost: refusals and errors are counted too.
    app.add_middleware(metrics.BlobTransferMetrics)
    app.add_middleware(RequestMetrics, service="registry")
    return app
