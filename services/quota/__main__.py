"""`python -m services.quota`: the quota service's HTTP app (/health/*, /metrics) and its consumers.

Reads every setting from QUAYSIDE_* variables (shared.config.Settings; the quota's own are
QUAYSIDE_DEFAULT_SYSTEM_REJECT_QUOTA_BYTES and QUAYSIDE_QUOTA_*) plus QUAYSIDE_LISTEN (`host:port`,
default 0.0.0.0:5004); applies pending migrations first; stops on SIGINT or SIGTERM. It needs
QUAYSIDE_AMQP_URL: on its own, it can only consume from RabbitMQ.
"""

from __future__ import annotations

import asyncio
import logging

from pydantic_settings import BaseSettings, SettingsConfigDict

from services.quota.app import create_app
from services.quota.worker import run_quota_worker
from shared.config import Settings
from shared.db.migrate import migrate
from shared.serving import ListenAddress, ListenSetting, ServerStartError, serve, stop_event_on_signals

log = logging.getLogger("services.quota")


class ProcessSettings(BaseSettings):
    """What only the process entry reads: where to listen."""

    model_config = SettingsConfigDict(env_prefix="QUAYSIDE_", extra="ignore")

    listen: ListenSetting = ListenAddress.parse("0.0.0.0:5004")


async def run(settings: Settings, address: ListenAddress) -> None:
    """Migrate the database, then serve the app with the consumers until SIGINT or SIGTERM."""
    if not settings.amqp_url:
        raise SystemExit("the quota service needs QUAYSIDE_AMQP_URL (embedded mode runs it in `quayside up`)")
    stop = stop_event_on_signals()
    applied = await migrate(settings.database_url)
    if applied:
        log.info("applied migrations: %s", ", ".join(applied))
    await serve(create_app(settings), address, run_quota_worker(settings), stop, settings=settings)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(run(Settings(), ProcessSettings().listen))
    except ServerStartError as exc:
        log.error("%s", exc)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
