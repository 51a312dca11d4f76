"""Prometheus metrics of the mirror workers (served at the mirror app's /metrics).

Labels never carry names (/metrics may be open): per-repository series are labelled with the
repository's id, which the API maps to its name for those allowed to see it; totals have no
namespace label.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# quayside_mirror_last_sync_status values.
STATUS_FAILED, STATUS_SUCCEEDED, STATUS_SYNCING, STATUS_CANCELLED = 0, 1, 2, 3

PENDING_TAGS = Gauge(
    "quayside_mirror_pending_tags",
    "Tags the running sync of a mirrored repository still has to look at",
    ["repository_id"],
)
LAST_SYNC_STATUS = Gauge(
    "quayside_mirror_last_sync_status",
    "Status of the last sync of a mirrored repository (0 failed, 1 succeeded, 2 syncing, 3 cancelled)",
    ["repository_id"],
)
SYNC_DURATION = Histogram(
    "quayside_mirror_sync_duration_seconds",
    "Duration of mirror syncs",
    buckets=(1, 5, 15, 60, 300, 900, 3600, float("inf")),
)
SYNC_FAILURES = Counter(
    "quayside_mirror_sync_failures_total",
    "Mirror syncs that failed, by reason",
    ["reason"],
)
TAGS = Counter(
    "quayside_mirror_tags_total",
    "Tags handled by mirror syncs, by result (synced, skipped, failed, deleted)",
    ["result"],
)
BYTES_COPIED = Counter(
    "quayside_mirror_blob_bytes_copied_total",
    "Blob bytes fetched from upstream registries",
)
