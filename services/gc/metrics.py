"""Prometheus metrics of garbage collection: Quay's names under the quayside_ prefix, plus what Quay
cannot tell (bytes reclaimed per storage location, rows deleted per table). Dry runs move none."""

from __future__ import annotations

from prometheus_client import Counter

from services.gc.tally import PassTally

ITERATIONS = Counter("quayside_gc_iterations", "Garbage-collection passes run")
NAMESPACES_PURGED = Counter("quayside_gc_namespaces_purged", "Deleted organizations and users purged")
REPOSITORIES_PURGED = Counter(
    "quayside_gc_repos_purged", "Deleted repositories purged (on their own or with their namespace)"
)
BLOBS_DELETED = Counter("quayside_gc_storage_blobs_deleted", "Blobs deleted from storage")
BYTES_RECLAIMED = Counter(
    "quayside_gc_bytes_reclaimed", "Blob bytes deleted from storage, by location", ["location"]
)
ROWS_DELETED = Counter("quayside_gc_rows_deleted", "Database rows deleted, by table", ["table"])


def record(tally: PassTally) -> None:
    ITERATIONS.inc()
    NAMESPACES_PURGED.inc(tally.namespaces_purged)
    REPOSITORIES_PURGED.inc(tally.repositories_purged)
    BLOBS_DELETED.inc(len(tally.blobs))
    for location, size in tally.bytes_by_location.items():
        BYTES_RECLAIMED.labels(location).inc(size)
    for table, rows in tally.rows_by_table.items():
        ROWS_DELETED.labels(table).inc(rows)
