"""Health checks in Quay's answer, for every service's /health/* routes: ``{"data": {"services":
{<name>: bool}}, "status_code": 200|503}`` with that HTTP status, 200 when every service is healthy.

Checks run concurrently, each with a time limit, so a dead dependency answers 503 within about that
time. A failure is logged with its reason; the answer names only the service.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import aio_pika
import asyncpg
from fastapi.responses import JSONResponse
from pydantic import BaseModel

log = logging.getLogger(__name__)

Check = Callable[[], Coroutine[Any, Any, object]]

# Checks still running past their time limit finish (or fail) in the background, referenced here.
_abandoned: set[asyncio.Task[object]] = set()


class ServiceStatuses(BaseModel):
    services: dict[str, bool]


class HealthReport(BaseModel):
    """Quay's health answer; the HTTP status equals status_code."""

    data: ServiceStatuses
    status_code: int


# The `responses` of a health route, for its OpenAPI description.
UNHEALTHY_RESPONSES: dict[int | str, dict[str, object]] = {
    503: {"model": HealthReport, "description": "Unhealthy"}
}


def _forget(task: asyncio.Task[object]) -> None:
    _abandoned.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: a late failure of an abandoned check is not worth a warning


async def _passes(name: str, check: Check, timeout_s: float) -> bool:
    """Whether the check ends without error within timeout_s. Past that, it is cancelled and left to
    end in the background: a check stuck in its own clean-up cannot delay the answer."""
    task = asyncio.create_task(check(), name=f"health check {name}")
    try:
        await asyncio.wait({task}, timeout=timeout_s)
    finally:
        if not task.done():
            task.cancel()
            _abandoned.add(task)
            task.add_done_callback(_forget)
    if task in _abandoned:
        log.warning("[FAILED HEALTH CHECK] %s: no answer within %s s", name, timeout_s)
        return False
    if (error := task.exception()) is not None:
        log.warning("[FAILED HEALTH CHECK] %s: %r", name, error)
        return False
    return True


async def run_checks(checks: Mapping[str, Check], timeout_s: float) -> dict[str, bool]:
    """Each check's name and whether it passed, in the order of ``checks``."""
    results = await asyncio.gather(*(_passes(name, check, timeout_s) for name, check in checks.items()))
    return dict(zip(checks, results, strict=True))


def health_report(services: dict[str, bool], headers: Mapping[str, str] | None = None) -> JSONResponse:
    status_code = 200 if all(services.values()) else 503
    report = HealthReport(data=ServiceStatuses(services=services), status_code=status_code)
    return JSONResponse(report.model_dump(), status_code=status_code, headers=headers)


async def database_takes_a_write(pool: asyncpg.Pool) -> None:
    """The database takes a write and gives it back: a temporary table in a transaction rolled back."""
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            await conn.execute("CREATE TEMPORARY TABLE health_write_probe (x int) ON COMMIT DROP")
            await conn.execute("INSERT INTO health_write_probe VALUES (1)")
            if await conn.fetchval("SELECT x FROM health_write_probe") != 1:
                raise RuntimeError("the database gave back another row than it was given")
        finally:
            await transaction.rollback()


async def broker_answers(amqp_url: str) -> None:
    """The broker takes a connection."""
    connection = await aio_pika.connect(amqp_url)
    await connection.close()
