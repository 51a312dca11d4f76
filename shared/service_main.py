"""`python -m services.<name>` of a service that serves one HTTP app with its worker beside it
(services.gc, services.mirror, services.quota): settings from QUAYSIDE_* (shared.config.Settings)
plus QUAYSIDE_LISTEN (`host:port`), pending migrations applied first, stopped by SIGINT or SIGTERM.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.types import ASGIApp

from shared.config import Settings
from shared.db.migrate import migrate
from shared.serving import ListenAddress, ListenSetting, ServerStartError, serve, stop_event_on_signals

# The service's app and its worker, both built from the settings once the database is migrated.
ServiceParts = Callable[[Settings], tuple[ASGIApp, Coroutine[Any, Any, None]]]


def _listen_address(default: str) -> ListenAddress:
    class ProcessSettings(BaseSettings):
        """What only the process entry reads: where to listen."""

        model_config = SettingsConfigDict(env_prefix="QUAYSIDE_", extra="ignore")

        listen: ListenSetting = ListenAddress.parse(default)

    return ProcessSettings().listen


async def _run(log: logging.Logger, settings: Settings, address: ListenAddress, parts: ServiceParts) -> None:
    stop = stop_event_on_signals()
    applied = await migrate(settings.database_url)
    if applied:
        log.info("applied migrations: %s", ", ".join(applied))
    app, worker = parts(settings)
    await serve(app, address, worker, stop, settings=settings)


def run_service(
    name: str, default_listen: str, parts: ServiceParts, settings: Settings | None = None
) -> None:
    """Run the service named ``name`` (its logger's name) until SIGINT or SIGTERM; exit status 1
    when its server does not start. ``settings`` when the caller already read (and checked) them."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger(name)
    try:
        asyncio.run(_run(log, settings or Settings(), _listen_address(default_listen), parts))
    except ServerStartError as exc:
        log.error("%s", exc)
        raise SystemExit(1) from None
