"""Prometheus metrics of the quota service (served at its /metrics).

Usage per namespace is high-cardinality and would carry names: only totals and counters here.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

RECHECKS = Counter(
    "quayside_quota_recheck_total",
    "Events whose digests the quota service re-checked, by event (manifest-pushed, blobs-collected, …)",
    ["event"],
)
BYTES_MOVED = Counter(
    "quayside_quota_bytes_total",
    "Bytes the quota service counted in or released from namespace usage, by direction (added, removed)",
    ["direction"],
)
CROSSINGS = Counter(
    "quayside_quota_crossings_total",
    "Quota limits crossed and announced (QuotaWarning, QuotaExceeded), by kind (Warning, Reject)",
    ["kind"],
)
RECONCILE_DRIFT = Gauge(
    "quayside_quota_reconcile_drift_bytes",
    "Sum over namespaces of |recorded - recounted| usage found by the last reconcile pass",
)
RECONCILE_DRIFTED = Gauge(
    "quayside_quota_reconcile_drifted_namespaces",
    "Namespaces whose records differed from the recount in the last reconcile pass",
)
USAGE_TOTAL = Gauge("quayside_quota_usage_bytes", "Sum of every namespace's counted usage")
NAMESPACES_OVER = Gauge(
    "quayside_quota_namespaces_over_reject", "Namespaces at or over a Reject limit (their own or the default)"
)
