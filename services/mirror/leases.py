"""Claiming due mirrors with a lease, keeping the lease while syncing, and releasing it.

A worker claims one due mirror at a time (``FOR UPDATE SKIP LOCKED``: two workers never get the same
row) and holds it for ``lease_s``, renewed at every checkpoint of the sync and by a heartbeat. A
mirror whose lease ran out while SYNCING is due again: the worker holding it died, another one
syncs it. A worker that finds its lease gone stops: cancelled (sync-cancel took it back) or
pre-empted (another worker took it over after it stopped renewing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Literal

import asyncpg

from services.mirror import reporting
from services.mirror.config_store import MAX_SYNC_RETRIES, MIRROR_COLUMNS, MIRROR_ROBOT_JOIN
from services.mirror.jobs import MirrorJob, SyncProgress, SyncReport

log = logging.getLogger(__name__)

Interruption = Literal["cancelled", "preempted"]

# Due: asked for (sync-now); abandoned (SYNCING, lease run out); or scheduled (enabled, start date
# reached, retries left). SYNC_NOW first, then the longest overdue.
_CLAIM = f"""
WITH due AS (
    SELECT m.id, m.sync_status AS claimed_from
    FROM mirror_config m JOIN repository r ON r.id = m.repository_id
    WHERE r.state = 'MIRROR' AND (
        m.sync_status = 'SYNC_NOW'
        OR (m.sync_status = 'SYNCING' AND m.lease_expires_at < now())
        OR (m.is_enabled AND m.sync_status <> 'SYNCING' AND m.sync_retries_remaining > 0
            AND m.sync_start_date <= now()))
    ORDER BY m.sync_status = 'SYNC_NOW' DESC, m.sync_start_date
    LIMIT 1
    FOR UPDATE OF m SKIP LOCKED
), claimed AS (
    UPDATE mirror_config m
    SET sync_status = 'SYNCING', lease_owner = $1, lease_expires_at = now() + make_interval(secs => $2),
        progress = $3
    FROM due WHERE m.id = due.id
    RETURNING m.*, due.claimed_from
)
SELECT {MIRROR_COLUMNS}, n.name AS namespace, repo.name AS repository_name,
       r.namespace_id AS robot_namespace_id, m.claimed_from
FROM claimed m
JOIN repository repo ON repo.id = m.repository_id
JOIN namespace n ON n.id = repo.namespace_id
{MIRROR_ROBOT_JOIN}
"""


class SyncInterruptedError(Exception):
    """The worker no longer holds the mirror: the sync must stop where it is."""

    def __init__(self, interruption: Interruption) -> None:
        super().__init__(f"sync {interruption}")
        self.interruption: Interruption = interruption


async def claim_next(pool: asyncpg.Pool, lease_s: float) -> MirrorJob | None:
    """Claim the most urgent due mirror for a new lease owner, recording the sync's start (log and
    MirrorStarted) in the same transaction; None when nothing is due."""
    owner = uuid.uuid4()
    progress = SyncProgress(started_at=datetime.now(UTC)).model_dump(mode="json")
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(_CLAIM, owner, lease_s, progress)
        if row is None:
            return None
        job = MirrorJob(**dict(row))
        await reporting.record_started(conn, job)
    reporting.observe_started(job)
    return job


class Lease:
    """A worker's hold on a claimed mirror."""

    def __init__(self, pool: asyncpg.Pool, job: MirrorJob, lease_s: float) -> None:
        self._pool = pool
        self._job = job
        self._lease_s = lease_s
        self._lost: Interruption | None = None

    async def renew(self, progress: SyncProgress) -> None:
        """Extend the lease and publish the progress; SyncInterruptedError when the lease is gone."""
        if self._lost is not None:
            raise SyncInterruptedError(self._lost)
        renewed = await self._pool.fetchval(
            "UPDATE mirror_config SET lease_expires_at = now() + make_interval(secs => $3), progress = $4"
            " WHERE id = $1 AND lease_owner = $2 AND sync_status = 'SYNCING' RETURNING id",
            self._job.id,
            self._job.owner,
            self._lease_s,
            progress.model_dump(mode="json"),
        )
        if renewed is None:
            self._lost = await self._why_lost()
            raise SyncInterruptedError(self._lost)

    @contextlib.asynccontextmanager
    async def heartbeat(self, progress: Callable[[], SyncProgress]) -> AsyncIterator[None]:
        """Renew the lease every third of its length while the block runs (a single long blob copy
        must not lose it); a lost lease is reported by the next renew()."""
        task = asyncio.create_task(self._beat(progress))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def expire(self) -> None:
        """Give the mirror up: claimable by any worker at once, as if this one had died."""
        self._lost = "preempted"
        await self._pool.execute(
            "UPDATE mirror_config SET lease_expires_at = now() WHERE id = $1 AND lease_owner = $2",
            self._job.id,
            self._job.owner,
        )

    async def _beat(self, progress: Callable[[], SyncProgress]) -> None:
        while self._lost is None:
            await asyncio.sleep(self._lease_s / 3)
            try:
                await self.renew(progress())
            except SyncInterruptedError:
                return
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                log.warning("cannot renew the lease of mirror %s: %r", self._job.full_name, error)

    async def _why_lost(self) -> Interruption:
        row = await self._pool.fetchrow(
            "SELECT sync_status, lease_owner FROM mirror_config WHERE id = $1", self._job.id
        )
        if row is not None and row["sync_status"] == "SYNCING" and row["lease_owner"] is not None:
            return "preempted"
        return "cancelled"


def next_scheduled_start(start: datetime, interval_s: int, now: datetime) -> datetime:
    """The first start date + k * interval after now (the start date itself while in the future)."""
    if start > now:
        return start
    periods = int((now - start).total_seconds() // interval_s) + 1
    return start + timedelta(seconds=periods * interval_s)


async def release(pool: asyncpg.Pool, job: MirrorJob, report: SyncReport, retry_delay_s: float) -> None:
    """End the sync: status, next start date and retries per the result, the report kept as
    last_sync, log entries and the MirrorSucceeded/MirrorFailed event, in one transaction.

    A cancelled sync leaves the status to the cancel (and to whatever the API did since). Failures
    are retried after retry_delay_s while retries remain, then wait for the next interval.
    """
    now = datetime.now(UTC)
    scheduled = next_scheduled_start(job.sync_start_date, job.sync_interval_s, now)
    retries = MAX_SYNC_RETRIES
    start = scheduled
    if report.status == "FAIL" and job.sync_retries_remaining > 1:
        retries = job.sync_retries_remaining - 1
        start = min(scheduled, now + timedelta(seconds=retry_delay_s))
    last_sync = report.model_dump(mode="json")
    async with pool.acquire() as conn, conn.transaction():
        released = None
        if report.status != "CANCEL":
            released = await conn.fetchval(
                "UPDATE mirror_config SET sync_status = $3, sync_start_date = $4, sync_retries_remaining = $5,"
                " lease_owner = NULL, lease_expires_at = NULL, progress = NULL, last_sync = $6"
                " WHERE id = $1 AND lease_owner = $2 RETURNING id",
                job.id,
                job.owner,
                report.status,
                start,
                retries,
                last_sync,
            )
        if released is None:
            # Cancelled, during the sync or right after its last checkpoint: the status is the API's.
            await conn.execute(
                "UPDATE mirror_config SET progress = NULL, last_sync = $2 WHERE id = $1 AND lease_owner IS NULL",
                job.id,
                last_sync,
            )
        await reporting.record_finished(conn, job, report)
    reporting.observe_finished(job, report)
