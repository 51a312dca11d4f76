"""`python -m services.gc`: the garbage-collection status API and its worker in one process.

Reads every setting from QUAYSIDE_* variables (shared.config.Settings; its own are
QUAYSIDE_FEATURE_*GARBAGE_COLLECTION, QUAYSIDE_GARBAGE_COLLECTION_FREQUENCY and
QUAYSIDE_PUSH_TEMP_TAG_EXPIRATION_SEC) plus QUAYSIDE_LISTEN (`host:port`, default 0.0.0.0:5003);
applies pending migrations first; stops on SIGINT or SIGTERM.
"""

from __future__ import annotations

import asyncio
import logging

from pydantic_settings import BaseSettings, SettingsConfigDict

from services.gc.app import create_app
from services.gc.worker import run_gc_worker
from shared.config import Settings
from shared.db.migrate import migrate
from shared.http_guard import NO_STORE, install_http_guard
from shared.serving import ListenAddress, ListenSetting, ServerStartError, serve, stop_event_on_signals

log = logging.getLogger("services.gc")


class ProcessSettings(BaseSettings):
    """What only the process entry reads: where to listen."""

    model_config = SettingsConfigDict(env_prefix="QUAYSIDE_", extra="ignore")

    listen: ListenSetting = ListenAddress.parse("0.0.0.0:5003")


async def run(settings: Settings, address: ListenAddress) -> None:
    """Migrate the database, then serve the status API with the worker until SIGINT or SIGTERM."""
    stop = stop_event_on_signals()
    applied = await migrate(settings.database_url)
    if applied:
        log.info("applied migrations: %s", ", ".join(applied))
    app = create_app(settings)
    install_http_guard(app, settings, {"/api/v1": (NO_STORE,)})
    await serve(app, address, run_gc_worker(settings), stop, settings=settings)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(run(Settings(), ProcessSettings().listen))
    except ServerStartError as exc:
        log.error("%s", exc)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
