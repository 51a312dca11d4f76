"""The gc service's HTTP application: the status API, /health/instance, /health/endtoend and
/metrics. The collection itself runs in the worker (services/gc/worker.py) beside it."""

from __future__ import annotations

import functools
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from fastapi import APIRouter, Depends, FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from services.gc import api
from services.gc.api import GcContext, get_gc_context
from shared.api_errors import quay_http_error_handler, quay_validation_error_handler
from shared.config import Settings
from shared.db import create_pool
from shared.health import Check, database_takes_a_write, health_report, run_checks
from shared.http_guard import api_docs_urls
from shared.http_input import InputGuard, database_input_handler
from shared.observability import RequestMetrics, metrics_response
from shared.storage import Locations, PathNotFoundError, StorageError

_POOL_SIZE = 4
_MAX_BODY_BYTES = 64 * 1024
_PROBE_FOLDER = "_health"

operations = APIRouter(tags=["operations"])


async def _stat_probe(locations: Locations, name: str) -> None:
    try:
        await locations.driver(name).stat(f"{_PROBE_FOLDER}/probe")
    except PathNotFoundError:
        return


async def _write_probe(locations: Locations, name: str) -> None:
    driver = locations.driver(name)
    path = f"{_PROBE_FOLDER}/gc-{uuid.uuid4().hex}"

    async def body() -> AsyncIterator[bytes]:
        yield b"probe"

    await driver.put(path, body())
    try:
        if b"".join([chunk async for chunk in driver.read(path)]) != b"probe":
            raise StorageError(f"{name}: the probe came back changed")
    finally:
        await driver.delete(path)


async def _checks(context: GcContext, *, end_to_end: bool) -> dict[str, bool]:
    locations = context.locations
    probe = _write_probe if end_to_end else _stat_probe
    checks: dict[str, Check] = {
        "database": functools.partial(database_takes_a_write, context.pool)
        if end_to_end
        else functools.partial(context.pool.fetchval, "SELECT true")
    }
    checks |= {f"storage:{name}": functools.partial(probe, locations, name) for name in locations.order}
    services = await run_checks(checks, context.settings.health_check_timeout_s)
    services["storage"] = all(ok for name, ok in services.items() if name.startswith("storage:"))
    return services


@operations.get("/health/instance")
async def health_instance(context: GcContext = Depends(get_gc_context)) -> JSONResponse:
    """Quay's health answer: the database and every storage location answer (200), or not (503)."""
    return health_report(await _checks(context, end_to_end=False))


@operations.get("/health/endtoend")
async def health_endtoend(context: GcContext = Depends(get_gc_context)) -> JSONResponse:
    """As /health/instance, with a write to the database (rolled back) and a probe object stored,
    read back and deleted in every location: what a pass needs."""
    return health_report(await _checks(context, end_to_end=True))


async def _metrics() -> Response:
    return await metrics_response()


@asynccontextmanager
async def gc_context(settings: Settings) -> AsyncIterator[GcContext]:
    pool = await create_pool(settings.database_url, max_size=_POOL_SIZE)
    try:
        locations = await Locations.open(settings)
        try:
            yield GcContext(settings=settings, pool=pool, locations=locations)
        finally:
            await locations.close()
    finally:
        await pool.close()


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with gc_context(settings) as context:
            app.state.gc = context
            yield

    app = FastAPI(title="Quayside garbage collection", lifespan=lifespan, **api_docs_urls(settings))
    app.add_exception_handler(RequestValidationError, quay_validation_error_handler)
    app.add_exception_handler(HTTPException, quay_http_error_handler)
    app.add_exception_handler(asyncpg.DataError, database_input_handler)
    app.add_middleware(InputGuard, max_body_bytes=_MAX_BODY_BYTES)
    app.add_middleware(RequestMetrics, service="gc")
    app.include_router(api.router)
    app.include_router(operations)
    if settings.http_metrics:
        app.add_api_route("/metrics", _metrics, methods=["GET"], tags=["operations"])
    return app
