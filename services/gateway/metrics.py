"""Prometheus metrics of the gateway (served at the gateway's own /metrics, which shadows the
registries' /metrics: scrape those on the registries themselves)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ROUTED = Counter(
    "quayside_gateway_routed_requests",
    "Requests the gateway forwarded, by the region that answered",
    ["region"],
)
FAILOVERS = Counter(
    "quayside_gateway_failovers",
    "Requests sent to another region than the client's home region, because the home region was down",
    ["home", "region"],
)
UPSTREAM_LATENCY = Histogram(
    "quayside_gateway_upstream_latency_seconds",
    "Time from forwarding a request to the region's response headers, by region",
    ["region"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, float("inf")),
)
REGION_UP = Gauge(
    "quayside_gateway_region_up",
    "Whether the gateway considers a region healthy (1) or down (0)",
    ["region"],
)
UPSTREAM_FAILURES = Counter(
    "quayside_gateway_upstream_failures",
    "Forwarded requests that failed before the region answered, by region and kind"
    " (connect, timeout, transport)",
    ["region", "kind"],
)
SERVICE_ROUTED = Counter(
    "quayside_gateway_service_routed_requests",
    "Requests the gateway forwarded to a service route (QUAYSIDE_GATEWAY_SERVICES), by service",
    ["service"],
)
SERVICE_FAILURES = Counter(
    "quayside_gateway_service_failures",
    "Requests to a service route that failed before the service answered, by service and kind"
    " (connect, timeout, transport)",
    ["service", "kind"],
)
