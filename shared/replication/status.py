"""Replication status per location: the copies pending, in flight and failing (with why), the lag
(age of the oldest copy not made yet) and what was copied. One answer for the replication
service's API, the registry's superuser API, the CLI and the metrics."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import asyncpg
from pydantic import BaseModel

from shared.config import Settings

# Failing copies listed per location.
LAST_ERRORS = 5

_COUNTS = """
SELECT location,
       count(*) FILTER (WHERE state = 'in_flight' AND claimed_until > now()) AS in_flight,
       count(*) FILTER (WHERE (state = 'failed' OR (state = 'in_flight' AND claimed_until <= now()))
                          AND last_error IS NOT NULL) AS failed,
       count(*) FILTER (WHERE state = 'pending' OR (state = 'in_flight' AND claimed_until <= now()
                          AND last_error IS NULL)) AS pending,
       min(enqueued_at) AS oldest,
       extract(epoch FROM now() - min(enqueued_at))::float8 AS lag_s
  FROM replication_task
 GROUP BY location
"""

_ERRORS = """
SELECT digest, last_error, attempts, next_attempt_at
  FROM replication_task
 WHERE location = $1 AND last_error IS NOT NULL
 ORDER BY next_attempt_at DESC
 LIMIT $2
"""


class CopyError(BaseModel):
    """A copy whose last attempt failed: the storage's error, and when it is tried again."""

    digest: str
    error: str
    attempts: int
    next_attempt_at: datetime


class LocationStatus(BaseModel):
    """One location. ``state``: FAIL while a copy into it is failing, REPLICATING while copies are
    pending or in flight, OK when nothing is missing."""

    location: str
    configured: bool
    state: Literal["OK", "REPLICATING", "FAIL"]
    pending: int
    in_flight: int
    failed: int
    lag_seconds: float
    oldest_enqueued_at: datetime | None
    blobs_copied: int
    bytes_copied: int
    last_errors: list[CopyError]


class ReplicationStatus(BaseModel):
    enabled: bool
    default_locations: list[str]
    locations: list[LocationStatus]

    @property
    def outstanding(self) -> int:
        """Copies not made yet, every location together."""
        return sum(entry.pending + entry.in_flight + entry.failed for entry in self.locations)


def _state(pending: int, in_flight: int, failed: int) -> Literal["OK", "REPLICATING", "FAIL"]:
    if failed:
        return "FAIL"
    return "REPLICATING" if pending or in_flight else "OK"


async def replication_status(conn: asyncpg.Connection, settings: Settings) -> ReplicationStatus:
    """Every configured location, and every other one that copies are queued for or were made to."""
    counts = {row["location"]: row for row in await conn.fetch(_COUNTS)}
    copied = {
        row["location"]: row
        for row in await conn.fetch("SELECT location, blobs_copied, bytes_copied FROM replication_counter")
    }
    names = list(dict.fromkeys([*settings.location_order(), *sorted(counts), *sorted(copied)]))
    entries: list[LocationStatus] = []
    for name in names:
        count = counts.get(name)
        pending, in_flight, failed = (
            (count["pending"], count["in_flight"], count["failed"]) if count else (0, 0, 0)
        )
        errors = await conn.fetch(_ERRORS, name, LAST_ERRORS) if failed else []
        entries.append(
            LocationStatus(
                location=name,
                configured=name in settings.storage_locations,
                state=_state(pending, in_flight, failed),
                pending=pending,
                in_flight=in_flight,
                failed=failed,
                lag_seconds=max(count["lag_s"], 0.0) if count else 0.0,
                oldest_enqueued_at=count["oldest"] if count else None,
                blobs_copied=copied[name]["blobs_copied"] if name in copied else 0,
                bytes_copied=copied[name]["bytes_copied"] if name in copied else 0,
                last_errors=[
                    CopyError(
                        digest=row["digest"],
                        error=row["last_error"],
                        attempts=row["attempts"],
                        next_attempt_at=row["next_attempt_at"],
                    )
                    for row in errors
                ],
            )
        )
    return ReplicationStatus(
        enabled=settings.feature_storage_replication,
        default_locations=list(settings.distributed_storage_default_locations),
        locations=entries,
    )
