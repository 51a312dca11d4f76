"""The replication service's HTTP application: its status API (services/replication/api.py),
/health/instance, /health/endtoend, /metrics.

- instance: this process reaches the database.
- endtoend: the database takes a write and gives it back, the broker (when configured) accepts a
  connection, and every location copies must reach answers (``storage:<name>``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from services.replication import api, metrics
from services.replication.api import state_of
from shared.config import Settings
from shared.db import create_pool
from shared.health import Check, broker_answers, database_takes_a_write, health_report, run_checks
from shared.http_guard import api_docs_urls
from shared.observability import metrics_response
from shared.replication import replication_status
from shared.storage import PathNotFoundError
from shared.storage.locations import open_driver

log = logging.getLogger(__name__)

_POOL_SIZE = 2
# Looked up (absent, normally) to see that a location's storage answers.
_PROBE_PATH = "health/replication-probe"

operations = APIRouter(tags=["operations"])
metrics_router = APIRouter(tags=["operations"])


async def _database(pool: asyncpg.Pool) -> None:
    await pool.fetchval("SELECT count(*) FROM replication_task WHERE false")


async def _storage(settings: Settings, name: str) -> None:
    driver = await open_driver(name, settings.storage_locations[name])
    try:
        await driver.stat(_PROBE_PATH)
    except PathNotFoundError:
        pass
    finally:
        await driver.close()


def _replicated_locations(settings: Settings) -> list[str]:
    """The locations copies go to by default (per-namespace targets are among the configured ones)."""
    if not settings.feature_storage_replication:
        return []
    return list(settings.distributed_storage_default_locations)


@operations.get("/health/instance")
async def health_instance(request: Request) -> JSONResponse:
    """Quay's health answer: whether this instance reaches its database (200), or not (503)."""
    settings, pool = state_of(request)
    services = await run_checks({"database": lambda: _database(pool)}, settings.health_check_timeout_s)
    return health_report(services)


@operations.get("/health/endtoend")
async def health_endtoend(request: Request) -> JSONResponse:
    """The database takes a write, the broker (when configured) a connection, every replicated
    location answers."""
    settings, pool = state_of(request)
    checks: dict[str, Check] = {"database": lambda: database_takes_a_write(pool)}
    if settings.amqp_url:
        amqp_url = settings.amqp_url
        checks["broker"] = lambda: broker_answers(amqp_url)
    for name in _replicated_locations(settings):
        checks[f"storage:{name}"] = functools.partial(_storage, settings, name)
    return health_report(await run_checks(checks, settings.health_check_timeout_s))


@metrics_router.get("/metrics")
async def prometheus_metrics(request: Request) -> Response:
    settings, pool = state_of(request)
    try:
        async with pool.acquire() as conn:
            families = metrics.scrape_families(await replication_status(conn, settings))
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        log.warning("replication status unavailable for /metrics: %r", error)
        families = []
    return await metrics_response(families)


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await create_pool(settings.database_url, max_size=_POOL_SIZE)
        app.state.settings = settings
        app.state.pool = pool
        try:
            yield
        finally:
            await pool.close()

    app = FastAPI(title="Quayside replication", lifespan=lifespan, **api_docs_urls(settings))
    app.include_router(operations)
    app.include_router(api.router)
    if settings.http_metrics:
        app.include_router(metrics_router)
    return app
