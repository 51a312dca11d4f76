"""The quota service's HTTP application: /health/instance, /health/endtoend and /metrics.

- instance: this process reaches the database.
- endtoend: the database takes a write and gives it back (a rolled-back transaction on the quota
  tables), and the broker accepts a connection when QUAYSIDE_AMQP_URL is set.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from services.quota import metrics
from shared.config import Settings
from shared.db import create_pool
from shared.health import Check, broker_answers, database_takes_a_write, health_report, run_checks
from shared.http_guard import api_docs_urls
from shared.observability import metrics_response

log = logging.getLogger(__name__)

_POOL_SIZE = 2

operations = APIRouter(tags=["operations"])
metrics_router = APIRouter(tags=["operations"])


def _state(request: Request) -> tuple[Settings, asyncpg.Pool]:
    return request.app.state.settings, request.app.state.pool


async def _database(pool: asyncpg.Pool) -> None:
    await pool.fetchval("SELECT count(*) FROM namespace_usage WHERE false")


@operations.get("/health/instance")
async def health_instance(request: Request) -> JSONResponse:
    """Quay's health answer: whether this instance reaches its database (200), or not (503)."""
    settings, pool = _state(request)
    services = await run_checks({"database": lambda: _database(pool)}, settings.health_check_timeout_s)
    return health_report(services)


@operations.get("/health/endtoend")
async def health_endtoend(request: Request) -> JSONResponse:
    """The database takes a write, and the broker (when configured) a connection."""
    settings, pool = _state(request)
    checks: dict[str, Check] = {"database": lambda: database_takes_a_write(pool)}
    if settings.amqp_url:
        amqp_url = settings.amqp_url
        checks["broker"] = lambda: broker_answers(amqp_url)
    return health_report(await run_checks(checks, settings.health_check_timeout_s))


@metrics_router.get("/metrics")
async def prometheus_metrics(request: Request) -> Response:
    _, pool = _state(request)
    try:
        row = await pool.fetchrow(
            "SELECT (SELECT coalesce(sum(bytes), 0) FROM namespace_usage)::bigint,"
            " (SELECT count(DISTINCT namespace_id) FROM quota_crossing WHERE limit_type = 'Reject')"
        )
        metrics.USAGE_TOTAL.set(row[0])
        metrics.NAMESPACES_OVER.set(row[1])
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        log.warning("quota totals unavailable: %r", error)
    return await metrics_response()


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

    app = FastAPI(title="Quayside quota", lifespan=lifespan, **api_docs_urls(settings))
    app.include_router(operations)
    if settings.http_metrics:
        app.include_router(metrics_router)
    return app
