"""`python -m services.quota`: the quota service's HTTP app (/health/*, /metrics) and its consumers.

Reads every setting from QUAYSIDE_* variables (shared.config.Settings; the quota's own are
QUAYSIDE_DEFAULT_SYSTEM_REJECT_QUOTA_BYTES and QUAYSIDE_QUOTA_*) plus QUAYSIDE_LISTEN (`host:port`,
default 0.0.0.0:5004); applies pending migrations first; stops on SIGINT or SIGTERM
(shared.service_main). It needs QUAYSIDE_AMQP_URL: on its own, it can only consume from RabbitMQ.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from fastapi import FastAPI

from services.quota.app import create_app
from services.quota.worker import run_quota_worker
from shared.config import Settings
from shared.service_main import run_service


def _parts(settings: Settings) -> tuple[FastAPI, Coroutine[Any, Any, None]]:
    return create_app(settings), run_quota_worker(settings)


def main() -> None:
    settings = Settings()
    if not settings.amqp_url:
        raise SystemExit("the quota service needs QUAYSIDE_AMQP_URL (embedded mode runs it in `quayside up`)")
    run_service("services.quota", "0.0.0.0:5004", _parts, settings)


if __name__ == "__main__":
    main()
