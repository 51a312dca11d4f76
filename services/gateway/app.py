"""The gateway's HTTP application: its own routes (services.gateway.api, ``/metrics``) and, for
every other path, the proxy to a region (services.gateway.proxying).

``/metrics`` is the gateway's, so a registry's ``/metrics`` is not reachable through the gateway
(scrape the registries directly); the registries' ``/docs`` neither is while the gateway serves none.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import APIRouter, FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.gateway import api
from services.gateway.api import GatewayContext
from services.gateway.proxying import Proxy
from services.gateway.routing import Regions
from services.gateway.settings import GatewaySettings
from services.gateway.worker import health_client
from shared.api_errors import quay_http_error_handler, quay_validation_error_handler
from shared.config import Settings
from shared.http_guard import install_http_guard, protocol_error
from shared.observability import metrics_response
from shared.tls import client_verification

log = logging.getLogger(__name__)

OWN_PATHS = frozenset({"/health/instance", "/health/endtoend", "/gateway/status", "/metrics"})

metrics_router = APIRouter(tags=["operations"])


@metrics_router.get("/metrics")
async def prometheus_metrics() -> Response:
    return await metrics_response()


def region_transports(
    settings: GatewaySettings, verify: ssl.SSLContext | bool
) -> dict[str, httpx.AsyncHTTPTransport]:
    """One connection pool per region; httpx's transport only (no cookie jar, no redirects)."""
    limits = httpx.Limits(
        max_connections=settings.max_connections_per_region,
        max_keepalive_connections=settings.max_connections_per_region,
    )
    return {
        name: httpx.AsyncHTTPTransport(limits=limits, retries=0, verify=verify) for name in settings.regions
    }


@asynccontextmanager
async def opened_transports(
    settings: GatewaySettings, transports: dict[str, httpx.AsyncBaseTransport]
) -> AsyncIterator[ssl.SSLContext | bool]:
    """Fill ``transports`` with the regions' connection pools for the block, closed after it;
    yields how https regions are verified."""
    verify = await asyncio.to_thread(client_verification, settings.ca_file)
    transports.update(region_transports(settings, verify))
    try:
        yield verify
    finally:
        for transport in transports.values():
            await transport.aclose()
        transports.clear()


def _own_app(
    settings: GatewaySettings,
    shared: Settings,
    regions: Regions,
    transports: dict[str, httpx.AsyncBaseTransport],
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with opened_transports(settings, transports) as verify, health_client(verify) as client:
            app.state.gateway = GatewayContext(settings=settings, regions=regions, health_client=client)
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
    # Opened by the lifespan (the CA file is read off the event loop), used by the proxy.
    transports: dict[str, httpx.AsyncBaseTransport] = {}
    proxy = Proxy(settings, regions, transports)
    return GatewayApp(_own_app(settings, shared, regions, transports), proxy)
