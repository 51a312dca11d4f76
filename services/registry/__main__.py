"""`python -m services.registry`: the registry's HTTP API and its worker in one process.

Reads every setting from QUAYSIDE_* variables (shared.config.Settings) plus QUAYSIDE_LISTEN
(`host:port`, default 0.0.0.0:5000); applies pending migrations first; stops on SIGINT or SIGTERM.
"""

from __future__ import annotations

import asyncio
import logging

from pydantic_settings import BaseSettings, SettingsConfigDict

from services.registry.app import create_app
from services.registry.worker import publisher_for, run_worker
from shared.config import Settings
from shared.db.migrate import migrate
from shared.serving import ListenAddress, ListenSetting, ServerStartError, serve, stop_event_on_signals

log = logging.getLogger("services.registry")


class ProcessSettings(BaseSettings):
    """What only the process entry reads: where to listen."""

    model_config = SettingsConfigDict(env_prefix="QUAYSIDE_", extra="ignore")

    listen: ListenSetting = ListenAddress.parse("0.0.0.0:5000")


async def run(settings: Settings, address: ListenAddress) -> None:
    """Migrate the database, then serve the registry with its worker until SIGINT or SIGTERM."""
    stop = stop_event_on_signals()
    applied = await migrate(settings.database_url)
    if applied:
        log.info("applied migrations: %s", ", ".join(applied))
    worker = run_worker(settings, publisher_for(settings))
    await serve(create_app(settings), address, worker, stop)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(run(Settings(), ProcessSettings().listen))
    except ServerStartError as exc:
        log.error("%s", exc)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
