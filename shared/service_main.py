"""Starting a service process: `python -m services.<name>` (services.gc, services.mirror,
services.quota, …; the registry's own entry uses the same start-up) and the compose suite's migrate
step (`python -m shared.db.migrate`).

Settings come from QUAYSIDE_* (shared.config.Settings) plus QUAYSIDE_LISTEN (`host:port`),
QUAYSIDE_MIGRATIONS and QUAYSIDE_STARTUP_RETRY_MAX_S (StartupSettings). Before the service serves:

1. a service that signs tokens refuses to start without QUAYSIDE_TOKEN_SECRET or with the default one;
2. it waits for PostgreSQL and, when QUAYSIDE_AMQP_URL is set, RabbitMQ: each failed attempt is logged
   with its reason ("waiting for PostgreSQL at postgres:5432: <error>") and retried with back-off.
   Meanwhile its listen address answers 503 — /health/* in Quay's shape, naming what is missing — so
   an orchestrator sees an unhealthy service instead of a process exiting in a loop;
3. QUAYSIDE_MIGRATIONS=apply (the default): it applies pending migrations; `wait`: it waits until
   another process (the compose suite's migrate step) has applied every migration this code knows.

SIGINT or SIGTERM stops it, while it waits too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import aio_pika
import asyncpg
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from shared.config import Settings
from shared.db.migrate import apply_migrations, pending_migrations
from shared.health import health_report
from shared.http_guard import protocol_error
from shared.serving import (
    ListenAddress,
    ListenSetting,
    ServerStartError,
    serve,
    settle_garbage_collector,
    stop_event_on_signals,
)

# The service's app and its worker, both built from the settings once the database is migrated.
ServiceParts = Callable[[Settings], tuple[ASGIApp, Coroutine[Any, Any, None]]]

_DEFAULT_TOKEN_SECRET = Settings.model_fields["token_secret"].default
_MIN_TOKEN_SECRET_LENGTH = 16
_CONNECT_TIMEOUT_S = 5.0
_FIRST_RETRY_S = 0.5
# Errors meaning "not reachable yet": the server is down, starting, unknown to DNS or refusing us.
_POSTGRES_UNREACHABLE = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)
_BROKER_UNREACHABLE = (OSError, TimeoutError, aio_pika.exceptions.AMQPError)


class StartupSettings(BaseSettings):
    """What only the process start reads: how it gets the schema, how long it waits between attempts."""

    model_config = SettingsConfigDict(env_prefix="QUAYSIDE_", extra="ignore")

    # apply: this process applies pending migrations; wait: another one does (the compose migrate step).
    migrations: Literal["apply", "wait"] = "apply"
    # The longest pause between two attempts to reach a dependency (the first pause is 0.5 s, doubling).
    startup_retry_max_s: float = Field(default=10.0, gt=0, le=300)


def _listen_address(default: str) -> ListenAddress:
    class ProcessSettings(BaseSettings):
        """What only the process entry reads: where to listen."""

        model_config = SettingsConfigDict(env_prefix="QUAYSIDE_", extra="ignore")

        listen: ListenSetting = ListenAddress.parse(default)

    return ProcessSettings().listen


def require_token_secret(settings: Settings) -> None:
    """ServerStartError unless QUAYSIDE_TOKEN_SECRET is set to something other than the default, of
    at least 16 characters: tokens signed with a known secret could be forged by anyone."""
    secret = settings.token_secret
    if secret == _DEFAULT_TOKEN_SECRET or len(secret) < _MIN_TOKEN_SECRET_LENGTH:
        raise ServerStartError(
            "QUAYSIDE_TOKEN_SECRET must be set to a random string of at least "
            f"{_MIN_TOKEN_SECRET_LENGTH} characters (e.g. `openssl rand -hex 32`); the default is refused"
        )


def _authority(url: str, default_port: int) -> str:
    """`host:port` of a database or broker URL, without its credentials."""
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or default_port}"


def _reason(error: BaseException) -> str:
    return str(error) or type(error).__name__


@dataclass
class _Readiness:
    """What the start-up has reached so far, shown by the waiting process's health answer."""

    checks: dict[str, bool]
    reason: str = "starting"

    def failed(self, check: str, reason: str) -> None:
        self.checks[check] = False
        self.reason = reason


class _Startup:
    """Attempts to reach the database, the broker and a current schema, until one attempt succeeds."""

    def __init__(self, settings: Settings, startup: StartupSettings, log: logging.Logger) -> None:
        self.settings = settings
        self.startup = startup
        self.log = log
        checks = {"database": False, "schema": False}
        if settings.amqp_url:
            checks["broker"] = False
        self.readiness = _Readiness(checks)

    async def attempt(self) -> bool:
        """One attempt at every step; True when all passed. A failure is logged with its reason."""
        readiness = self.readiness
        address = _authority(self.settings.database_url, 5432)
        try:
            conn = await asyncpg.connect(self.settings.database_url, timeout=_CONNECT_TIMEOUT_S)
        except _POSTGRES_UNREACHABLE as error:
            self._waiting("database", f"waiting for PostgreSQL at {address}: {_reason(error)}")
            return False
        try:
            readiness.checks["database"] = True
            if self.settings.amqp_url and not await self._broker_answers(self.settings.amqp_url):
                return False
            return await self._schema_current(conn)
        except (OSError, asyncpg.exceptions.ConnectionDoesNotExistError) as error:
            self._waiting("database", f"waiting for PostgreSQL at {address}: {_reason(error)}")
            return False
        finally:
            await conn.close()

    async def until_ready(self) -> None:
        """After a failed attempt: pause 0.5 s, and twice as long after each further failure (up to
        the maximum), then attempt again, until an attempt succeeds."""
        pause = _FIRST_RETRY_S
        while True:
            await asyncio.sleep(pause)
            if await self.attempt():
                return
            pause = min(pause * 2, self.startup.startup_retry_max_s)

    async def _broker_answers(self, amqp_url: str) -> bool:
        try:
            connection = await aio_pika.connect(amqp_url, timeout=_CONNECT_TIMEOUT_S)
        except _BROKER_UNREACHABLE as error:
            self._waiting("broker", f"waiting for RabbitMQ at {_authority(amqp_url, 5672)}: {_reason(error)}")
            return False
        await connection.close()
        self.readiness.checks["broker"] = True
        return True

    async def _schema_current(self, conn: asyncpg.Connection) -> bool:
        if self.startup.migrations == "apply":
            applied = await apply_migrations(conn)
            if applied:
                self.log.info("applied migrations: %s", ", ".join(applied))
        elif pending := await pending_migrations(conn):
            self._waiting(
                "schema",
                f"waiting for migrations: {len(pending)} not applied yet (first {pending[0]}); "
                "the migrate step (python -m shared.db.migrate) applies them",
            )
            return False
        self.readiness.checks["schema"] = True
        return True

    def _waiting(self, check: str, reason: str) -> None:
        self.readiness.failed(check, reason)
        self.log.warning("%s", reason)


def _waiting_app(readiness: _Readiness) -> Starlette:
    """Answers 503 to everything while the process waits: /health/* with which dependency is missing,
    anything else with the reason in the error shape of its API."""

    async def health(_request: Request) -> Response:
        return health_report(dict(readiness.checks), {"Retry-After": "5"})

    async def unavailable(request: Request) -> Response:
        return protocol_error(request.url.path, 503, "UNAVAILABLE", readiness.reason, {"Retry-After": "5"})

    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    return Starlette(
        routes=[
            Route("/health/{check:path}", health, methods=["GET", "HEAD"]),
            Route("/{path:path}", unavailable, methods=methods),
        ]
    )


async def _unless_stopped(work: Coroutine[Any, Any, None], stop: asyncio.Event) -> None:
    """Run ``work`` until it ends or ``stop`` is set; raises what ``work`` raised."""
    working = asyncio.create_task(work)
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({working, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (working, stopped):
            task.cancel()
        await asyncio.gather(working, stopped, return_exceptions=True)
    if not working.cancelled() and (error := working.exception()) is not None:
        raise error


async def wait_until_ready(
    settings: Settings,
    address: ListenAddress | None,
    stop: asyncio.Event,
    log: logging.Logger,
    startup_settings: StartupSettings | None = None,
) -> bool:
    """Wait for PostgreSQL, RabbitMQ (when configured) and a current schema (see the module's
    docstring); False when ``stop`` was set first. While it waits, ``address`` (when given) answers
    503. Raises when applying a migration fails (a broken migration is not retried)."""
    startup = _Startup(settings, startup_settings or StartupSettings(), log)
    if await startup.attempt():
        return True
    if address is None:
        await _unless_stopped(startup.until_ready(), stop)
    else:
        await serve(_waiting_app(startup.readiness), address, startup.until_ready(), stop, settings=settings)
    if stop.is_set():
        return False
    log.info("PostgreSQL%s and the schema are ready", " and RabbitMQ" if settings.amqp_url else "")
    return True


async def _run(
    log: logging.Logger,
    settings: Settings,
    address: ListenAddress,
    parts: ServiceParts,
    signs_tokens: bool,
    uses_database: bool,
) -> None:
    stop = stop_event_on_signals()
    if signs_tokens:
        require_token_secret(settings)
    if uses_database and not await wait_until_ready(settings, address, stop, log):
        return
    app, worker = parts(settings)
    settle_garbage_collector()
    await serve(app, address, worker, stop, settings=settings)


def run_service(
    name: str,
    default_listen: str,
    parts: ServiceParts,
    settings: Settings | None = None,
    *,
    listen: ListenAddress | None = None,
    migrations: bool = True,
    signs_tokens: bool = False,
) -> None:
    """Run the service named ``name`` (its logger's name) until SIGINT or SIGTERM; exit status 1
    when it refuses to start or its server does not start.

    ``settings`` when the caller already read (and checked) them; ``listen`` when the service reads
    its address itself (otherwise QUAYSIDE_LISTEN, default ``default_listen``); ``migrations`` False
    for a service without a database (the gateway): it neither waits for one nor migrates it;
    ``signs_tokens`` when the service signs tokens with QUAYSIDE_TOKEN_SECRET.
    """
    _configure_logging()
    log = logging.getLogger(name)
    address = listen or _listen_address(default_listen)
    try:
        asyncio.run(_run(log, settings or Settings(), address, parts, signs_tokens, migrations))
    except ServerStartError as exc:
        log.error("%s", exc)
        raise SystemExit(1) from None


def run_migrate_step() -> None:
    """`python -m shared.db.migrate`: wait for PostgreSQL (logging why), apply what is pending, exit
    (status 1 when stopped before)."""
    _configure_logging()
    log = logging.getLogger("shared.db.migrate")

    async def migrate_when_ready() -> bool:
        settings = Settings().model_copy(update={"amqp_url": None})
        return await wait_until_ready(
            settings, None, stop_event_on_signals(), log, StartupSettings(migrations="apply")
        )

    if not asyncio.run(migrate_when_ready()):
        raise SystemExit(1)


def _configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
