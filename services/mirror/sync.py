"""One sync of one mirror: make the repository's tags those of the upstream that match the patterns.

For each matching upstream tag, in order: read its digest upstream; skip it when the local tag points
there already; else copy the manifest (an index with its child manifests first) and the blobs the
repository lacks, then put the manifest under the tag. Blobs are checked locally (HEAD) before they
are fetched, mounted from another repository the robot may read when one holds them, and fetched at
most once per sync. Then local tags that no longer match, or are gone upstream, are deleted (also
when no upstream tag matches at all).

A tag whose copy fails keeps its earlier state. With rollback, any failure puts every tag the sync
changed back as it was; without (best effort), the tags copied stay and the failed ones are
reported. Between tags and between blobs the sync renews its lease, which is where a cancel or a
take-over by another worker stops it.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import asyncpg

from services.mirror import metrics, reporting
from services.mirror.jobs import MirrorJob, SyncProgress, SyncReport, SyncResult
from services.mirror.leases import Lease, SyncInterruptedError
from services.mirror.local import LocalRegistry, LocalRegistryError, live_tags, mount_source
from services.mirror.patterns import select_tags
from shared.oci.manifest import (
    Descriptor,
    ImageManifest,
    InvalidManifestError,
    ParsedManifest,
    parse_manifest,
)
from shared.oci.upstream_client import UpstreamError, UpstreamRegistry

# Blobs of one manifest copied at once (tags are synced one after the other, as Quay does).
_PARALLEL_BLOBS = 4
# Upstream digests are read this many tags ahead, that many at once: an unchanged tag costs little
# more than its share of a round trip.
_DIGEST_WINDOW = 32
_PARALLEL_DIGESTS = 8
_TAG_ERRORS = (UpstreamError, LocalRegistryError, InvalidManifestError)


def _failure_reason(error: Exception) -> str:
    if isinstance(error, UpstreamError):
        return error.reason
    if isinstance(error, LocalRegistryError):
        return "registry"
    return "invalid"


def _blobs_of(manifest: ParsedManifest) -> list[Descriptor]:
    """The config and layers the repository must hold (non-distributable layers excepted), once each."""
    document = manifest.document
    if not isinstance(document, ImageManifest):
        return []
    wanted = [document.config, *(layer for layer in document.layers if not layer.is_non_distributable)]
    return list({descriptor.digest: descriptor for descriptor in wanted}.values())


async def _run_all(jobs: list[Callable[[], Awaitable[None]]], limit: int) -> None:
    """Run the jobs, at most `limit` at once; the first failure cancels the others and is raised
    (an interruption of the sync before any other error)."""
    semaphore = asyncio.Semaphore(limit)

    async def bounded(job: Callable[[], Awaitable[None]]) -> None:
        async with semaphore:
            await job()

    try:
        async with asyncio.TaskGroup() as group:
            for job in jobs:
                group.create_task(bounded(job))
    except ExceptionGroup as failures:
        interruptions = [error for error in failures.exceptions if isinstance(error, SyncInterruptedError)]
        raise (interruptions or failures.exceptions)[0] from None


class MirrorSync:
    """The state of one running sync; run() does it once."""

    def __init__(
        self,
        job: MirrorJob,
        *,
        pool: asyncpg.Pool,
        upstream: UpstreamRegistry,
        local: LocalRegistry,
        lease: Lease,
        rollback: bool,
    ) -> None:
        self._job = job
        self._pool = pool
        self._upstream = upstream
        self._local = local
        self._lease = lease
        self._rollback = rollback
        self._started_at = datetime.now(UTC)
        self._progress = SyncProgress(started_at=self._started_at)
        self._present: set[str] = set()
        self._synced: list[str] = []
        self._skipped: list[str] = []
        self._failed: dict[str, str] = {}
        self._failure_reason: str | None = None
        self._deleted: list[str] = []

    def progress(self) -> SyncProgress:
        return self._progress

    async def run(self) -> SyncReport:
        """Sync once; a CANCEL report when cancelled, SyncInterruptedError when pre-empted."""
        try:
            tags = select_tags(await self._upstream.list_tags(), self._job.tag_patterns)
        except UpstreamError as error:
            return SyncReport.failure(self._started_at, str(error), error.reason)
        before = await live_tags(self._pool, self._job.repository_id)
        self._progress.tags_total = len(tags)
        try:
            for start in range(0, len(tags), _DIGEST_WINDOW):
                window = tags[start : start + _DIGEST_WINDOW]
                await self._checkpoint()
                digests = await self._upstream_digests(window)
                for tag in window:
                    await self._checkpoint(tag)
                    await self._sync_tag(tag, digests[tag], before.get(tag))
            if self._failed and self._rollback:
                return await self._roll_back(before)
            await self._remove_stale(before, set(tags))
        except SyncInterruptedError as interruption:
            if interruption.interruption == "preempted":
                raise
            return self._report("CANCEL", "the sync was cancelled")
        return self._report("FAIL" if self._failed else "SUCCESS", self._failure_summary())

    async def _upstream_digests(self, tags: list[str]) -> dict[str, str | UpstreamError]:
        """Each tag's upstream digest, or why it could not be read."""
        semaphore = asyncio.Semaphore(_PARALLEL_DIGESTS)

        async def digest_of(tag: str) -> str | UpstreamError:
            async with semaphore:
                try:
                    return await self._upstream.manifest_digest(tag)
                except UpstreamError as error:
                    return error

        return dict(zip(tags, await asyncio.gather(*(digest_of(tag) for tag in tags)), strict=True))

    async def _sync_tag(self, tag: str, digest: str | UpstreamError, local_digest: str | None) -> None:
        try:
            if isinstance(digest, UpstreamError):
                raise digest
            if digest == local_digest:
                self._skipped.append(tag)
                self._progress.tags_skipped += 1
            else:
                await self._copy_manifest(digest, tag)
                self._synced.append(tag)
                self._progress.tags_synced += 1
                await self._record_tag(tag, None)
        except _TAG_ERRORS as error:
            await self._fail_tag(tag, error)
        self._progress.tags_done += 1

    async def _copy_manifest(self, digest: str, reference: str) -> None:
        """Copy the manifest with its children and blobs, then store it under the reference."""
        manifest = await self._upstream.fetch_manifest(digest)
        parsed = await asyncio.to_thread(parse_manifest, manifest.body, manifest.content_type)
        for child in parsed.child_digests:
            await self._checkpoint()
            if not await self._local.has_manifest(child):
                await self._copy_manifest(child, child)
        await _run_all(
            [functools.partial(self._ensure_blob, blob) for blob in _blobs_of(parsed)], _PARALLEL_BLOBS
        )
        await self._local.put_manifest(reference, manifest.body, parsed.media_type)

    async def _ensure_blob(self, blob: Descriptor) -> None:
        if blob.digest in self._present:
            return
        await self._checkpoint()
        if not await self._local.has_blob(blob.digest):
            robot = self._job.robot
            assert robot is not None  # the worker does not sync a mirror without its robot
            source = await mount_source(self._pool, robot, blob.digest, self._job.repository_id)
            if source is None or not await self._local.mount_blob(blob.digest, source):
                async with self._upstream.open_blob(blob.digest) as chunks:
                    await self._local.upload_blob(blob.digest, blob.size, self._counted(chunks))
        self._present.add(blob.digest)

    async def _counted(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        async for chunk in chunks:
            self._progress.bytes_copied += len(chunk)
            yield chunk

    async def _remove_stale(self, before: dict[str, str], wanted: set[str]) -> None:
        for tag in sorted(set(before) - wanted):
            await self._checkpoint()
            try:
                await self._local.delete_tag(tag)
            except LocalRegistryError as error:
                await self._fail_tag(tag, error)
            else:
                self._deleted.append(tag)

    async def _roll_back(self, before: dict[str, str]) -> SyncReport:
        """Put every tag copied by this sync back as it was (deleted when it did not exist)."""
        problems: list[str] = []
        for tag in self._synced:
            previous = before.get(tag)
            try:
                if previous is None:
                    await self._local.delete_tag(tag)
                else:
                    body, media_type = await self._local.get_manifest(previous)
                    await self._local.put_manifest(tag, body, media_type)
            except LocalRegistryError as error:
                problems.append(f"{tag}: {error}")
        summary = self._failure_summary()
        if problems:
            return self._report("FAIL", f"{summary}; rolling back failed for {'; '.join(problems)}")
        report = self._report("FAIL", f"{summary}; every tag was put back as it was before the sync")
        return report.model_copy(update={"rolled_back": True})

    async def _fail_tag(self, tag: str, error: Exception) -> None:
        self._failed[tag] = str(error)
        self._failure_reason = self._failure_reason or _failure_reason(error)
        self._progress.tags_failed += 1
        await self._record_tag(tag, str(error))

    async def _record_tag(self, tag: str, error: str | None) -> None:
        async with self._pool.acquire() as conn:
            await reporting.record_tag(conn, self._job, tag, error)

    async def _checkpoint(self, current_tag: str | None = None) -> None:
        if current_tag is not None:
            self._progress.current_tag = current_tag
        pending = self._progress.tags_total - self._progress.tags_done
        metrics.PENDING_TAGS.labels(str(self._job.repository_id)).set(pending)
        await self._lease.renew(self._progress)

    def _failure_summary(self) -> str | None:
        if not self._failed:
            return None
        tag, error = next(iter(self._failed.items()))
        return f"{len(self._failed)} of {self._progress.tags_total} tags failed; {tag}: {error}"

    def _report(self, status: SyncResult, error: str | None) -> SyncReport:
        return SyncReport(
            status=status,
            started_at=self._started_at,
            finished_at=datetime.now(UTC),
            tags_synced=self._synced,
            tags_skipped=self._skipped,
            tags_failed=self._failed,
            tags_deleted=self._deleted,
            bytes_copied=self._progress.bytes_copied,
            error=error,
            reason="cancelled" if status == "CANCEL" else self._failure_reason,
        )
