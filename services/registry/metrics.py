"""The registry's metrics: blob bytes pushed and pulled, and GET /metrics, which adds the outbox
backlog read at scrape time to the shared metrics (shared.observability)."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
from fastapi import APIRouter, Depends, Response
from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.registry.context import RegistryContext, get_context
from shared.events.relay import outbox_backlog
from shared.observability import metrics_response

log = logging.getLogger(__name__)

BLOB_BYTES_PUSHED = Counter(
    "quayside_registry_blob_pushed_bytes",
    "Blob bytes received by upload requests (POST, PATCH, PUT) the registry accepted.",
)
BLOB_BYTES_PULLED = Counter(
    "quayside_registry_blob_pulled_bytes",
    "Blob bytes answered to blob GETs (200 or 206); redirects to a storage location serve none here.",
)

_UPLOAD_METHODS = frozenset({"POST", "PATCH", "PUT"})
_DATABASE_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)

router = APIRouter()


def _blob_path_kind(path: str) -> str | None:
    """'upload' for /v2/<name>/blobs/uploads..., 'blob' for /v2/<name>/blobs/<digest>, else None."""
    if not path.startswith("/v2/"):
        return None
    if "/blobs/uploads" in path:
        return "upload"
    return "blob" if "/blobs/" in path else None


class BlobTransferMetrics:
    """Pure ASGI middleware counting blob bytes: the request bodies of accepted (2xx) uploads, and
    the Content-Length of successful blob GETs. Other requests pass untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = _blob_path_kind(scope["path"]) if scope["type"] == "http" else None
        if kind == "blob" and scope["method"] == "GET":
            await self.app(scope, receive, _counting_served_bytes(send))
        elif kind == "upload" and scope["method"] in _UPLOAD_METHODS:
            await _count_received_bytes(self.app, scope, receive, send)
        else:
            await self.app(scope, receive, send)


def _counting_served_bytes(send: Send) -> Send:
    async def send_counting(message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] in (200, 206):
            length = Headers(raw=message["headers"]).get("content-length", "")
            if length.isdigit():
                BLOB_BYTES_PULLED.inc(int(length))
        await send(message)

    return send_counting


async def _count_received_bytes(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    received = 0

    async def receive_counting() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
        return message

    async def send_counting(message: Message) -> None:
        if message["type"] == "http.response.start" and 200 <= message["status"] < 300:
            BLOB_BYTES_PUSHED.inc(received)
        await send(message)

    await app(scope, receive_counting, send_counting)


async def _outbox_backlog_metric(context: RegistryContext) -> list[Metric]:
    """The outbox backlog gauge, or nothing when the database does not answer in time."""
    try:
        async with asyncio.timeout(context.settings.health_check_timeout_s):
            backlog = await outbox_backlog(context.pool)
    except _DATABASE_ERRORS as error:
        log.warning("outbox backlog left out of /metrics: %r", error)
        return []
    return [
        GaugeMetricFamily("quayside_outbox_backlog", "Events waiting in the outbox to be published.", backlog)
    ]


@router.get("/metrics", include_in_schema=False)
async def metrics(context: RegistryContext = Depends(get_context)) -> Response:
    """Every metric in the Prometheus text format."""
    return await metrics_response(await _outbox_backlog_metric(context))
