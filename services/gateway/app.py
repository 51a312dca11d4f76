"""The gateway's HTTP application: its own routes (services.gateway.api, ``/metrics``) and, for
every other path, the proxy to a region or, for a service route's path, to that service
(services.gateway.proxying).

``/metrics`` is the gateway's, so a registry's ``/metrics`` is not reachable through the gateway
(scrape the registries directly); the registries' ``/docs`` neither is while the gateway serves none.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from fastapi import APIRouter, FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.gateway import api
from services.gateway.api import GatewayContext
from services.gateway.proxying import NOT_ADDED_HEADERS, Proxy
from services.gateway.routing import Regions, Services
from services.gateway.settings import GatewaySettings
from services.gateway.worker import health_client
from shared.api_errors import quay_http_error_handler, quay_validation_error_handler
from shared.config import Settings
from shared.http_guard import install_http_guard, protocol_error
from shared.observability import metrics_response
from shared.tls import client_verification

log = logging.getLogger(__name__)

# Idle upstream connections are closed after this, well before the registries close them
# (QUAYSIDE_HTTP_KEEP_ALIVE_S, 15 s): a request never goes out on a connection being closed.
IDLE_CONNECTION_S = 5.0
OWN_PATHS = frozenset({"/health/instance", "/health/endtoend", "/gateway/status", "/metrics"})

metrics_router = APIRouter(tags=["operations"])


@metrics_router.get("/metrics")
async def prometheus_metrics() -> Response:
    return await metrics_response()


def region_sessions(
    settings: GatewaySettings, verify: ssl.SSLContext | bool
) -> dict[str, aiohttp.ClientSession]:
    """One connection pool per region and per service route. Nothing added to what is forwarded: no cookie jar, no
    decompression, no headers of aiohttp's own (services.gateway.proxying.NOT_ADDED_HEADERS)."""
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=settings.connect_timeout_s, sock_read=settings.read_timeout_s
    )
    return {
        name: aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=settings.max_connections_per_region,
                limit_per_host=0,
                ssl=verify,
                keepalive_timeout=IDLE_CONNECTION_S,
            ),
            timeout=timeout,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            skip_auto_headers=NOT_ADDED_HEADERS,
            trust_env=False,
        )
        for name in settings.upstream_urls()
    }


@asynccontextmanager
async def opened_sessions(
    settings: GatewaySettings, sessions: dict[str, aiohttp.ClientSession]
) -> AsyncIterator[ssl.SSLContext | bool]:
    """Fill ``sessions`` with the regions' connection pools for the block, closed after it;
    yields how https regions are verified."""
    verify = await asyncio.to_thread(client_verification, settings.ca_file)
    sessions.update(region_sessions(settings, verify))
    try:
        yield verify
    finally:
        for session in sessions.values():
            await session.close()
        sessions.clear()


def _own_app(
    settings: GatewaySettings,
    shared: Settings,
    regions: Regions,
    services: Services,
    sessions: dict[str, aiohttp.ClientSession],
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with opened_sessions(settings, sessions) as verify, health_client(verify) as client:
            app.state.gateway = GatewayContext(
                settings=settings, regions=regions, services=services, health_client=client
            )
            yield

    # No /docs: they would shadow the registries'.
    app = FastAPI(
        title="Quayside gateway", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.add_exception_handler(RequestValidationError, quay_validation_error_handler)
    app.add_exception_handler(HTTPException, quay_http_error_handler)
    app.include_router(api.router)
    if shared.http_metrics:
        app.include_router(metrics_router)
    install_http_guard(app, shared)
    return app


class GatewayApp:
    """Pure ASGI dispatch: the gateway's own paths to its FastAPI app (which also runs the
    lifespan), every other request to the proxy. An unexpected failure of the proxy before its
    answer began is answered with a protocol-shaped 500 that closes the connection."""

    def __init__(self, own: ASGIApp, proxy: ASGIApp) -> None:
        self._own = own
        self._proxy = proxy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OWN_PATHS:
            await self._own(scope, receive, send)
        else:
            await self._forward(scope, receive, send)

    async def _forward(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def noting_start(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            await self._proxy(scope, receive, noting_start)
        except Exception:
            if started:
                raise
            log.exception("the gateway failed on %s %s", scope["method"], scope["path"])
            response = protocol_error(
                scope["path"], 500, "UNKNOWN", "internal gateway error", {"Connection": "close"}
            )
            await response(scope, receive, send)


def create_app(settings: GatewaySettings, shared: Settings, regions: Regions | None = None) -> GatewayApp:
    """The gateway for settings; its HTTP limits and /metrics switch from shared. ``regions``: the
    routing state the health watcher updates (made here when None)."""
    regions = regions or Regions(settings)
    services = Services(settings)
    # Opened by the lifespan (the CA file is read off the event loop), used by the proxy.
    sessions: dict[str, aiohttp.ClientSession] = {}
    proxy = Proxy(settings, regions, services, sessions)
    return GatewayApp(_own_app(settings, shared, regions, services, sessions), proxy)
