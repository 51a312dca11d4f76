"""The registry process: its HTTP API and its worker (run by `python -m services.registry`).

Reads every setting from QUAYSIDE_* variables (shared.config.Settings) plus QUAYSIDE_LISTEN
(`host:port`, default 0.0.0.0:5000) and QUAYSIDE_HTTP_PROCESSES (default 1). The first process
applies pending migrations, runs the worker and serves HTTP; it starts HTTP_PROCESSES - 1 more
HTTP-only processes on the same port (SO_REUSEPORT), so that CPU-bound request handling can use
every core. One process is the default: an upload whose requests land on another process costs a
re-read of its chunks to rebuild the running digest. Stops on SIGINT or SIGTERM, taking its HTTP processes with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.registry.app import create_app
from services.registry.worker import publisher_for, run_worker
from shared.config import Settings
from shared.service_main import require_token_secret, wait_until_ready
from shared.serving import (
    ListenAddress,
    ListenSetting,
    ServerStartError,
    serve,
    settle_garbage_collector,
    shared_listening_socket,
    stop_event_on_signals,
)

log = logging.getLogger("services.registry")
_STOP_TIMEOUT_S = 15


class ProcessSettings(BaseSettings):
    """What only the process entry reads: where to listen, with how many HTTP processes."""

    model_config = SettingsConfigDict(env_prefix="QUAYSIDE_", extra="ignore")

    listen: ListenSetting = ListenAddress.parse("0.0.0.0:5000")
    http_processes: int = Field(default=1, ge=1, le=64)
    # Set by the first process on the HTTP-only processes it starts.
    http_replica: bool = False


async def _forever() -> None:
    await asyncio.Event().wait()


@contextlib.asynccontextmanager
async def _http_replicas(address: ListenAddress, count: int) -> AsyncIterator[None]:
    env = {
        **os.environ,
        "QUAYSIDE_LISTEN": address.authority,
        "QUAYSIDE_HTTP_REPLICA": "true",
        "QUAYSIDE_HTTP_PROCESSES": "1",
    }
    replicas = [
        await asyncio.create_subprocess_exec(sys.executable, "-m", "services.registry", env=env)
        for _ in range(count)
    ]
    try:
        yield
    finally:
        for replica in replicas:
            if replica.returncode is None:
                replica.send_signal(signal.SIGTERM)
        for replica in replicas:
            try:
                await asyncio.wait_for(replica.wait(), _STOP_TIMEOUT_S)
            except TimeoutError:
                replica.kill()
                await replica.wait()


async def run(settings: Settings, process: ProcessSettings) -> None:
    """Wait for the database and migrate it (shared.service_main.wait_until_ready), then serve the
    registry with its worker until SIGINT or SIGTERM."""
    stop = stop_event_on_signals()
    # The first process waits for the database and the schema (answering 503 meanwhile) before
    # it binds the shared socket; its HTTP processes start once it is ready.
    if not process.http_replica:
        require_token_secret(settings)
        if not await wait_until_ready(settings, process.listen, stop, log):
            return
    app = create_app(settings)
    settle_garbage_collector()
    sock = shared_listening_socket(process.listen)
    address = ListenAddress(host=process.listen.host, port=sock.getsockname()[1])
    if process.http_replica:
        await serve(app, address, _forever(), stop, sock, settings)
        return
    async with _http_replicas(address, process.http_processes - 1):
        await serve(app, address, run_worker(settings, publisher_for(settings)), stop, sock, settings)


def main() -> None:
    """Run with settings from the environment; exit 1 with one line when the server cannot start."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        # The standard event loop, not uvloop: under a saturating load uvloop served some
        # connections hundreds of milliseconds late (manifest GETs at 64 connections: p99 0.6-0.8 s
        # against a p50 of 40 ms; the standard loop 50-85 ms at the same rate). bench/README.md,
        # "Credentials benchmark".
        asyncio.run(run(Settings(), ProcessSettings()))
    except ServerStartError as exc:
        log.error("%s", exc)
        raise SystemExit(1) from None
