"""Prometheus metrics of the replication service (served at its /metrics).

Per-location backlog and totals are read from the database at scrape time (scrape_families), so
every replica of the service answers the same figures, persisted across restarts; this process's
own copy attempts are counted here.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from shared.replication import ReplicationStatus

COPIES = Counter(
    "quayside_replication_copies_total",
    "Copy attempts of this process, by target location and outcome (copied, failed)",
    ["location", "outcome"],
)
COPY_SECONDS = Histogram(
    "quayside_replication_copy_seconds",
    "Duration of this process's successful copies (read, write, verify, record), by target location",
    ["location"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)


def scrape_families(status: ReplicationStatus) -> list[Metric]:
    """The status as gauges (pending, in flight, failed, lag) and counters (blobs and bytes copied)."""
    gauges = {
        "pending": GaugeMetricFamily(
            "quayside_replication_pending",
            "Copies waiting to be made, by target location",
            labels=["location"],
        ),
        "in_flight": GaugeMetricFamily(
            "quayside_replication_in_flight", "Copies being made now, by target location", labels=["location"]
        ),
        "failed": GaugeMetricFamily(
            "quayside_replication_failed",
            "Copies whose last attempt failed (retried with back-off), by target location",
            labels=["location"],
        ),
        "lag_seconds": GaugeMetricFamily(
            "quayside_replication_lag_seconds",
            "Age of the oldest copy not made yet (0: none), by target location",
            labels=["location"],
        ),
    }
    blobs = CounterMetricFamily(
        "quayside_replication_copied_blobs",
        "Blobs copied and verified, by target location",
        labels=["location"],
    )
    copied_bytes = CounterMetricFamily(
        "quayside_replication_copied_bytes",
        "Bytes copied and verified, by target location",
        labels=["location"],
    )
    for entry in status.locations:
        for field, family in gauges.items():
            family.add_metric([entry.location], float(getattr(entry, field)))
        blobs.add_metric([entry.location], float(entry.blobs_copied))
        copied_bytes.add_metric([entry.location], float(entry.bytes_copied))
    return [*gauges.values(), blobs, copied_bytes]
