"""Prometheus metrics every service shares: HTTP requests by route template and status, their
latency, events published by the outbox relay, and the /metrics exposition.

Metrics live in prometheus_client's default registry. A service running as several processes
sets PROMETHEUS_MULTIPROC_DIR (an empty folder, the same for every process, set before they
start): each process then keeps its values there and /metrics answers the totals over every
process, whichever of them serves the scrape.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterable, Sequence

from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The route label of requests no route matched: their paths are not labels (unbounded values).
UNMATCHED_ROUTE = "<unmatched>"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

HTTP_REQUESTS = Counter(
    "quayside_http_requests",
    "HTTP requests answered, by service, method, route template and status.",
    ["service", "method", "route", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "quayside_http_request_duration_seconds",
    "Time from a request's arrival to the end of its response, by service, method and route template.",
    ["service", "method", "route"],
)
EVENTS_PUBLISHED = Counter(
    "quayside_events_published",
    "Outbox events the event bus confirmed, by routing key (at least once: a retried event counts again).",
    ["routing_key"],
)
EVENTS_PUBLISH_FAILED = Counter(
    "quayside_events_publish_failures",
    "Outbox events the event bus did not confirm, by routing key; they stay pending and are retried.",
    ["routing_key"],
)


class RequestMetrics:
    """Pure ASGI middleware counting every HTTP request and timing it, labelled by route template.

    The template (e.g. ``/v2/{name:path}/manifests/{reference}``) is read from the matched route
    once the app has answered; a request no route matched is labelled UNMATCHED_ROUTE. A request
    that ends in an unhandled exception counts as a 500.
    """

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self._service = service
        # Label lookups take a lock in prometheus_client; the children are kept per label set.
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            self._record(scope, status, time.perf_counter() - started)

    def _record(self, scope: Scope, status: int, elapsed_s: float) -> None:
        method = scope["method"] if scope["method"] in _METHODS else "OTHER"
        route = scope.get("route")
        template = getattr(route, "path", UNMATCHED_ROUTE)
        key = (method, template, status)
        children = self._children.get(key)
        if children is None:
            children = (
                HTTP_REQUESTS.labels(self._service, method, template, str(status)),
                HTTP_REQUEST_DURATION.labels(self._service, method, template),
            )
            self._children[key] = children
        requests, duration = children
        requests.inc()
        duration.observe(elapsed_s)


class _Collected:
    """A collector answering metric families gathered beforehand."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


def _exposition(scrape_time: Sequence[Metric]) -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        families = list(MultiProcessCollector(None).collect())
    else:
        families = list(REGISTRY.collect())
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collected([*families, *scrape_time]))
    return generate_latest(registry)


async def metrics_response(scrape_time: Sequence[Metric] = ()) -> Response:
    """The Prometheus text exposition of every metric, plus ``scrape_time``: families whose values
    the caller read for this scrape (a database count, say)."""
    body = await asyncio.to_thread(_exposition, scrape_time)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
