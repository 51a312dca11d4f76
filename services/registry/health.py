"""Health checks at Quay's paths, in Quay's answer: GET /health/instance, /health/endtoend and
/health/warning answer ``{"data": {"services": {<name>: bool}}, "status_code": 200|503}`` with that
HTTP status: for warning, 200 when every check passes; for instance and endtoend, see below.

- instance: this process reaches the database (a query), every storage location (a stat of a
  probe object, "not found" being an answer: ``storage:<location>``, ``storage`` for all of them),
  the broker when QUAYSIDE_AMQP_URL is set (a connection and a channel), and can sign and verify
  tokens (``auth``).
- endtoend: the same, except that the database must take a write and give it back (a temporary
  table in a transaction rolled back), and every location must store, return and delete a probe
  object. In read-only mode nothing is written: the instance checks stand in, as Quay does.
  Read-only mode counts whether set in the config or switched at run time (shared/readonly_state.py).
- warning: the free space of the local folders the registry writes (filesystem locations,
  ``disk_space_warning:storage:<location>``; the log export folder,
  ``disk_space_warning:log_exports``) against settings.disk_space_warning_threshold.

instance and endtoend answer 503 only when the instance cannot serve: the database, the broker or
auth fails, or no storage location passes. A location that fails while another passes is named
(``storage:<location>: false``, and ``storage``, the total, false) in a 200 answer: the instance
still reads the other copies and pushes to a healthy location (a gateway keeps its clients).
Besides Quay's ``services`` map, their ``data`` carries ``locations``: each location's circuit
breaker in this process (shared/storage/health.py: healthy, failures in a row, the last reason).
A storage check that runs out of time counts as a failure of the location's breaker.

Every answer carries the header ``Quayside-Registry-State: readonly`` or ``normal`` (the body keeps
Quay's shape, with ``data.locations`` added).

Checks run concurrently (shared/health.py), each with the time limit
settings.health_check_timeout_s, so a dead dependency answers 503 within about that time.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika
import asyncpg
from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from services.registry.context import RegistryContext, get_context
from shared.auth.tokens import decode_token, issue_token
from shared.config import FilesystemLocation, Settings
from shared.health import UNHEALTHY_RESPONSES, Check, HealthReport, health_report, run_checks
from shared.readonly_state import registry_read_only
from shared.storage import PathNotFoundError, StorageDriver
from shared.storage.health import LocationState, StorageHealth

log = logging.getLogger(__name__)

router = APIRouter(tags=["health"])

_PROBE_FOLDER = "_health"


class HealthCheckFailedError(Exception):
    """A dependency answered, but not what the check expected."""


STATE_HEADER = "Quayside-Registry-State"


# A storage check gives up a little before the checks' time limit, so that its location's breaker
# counts the timeout before the check is abandoned.
_STORAGE_DEADLINE_SHARE = 0.9


class ServiceAndStorageStatuses(BaseModel):
    services: dict[str, bool]
    locations: dict[str, LocationState]


class ServiceHealthReport(BaseModel):
    """Quay's health answer plus the storage breakers; the HTTP status equals status_code."""

    data: ServiceAndStorageStatuses
    status_code: int


_UNSERVING_RESPONSES: dict[int | str, dict[str, object]] = {
    503: {"model": ServiceHealthReport, "description": "Cannot serve"}
}


def _state_headers(read_only: bool) -> dict[str, str]:
    return {STATE_HEADER: "readonly" if read_only else "normal"}


def _report(services: dict[str, bool], *, read_only: bool) -> JSONResponse:
    return health_report(services, _state_headers(read_only))


def serves(services: dict[str, bool]) -> bool:
    """Whether every service but storage passed, and at least one storage location did."""
    locations = [ok for name, ok in services.items() if name.startswith("storage:")]
    others = [ok for name, ok in services.items() if not name.startswith("storage")]
    return all(others) and (any(locations) or not locations)


def _service_and_storage_report(
    services: dict[str, bool], health: StorageHealth, *, read_only: bool
) -> JSONResponse:
    status_code = 200 if serves(services) else 503
    report = ServiceHealthReport(
        data=ServiceAndStorageStatuses(services=services, locations=health.snapshot()),
        status_code=status_code,
    )
    return JSONResponse(report.model_dump(), status_code=status_code, headers=_state_headers(read_only))


async def _read_only(context: RegistryContext) -> bool:
    """The registry state; a database that does not answer counts as normal (its check reports it)."""
    try:
        return await registry_read_only(context.pool, context.settings)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False


async def _write_unless_read_only(read_only: asyncio.Task[bool], write: Check, read: Check) -> None:
    """The write check, or the read check in read-only mode; the state lookup counts in the time limit."""
    await (read if await asyncio.shield(read_only) else write)()


def _with_total(services: dict[str, bool], total: str, prefix: str) -> dict[str, bool]:
    """services with ``total`` just before its parts (the ``prefix``* services), true when all of them are."""
    all_parts_ok = all(ok for name, ok in services.items() if name.startswith(prefix))
    ordered: dict[str, bool] = {}
    for name, ok in services.items():
        if name.startswith(prefix) and total not in ordered:
            ordered[total] = all_parts_ok
        ordered[name] = ok
    return ordered


async def _database_answers(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await conn.fetchval("SELECT 1")


async def _database_round_trip(pool: asyncpg.Pool) -> None:
    written = uuid.uuid4().hex
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            await conn.execute("CREATE TEMPORARY TABLE health_probe (value text) ON COMMIT DROP")
            await conn.execute("INSERT INTO health_probe (value) VALUES ($1)", written)
            read = await conn.fetchval("SELECT value FROM health_probe")
        finally:
            await transaction.rollback()
    if read != written:
        raise HealthCheckFailedError(f"the database gave back {read!r} for {written!r}")


async def _location_answers(driver: StorageDriver) -> None:
    """The location answers a stat; the probe object is never there, so "not found" is the answer."""
    try:
        await driver.stat(f"{_PROBE_FOLDER}/instance")
    except PathNotFoundError:
        return


async def _one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _location_round_trip(driver: StorageDriver) -> None:
    path = f"{_PROBE_FOLDER}/{uuid.uuid4().hex}"
    written = os.urandom(32)
    try:
        await driver.put(path, _one_chunk(written))
        read = b"".join([chunk async for chunk in driver.read(path)])
    finally:
        await driver.delete(path)
    if read != written:
        raise HealthCheckFailedError(f"location {driver.name} gave back other bytes than were stored")


async def _timeout_counted(health: StorageHealth, name: str, check: Check, deadline_s: float) -> None:
    """Run a location's check; past deadline_s, count a failure of the location and give up.
    (Failures the storage reports are counted by the location's driver.)"""
    try:
        async with asyncio.timeout(deadline_s):
            await check()
    except TimeoutError:
        health.record_failure(name, f"no answer within {deadline_s:.1f} s")
        raise


async def _broker_answers(amqp_url: str, timeout_s: float) -> None:
    connection = await aio_pika.connect(amqp_url, timeout=timeout_s)
    try:
        channel = await connection.channel()
        await channel.close()
    finally:
        await connection.close()


async def _tokens_work(settings: Settings) -> None:
    """A token signed with this process's settings verifies with them."""
    signing = {
        "secret": settings.token_secret,
        "issuer": settings.token_issuer,
        "service": settings.token_service,
    }
    token, _, _ = issue_token(**signing, identity=None, access=[], ttl_s=60)
    decode_token(token, **signing)


def _service_checks(
    context: RegistryContext, *, end_to_end: bool, read_only: asyncio.Task[bool]
) -> dict[str, Check]:
    settings = context.settings

    def check(write: Check, read: Check) -> Check:
        return functools.partial(_write_unless_read_only, read_only, write, read) if end_to_end else read

    pool = context.pool
    checks: dict[str, Check] = {
        "database": check(
            functools.partial(_database_round_trip, pool), functools.partial(_database_answers, pool)
        )
    }
    deadline_s = settings.health_check_timeout_s * _STORAGE_DEADLINE_SHARE
    for name in context.locations.order:
        driver = context.locations.driver(name)
        location_check = check(
            functools.partial(_location_round_trip, driver), functools.partial(_location_answers, driver)
        )
        checks[f"storage:{name}"] = functools.partial(
            _timeout_counted, context.locations.health, name, location_check, deadline_s
        )
    if settings.amqp_url:
        checks["broker"] = functools.partial(
            _broker_answers, settings.amqp_url, settings.health_check_timeout_s
        )
    checks["auth"] = functools.partial(_tokens_work, settings)
    return checks


async def _service_report(context: RegistryContext, *, end_to_end: bool) -> JSONResponse:
    read_only = asyncio.create_task(_read_only(context))
    checks = _service_checks(context, end_to_end=end_to_end, read_only=read_only)
    services = await run_checks(checks, context.settings.health_check_timeout_s)
    if not read_only.done():  # the database did not answer in time: its check says so
        read_only.cancel()
    known = read_only.done() and not read_only.cancelled() and read_only.result()
    return _service_and_storage_report(
        _with_total(services, "storage", "storage:"), context.locations.health, read_only=known
    )


@router.get("/health/instance", response_model=ServiceHealthReport, responses=_UNSERVING_RESPONSES)
async def instance_health(context: RegistryContext = Depends(get_context)) -> JSONResponse:
    """Whether this instance reaches every service it depends on (503: it cannot serve)."""
    return await _service_report(context, end_to_end=False)


@router.get("/health/endtoend", response_model=ServiceHealthReport, responses=_UNSERVING_RESPONSES)
async def end_to_end_health(context: RegistryContext = Depends(get_context)) -> JSONResponse:
    """Whether every service takes a write and gives it back (503: the instance cannot serve)."""
    return await _service_report(context, end_to_end=True)


def _free_fraction(folder: str) -> float:
    """Free space over total space of the disk holding folder (or its nearest existing parent)."""
    path = Path(folder).resolve()
    while not path.exists():
        path = path.parent
    usage = shutil.disk_usage(path)
    return usage.free / usage.total


async def _enough_free_space(folder: str, threshold: float) -> None:
    free = await asyncio.to_thread(_free_fraction, folder)
    if free < threshold:
        raise HealthCheckFailedError(f"{folder}: {free:.1%} free, under the {threshold:.1%} threshold")


def _watched_folders(settings: Settings) -> dict[str, str]:
    folders = {
        f"storage:{name}": location.root
        for name, location in settings.storage_locations.items()
        if isinstance(location, FilesystemLocation)
    }
    folders["log_exports"] = settings.log_export_dir
    return folders


@router.get("/health/warning", response_model=HealthReport, responses=UNHEALTHY_RESPONSES)
async def warning_health(context: RegistryContext = Depends(get_context)) -> JSONResponse:
    """Whether every local folder the registry writes has enough free space."""
    settings = context.settings
    checks: dict[str, Check] = {
        f"disk_space_warning:{name}": functools.partial(
            _enough_free_space, folder, settings.disk_space_warning_threshold
        )
        for name, folder in _watched_folders(settings).items()
    }
    services = await run_checks(checks, settings.health_check_timeout_s)
    total = _with_total(services, "disk_space_warning", "disk_space_warning:")
    try:
        read_only = await asyncio.wait_for(_read_only(context), settings.health_check_timeout_s)
    except TimeoutError:
        read_only = False
    return _report(total, read_only=read_only)
