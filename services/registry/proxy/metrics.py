"""Prometheus metrics of the proxy cache (served at the registry's /metrics)."""

from __future__ import annotations

from prometheus_client import Counter

HITS = Counter(
    "quayside_proxy_cache_hits",
    "Manifest pulls in cache organizations answered from the cache without asking the upstream.",
)
MISSES = Counter(
    "quayside_proxy_cache_misses",
    "Pulls in cache organizations that had to ask the upstream, by kind (manifest, blob).",
    ["kind"],
)
UPSTREAM_BYTES = Counter(
    "quayside_proxy_cache_upstream_bytes",
    "Blob bytes read from upstream registries into the cache.",
)
COALESCED_WAITS = Counter(
    "quayside_proxy_cache_coalesced_waits",
    "Pulls that waited for another request's upstream fetch of the same content instead of their own.",
)
STALE_SERVES = Counter(
    "quayside_proxy_cache_stale_serves",
    "Cached manifests served past their check time because the upstream was unavailable.",
)
EVICTIONS = Counter(
    "quayside_proxy_cache_evictions",
    "Cached manifests evicted to make room for a fill in a cache organization at its Reject limit.",
)
