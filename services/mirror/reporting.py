"""What a sync tells the world: usage log entries (Quay's repo_mirror_sync_* kinds), events through
the outbox (MirrorStarted, MirrorSucceeded, MirrorFailed) and Prometheus metrics.

The log and event functions write in the caller's transaction, so they exist exactly when the
change of the mirror's state they describe does.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from services.mirror import metrics
from services.mirror.jobs import MirrorJob, SyncReport
from shared.events.models import MirrorFailed, MirrorStarted, MirrorSucceeded
from shared.events.outbox import enqueue
from shared.usage_logs import record


async def _log(conn: asyncpg.Connection, job: MirrorJob, kind: str, metadata: dict[str, Any]) -> None:
    await record(
        conn,
        kind,
        performer=None,
        ip=None,
        namespace=job.namespace,
        repository=job.repository_name,
        metadata=metadata,
    )


async def record_started(conn: asyncpg.Connection, job: MirrorJob) -> None:
    """repo_mirror_sync_started and MirrorStarted."""
    metadata: dict[str, Any] = {"verb": "start", "message": job.describe()}
    if job.claimed_from == "SYNCING":
        metadata["resumed"] = True  # the worker that held it stopped renewing its lease
    await _log(conn, job, "repo_mirror_sync_started", metadata)
    await enqueue(
        conn,
        MirrorStarted(
            namespace=job.namespace, repository=job.repository_name, external_reference=job.external_reference
        ),
    )


def observe_started(job: MirrorJob) -> None:
    metrics.LAST_SYNC_STATUS.labels(str(job.repository_id)).set(metrics.STATUS_SYNCING)


async def record_tag(conn: asyncpg.Connection, job: MirrorJob, tag: str, error: str | None) -> None:
    """repo_mirror_sync_tag_success for a tag copied, repo_mirror_sync_tag_failed with the error."""
    source = f"{job.external_reference}:{tag}"
    if error is None:
        await _log(conn, job, "repo_mirror_sync_tag_success", {"tag": tag, "message": f"'{source}' synced"})
    else:
        await _log(
            conn,
            job,
            "repo_mirror_sync_tag_failed",
            {"tag": tag, "message": f"'{source}' failed to sync", "error": error},
        )


def _finish_metadata(job: MirrorJob, report: SyncReport) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "verb": "end",
        "message": job.describe(),
        "tags": ", ".join(report.tags_synced),
        "tags_skipped": len(report.tags_skipped),
        "tags_deleted": ", ".join(report.tags_deleted),
        "bytes_copied": report.bytes_copied,
    }
    if report.status != "SUCCESS":
        metadata["error"] = report.error
        metadata["tags_failed"] = ", ".join(report.tags_failed)
        metadata["rolled_back"] = report.rolled_back
    return metadata


async def record_finished(conn: asyncpg.Connection, job: MirrorJob, report: SyncReport) -> None:
    """repo_mirror_sync_success and MirrorSucceeded, or repo_mirror_sync_failed and MirrorFailed
    (a cancelled sync is a failed one whose error says so)."""
    if report.status == "SUCCESS":
        await _log(conn, job, "repo_mirror_sync_success", _finish_metadata(job, report))
        event: MirrorSucceeded | MirrorFailed = MirrorSucceeded(
            namespace=job.namespace,
            repository=job.repository_name,
            external_reference=job.external_reference,
            tags=report.tags_synced,
            tags_skipped=report.tags_skipped,
            tags_deleted=report.tags_deleted,
            bytes_copied=report.bytes_copied,
        )
    else:
        await _log(conn, job, "repo_mirror_sync_failed", _finish_metadata(job, report))
        event = MirrorFailed(
            namespace=job.namespace,
            repository=job.repository_name,
            external_reference=job.external_reference,
            error=report.error or "sync failed",
            tags=report.tags_synced,
            tags_skipped=report.tags_skipped,
            tags_failed=list(report.tags_failed),
            tags_deleted=report.tags_deleted,
            bytes_copied=report.bytes_copied,
            rolled_back=report.rolled_back,
        )
    await enqueue(conn, event)


def observe_finished(job: MirrorJob, report: SyncReport) -> None:
    """Metrics of a finished sync."""
    status = {
        "SUCCESS": metrics.STATUS_SUCCEEDED,
        "FAIL": metrics.STATUS_FAILED,
        "CANCEL": metrics.STATUS_CANCELLED,
    }[report.status]
    metrics.LAST_SYNC_STATUS.labels(str(job.repository_id)).set(status)
    metrics.PENDING_TAGS.labels(str(job.repository_id)).set(0)
    duration = (report.finished_at - report.started_at).total_seconds()
    metrics.SYNC_DURATION.observe(duration)
    if report.status == "FAIL":
        metrics.SYNC_FAILURES.labels(report.reason or "unknown").inc()
    for result, count in (
        ("synced", len(report.tags_synced)),
        ("skipped", len(report.tags_skipped)),
        ("failed", len(report.tags_failed)),
        ("deleted", len(report.tags_deleted)),
    ):
        metrics.TAGS.labels(result).inc(count)
    metrics.BYTES_COPIED.inc(report.bytes_copied)
