"""Janitors: what pushes and events leave behind, removed once it is old enough.

- Upload sessions not touched for ``upload_abandon_after_s`` (whatever their age: a session is
  touched by every chunk it receives) lose their row, then their chunk objects
  (services/registry/v2/upload_sessions.py keeps them under ``uploads/<session id>/``). The row goes
  first, in a statement that checks the session is still untouched, so a client that comes back
  meanwhile keeps its session, and one that comes back later is told the upload is unknown.
- Chunk folders without a session row whose newest object is that old (a crash between the end of
  a session and the deletion of its chunks, a repository deleted with its sessions).
- With ``clean_blob_upload_folder``, writes that never completed and started that long ago: S3
  multipart uploads, partial files (StorageDriver.abort_incomplete_writes).
- Published outbox rows and processed-event records older than ``event_retention_s``. Unpublished
  outbox rows are never touched: the relay still owes them to the broker.

Rows are deleted in batches of BATCH_SIZE, oldest first, on indexes of migration 0015. With
``dry_run`` nothing is deleted and the report says what would be (incomplete writes excepted:
they are only counted when dropped).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import asyncpg
from prometheus_client import Counter
from pydantic import BaseModel, Field

from shared.config import Settings
from shared.readonly_state import registry_read_only
from shared.storage.base import ObjectInfo, StorageDriver
from shared.storage.locations import Locations
from shared.storage.paths import UPLOADS_FOLDER, upload_folder

BATCH_SIZE = 500

DELETED = Counter(
    "quayside_gc_janitor_deleted_total",
    "What the GC janitors deleted, by kind (upload_session, upload_chunk, orphan_chunk,"
    " incomplete_write, outbox_row, processed_event)",
    ["kind"],
)
BYTES_DELETED = Counter(
    "quayside_gc_janitor_bytes_deleted_total",
    "Bytes of upload chunks the GC janitors deleted, by storage location",
    ["location"],
)


class JanitorReport(BaseModel):
    """What one janitor pass deleted (with dry_run: would delete)."""

    dry_run: bool
    skipped_read_only: bool = False
    abandoned_sessions: int = 0
    session_chunks: int = 0
    orphan_folders: int = 0
    orphan_chunks: int = 0
    incomplete_writes: int = 0
    outbox_rows: int = 0
    processed_events: int = 0
    bytes_by_location: dict[str, int] = Field(default_factory=dict)


async def run_janitors(
    pool: asyncpg.Pool,
    locations: Locations,
    settings: Settings,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
) -> JanitorReport:
    """One pass of every janitor; ``now`` (default: the current time) is the instant ages are
    measured from. Nothing is deleted while the registry is read-only."""
    report = JanitorReport(dry_run=dry_run)
    if not dry_run and await registry_read_only(pool, settings):
        report.skipped_read_only = True
        return report
    now = now or datetime.now(UTC)
    upload_cutoff = now - timedelta(seconds=settings.upload_abandon_after_s)
    event_cutoff = now - timedelta(seconds=settings.event_retention_s)
    sizes: defaultdict[str, int] = defaultdict(int)
    await _abandoned_sessions(pool, locations, upload_cutoff, dry_run, report, sizes)
    for name in locations.order:
        await _orphan_folders(pool, name, locations.driver(name), upload_cutoff, dry_run, report, sizes)
        if settings.clean_blob_upload_folder and not dry_run:
            aborted = await locations.driver(name).abort_incomplete_writes(upload_cutoff)
            report.incomplete_writes += aborted
            DELETED.labels("incomplete_write").inc(aborted)
    report.outbox_rows = await _delete_in_batches(pool, _OUTBOX, event_cutoff, dry_run)
    report.processed_events = await _delete_in_batches(pool, _PROCESSED, event_cutoff, dry_run)
    report.bytes_by_location = dict(sizes)
    if not dry_run:
        DELETED.labels("upload_session").inc(report.abandoned_sessions)
        DELETED.labels("upload_chunk").inc(report.session_chunks)
        DELETED.labels("orphan_chunk").inc(report.orphan_chunks)
        DELETED.labels("outbox_row").inc(report.outbox_rows)
        DELETED.labels("processed_event").inc(report.processed_events)
        for name, size in sizes.items():
            BYTES_DELETED.labels(name).inc(size)
    return report


async def _abandoned_sessions(
    pool: asyncpg.Pool,
    locations: Locations,
    cutoff: datetime,
    dry_run: bool,
    report: JanitorReport,
    sizes: defaultdict[str, int],
) -> None:
    after: tuple[datetime, uuid.UUID] = (datetime.min.replace(tzinfo=UTC), uuid.UUID(int=0))
    while True:
        async with pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT id, location, updated_at FROM upload WHERE updated_at < $1"
                " AND (updated_at, id) > ($2, $3) ORDER BY updated_at, id LIMIT $4",
                cutoff,
                *after,
                BATCH_SIZE,
            )
            if not rows:
                return
            selected = len(rows)
            after = (rows[-1]["updated_at"], rows[-1]["id"])
            if not dry_run:
                # Only sessions still untouched: a chunk that arrived meanwhile keeps its session.
                rows = await conn.fetch(
                    "DELETE FROM upload WHERE id = ANY($1::uuid[]) AND updated_at < $2 RETURNING id, location",
                    [row["id"] for row in rows],
                    cutoff,
                )
        for row in rows:
            report.abandoned_sessions += 1
            if row["location"] not in locations.order:  # a location no longer configured
                continue
            driver = locations.driver(row["location"])
            folder = upload_folder(str(row["id"]))
            chunks = await driver.list_objects(folder)
            report.session_chunks += len(chunks)
            sizes[driver.name] += sum(chunk.size for chunk in chunks)
            if not dry_run:
                await driver.delete(folder)
        if selected < BATCH_SIZE:
            return


def _session_id(folder: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(folder)
    except ValueError:
        return None


async def _orphan_folders(
    pool: asyncpg.Pool,
    name: str,
    driver: StorageDriver,
    cutoff: datetime,
    dry_run: bool,
    report: JanitorReport,
    sizes: defaultdict[str, int],
) -> None:
    """Chunk folders of the location without a session row, untouched since cutoff."""
    folders: defaultdict[str, list[ObjectInfo]] = defaultdict(list)
    for info in await driver.list_objects(UPLOADS_FOLDER):
        folders[info.path.split("/")[1]].append(info)
    old = [folder for folder, objects in folders.items() if max(o.modified_at for o in objects) < cutoff]
    for start in range(0, len(old), BATCH_SIZE):
        batch = old[start : start + BATCH_SIZE]
        ids = [session_id for folder in batch if (session_id := _session_id(folder)) is not None]
        async with pool.acquire() as conn:
            live = {
                row["id"] for row in await conn.fetch("SELECT id FROM upload WHERE id = ANY($1::uuid[])", ids)
            }
        for folder in batch:
            if _session_id(folder) in live:
                continue
            objects = folders[folder]
            report.orphan_folders += 1
            report.orphan_chunks += len(objects)
            sizes[name] += sum(info.size for info in objects)
            if not dry_run:
                await driver.delete(f"{UPLOADS_FOLDER}/{folder}")


class _Retention(BaseModel):
    """Rows older than $1: how to count them, and how to delete the oldest $2 of them (by key from
    an array, so that the deletion reads the batch's rows only, never the whole table)."""

    count: str
    delete: str


_OUTBOX = _Retention(
    count="SELECT count(*) FROM event_outbox WHERE published_at IS NOT NULL AND published_at < $1",
    delete="DELETE FROM event_outbox WHERE id = ANY(ARRAY(SELECT id FROM event_outbox"
    " WHERE published_at IS NOT NULL AND published_at < $1 ORDER BY published_at, id LIMIT $2))",
)
_PROCESSED = _Retention(
    count="SELECT count(*) FROM processed_event WHERE processed_at < $1",
    delete="DELETE FROM processed_event WHERE ctid = ANY(ARRAY(SELECT ctid"
    " FROM processed_event WHERE processed_at < $1 ORDER BY processed_at LIMIT $2))",
)


async def _delete_in_batches(pool: asyncpg.Pool, rows: _Retention, cutoff: datetime, dry_run: bool) -> int:
    if dry_run:
        async with pool.acquire() as conn:
            count: int = await conn.fetchval(rows.count, cutoff)
        return count
    deleted = 0
    while True:
        async with pool.acquire() as conn:
            status = await conn.execute(rows.delete, cutoff, BATCH_SIZE)
        batch = int(status.split()[-1])
        deleted += batch
        if batch < BATCH_SIZE:
            return deleted
