"""`python -m services.gc`: the garbage-collection status API and its worker in one process.

Reads every setting from QUAYSIDE_* variables (shared.config.Settings; its own are
QUAYSIDE_FEATURE_*GARBAGE_COLLECTION, QUAYSIDE_GARBAGE_COLLECTION_FREQUENCY and
QUAYSIDE_PUSH_TEMP_TAG_EXPIRATION_SEC) plus QUAYSIDE_LISTEN (`host:port`, default 0.0.0.0:5003);
applies pending migrations first; stops on SIGINT or SIGTERM (shared.service_main).
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from fastapi import FastAPI

from services.gc.app import create_app
from services.gc.pacing import lower_process_priority
from services.gc.worker import run_gc_worker
from shared.config import Settings
from shared.http_guard import NO_STORE, install_http_guard
from shared.service_main import run_service


def _parts(settings: Settings) -> tuple[FastAPI, Coroutine[Any, Any, None]]:
    lower_process_priority(settings.garbage_collection_niceness)
    app = create_app(settings)
    install_http_guard(app, settings, {"/api/v1": (NO_STORE,)})
    return app, run_gc_worker(settings)


def main() -> None:
    run_service("services.gc", "0.0.0.0:5003", _parts)


if __name__ == "__main__":
    main()
