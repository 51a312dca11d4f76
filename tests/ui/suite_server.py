"""`python -m tests.ui.suite_server`: the registry app with the mirroring API mounted and the mirror
worker beside it, in one process on the QUAYSIDE_* settings: the embedded suite's composition
(quayside/embedded.py) on the test's database, so that the UI reaches the mirroring API on its own
origin, as it does under `quayside up`."""

from __future__ import annotations

import asyncio
import os

from services.mirror.app import include_mirror_api
from services.mirror.worker import run_mirror_worker
from services.registry.app import create_app
from shared.config import Settings
from shared.serving import ListenAddress, serve, stop_event_on_signals


async def main() -> None:
    settings = Settings()
    app = create_app(settings)
    include_mirror_api(app, settings)
    stop = stop_event_on_signals()
    listen = ListenAddress.parse(os.environ["QUAYSIDE_LISTEN"])
    await serve(app, listen, run_mirror_worker(settings), stop, settings=settings)


if __name__ == "__main__":
    asyncio.run(main())
