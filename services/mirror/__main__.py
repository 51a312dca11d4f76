"""`python -m services.mirror`: the mirroring API and its workers in one process.

Reads every setting from QUAYSIDE_* variables (shared.config.Settings; the mirror's own are
QUAYSIDE_REGISTRY_URL, QUAYSIDE_REPO_MIRROR_*, QUAYSIDE_MIRROR_*, QUAYSIDE_SECRETS_KEY) plus
QUAYSIDE_LISTEN (`host:port`, default 0.0.0.0:5001); applies pending migrations first; stops on
SIGINT or SIGTERM, handing a sync under way back to the other workers.
"""

from __future__ import annotations

import asyncio
import logging

from pydantic_settings import BaseSettings, SettingsConfigDict

from services.mirror.app import create_app
from services.mirror.worker import run_mirror_worker
from shared.config import Settings
from shared.db.migrate import migrate
from shared.http_guard import NO_STORE, install_http_guard
from shared.serving import ListenAddress, ListenSetting, ServerStartError, serve, stop_event_on_signals

log = logging.getLogger("services.mirror")


class ProcessSettings(BaseSettings):
    """What only the process entry reads: where to listen."""

    model_config = SettingsConfigDict(env_prefix="QUAYSIDE_", extra="ignore")

    listen: ListenSetting = ListenAddress.parse("0.0.0.0:5001")


async def run(settings: Settings, address: ListenAddress) -> None:
    """Migrate the database, then serve the API with the workers until SIGINT or SIGTERM."""
    stop = stop_event_on_signals()
    applied = await migrate(settings.database_url)
    if applied:
        log.info("applied migrations: %s", ", ".join(applied))
    app = create_app(settings)
    install_http_guard(app, settings, {"/api/v1": (NO_STORE,)})
    await serve(app, address, run_mirror_worker(settings), stop, settings=settings)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(run(Settings(), ProcessSettings().listen))
    except ServerStartError as exc:
        log.error("%s", exc)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
