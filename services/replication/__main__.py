"""`python -m services.replication`: the replication service's HTTP app (status, /health/*, /metrics)
and its worker (the BlobPushed consumer and the copier).

Reads every setting from QUAYSIDE_* variables (shared.config.Settings; its own are
QUAYSIDE_FEATURE_STORAGE_REPLICATION, QUAYSIDE_DISTRIBUTED_STORAGE_DEFAULT_LOCATIONS and
QUAYSIDE_REPLICATION_*) plus QUAYSIDE_LISTEN (`host:port`, default 0.0.0.0:5005); applies pending
migrations first; stops on SIGINT or SIGTERM (shared.service_main). It needs QUAYSIDE_AMQP_URL: on
its own, it can only consume from RabbitMQ.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from fastapi import FastAPI

from services.replication.app import create_app
from services.replication.worker import run_replication_worker
from shared.config import Settings
from shared.service_main import run_service


def _parts(settings: Settings) -> tuple[FastAPI, Coroutine[Any, Any, None]]:
    return create_app(settings), run_replication_worker(settings)


def main() -> None:
    settings = Settings()
    if not settings.amqp_url:
        raise SystemExit(
            "the replication service needs QUAYSIDE_AMQP_URL (embedded mode runs it in `quayside up`)"
        )
    run_service("services.replication", "0.0.0.0:5005", _parts, settings)


if __name__ == "__main__":
    main()
