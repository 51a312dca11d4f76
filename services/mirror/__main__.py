"""`python -m services.mirror`: the mirroring API and its workers in one process.

Reads every setting from QUAYSIDE_* variables (shared.config.Settings; the mirror's own are
QUAYSIDE_REGISTRY_URL, QUAYSIDE_REPO_MIRROR_*, QUAYSIDE_MIRROR_*, QUAYSIDE_SECRETS_KEY) plus
QUAYSIDE_LISTEN (`host:port`, default 0.0.0.0:5001); refuses the default QUAYSIDE_TOKEN_SECRET (it signs
the robot's tokens), waits for the database and applies pending migrations first; stops on
SIGINT or SIGTERM (shared.service_main), handing a sync under way back to the other workers.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from fastapi import FastAPI

from services.mirror.app import create_app
from services.mirror.worker import run_mirror_worker
from shared.config import Settings
from shared.http_guard import NO_STORE, install_http_guard
from shared.service_main import run_service


def _parts(settings: Settings) -> tuple[FastAPI, Coroutine[Any, Any, None]]:
    app = create_app(settings)
    install_http_guard(app, settings, {"/api/v1": (NO_STORE,)})
    return app, run_mirror_worker(settings)


def main() -> None:
    run_service("services.mirror", "0.0.0.0:5001", _parts, signs_tokens=True)


if __name__ == "__main__":
    main()
