"""An ASGI app served in-process by shared.serving.serve on a free loopback port, for a block."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator

import httpx
from starlette.types import ASGIApp

from shared.config import Settings
from shared.serving import ListenAddress, serve
from tests.support.process import free_port
from tests.support.waiting import wait_until


async def _forever() -> None:
    await asyncio.Event().wait()


@contextlib.asynccontextmanager
async def served(
    app: ASGIApp, settings: Settings, *, ready_path: str = "/ok", verify: ssl.SSLContext | bool = True
) -> AsyncIterator[int]:
    """Serve app with settings' limits and TLS; yield its port once GET ready_path answers."""
    port = free_port()
    scheme = "https" if settings.tls_cert_file else "http"
    stop = asyncio.Event()
    server = asyncio.create_task(
        serve(app, ListenAddress(host="127.0.0.1", port=port), _forever(), stop, settings=settings)
    )

    async def ready() -> bool:
        if server.done():
            server.result()
        try:
            async with httpx.AsyncClient(verify=verify) as client:
                return (await client.get(f"{scheme}://127.0.0.1:{port}{ready_path}")).status_code < 500
        except httpx.TransportError:
            return False

    try:
        await wait_until(ready)
        yield port
    finally:
        stop.set()
        await server
