"""The mirror workers: claim due mirrors, sync them, release them; several per process.

Each worker loops: claim the most urgent due mirror (services.mirror.leases) and sync it, or, when
nothing is due, wait for the next look (REPO_MIRROR_INTERVAL) or for a wake-up: the API notifies
workers (LISTEN/NOTIFY) when a mirror becomes due, so sync-now starts at once. While the registry
is read-only (shared/readonly_state.py) workers claim nothing: due mirrors wait and sync after.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

import asyncpg
import httpx

from services.mirror.config_store import WAKE_CHANNEL
from services.mirror.credentials import SecretBox, UnreadableSecretError
from services.mirror.jobs import MirrorJob, SyncReport
from services.mirror.leases import Lease, SyncInterruptedError, claim_next, release
from services.mirror.local import LocalRegistry
from services.mirror.sync import MirrorSync
from shared.config import Settings
from shared.db import create_pool
from shared.oci.upstream_client import ExternalReference, InvalidReferenceError, UpstreamRegistry
from shared.readonly_state import registry_read_only, wait_until_writable
from shared.tls import client_verification

log = logging.getLogger(__name__)

_DATABASE_ERRORS: tuple[type[BaseException], ...] = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)
# How long a stopping worker may take to hand its mirror back.
_HAND_BACK_TIMEOUT_S = 5.0


class MirrorWorkers:
    """``settings.mirror_workers`` workers sharing a database pool and an HTTP client of the registry."""

    def __init__(self, settings: Settings, pool: asyncpg.Pool, registry: httpx.AsyncClient) -> None:
        self._settings = settings
        self._pool = pool
        self._registry = registry
        self._secrets = SecretBox.from_settings(settings)
        self._wakeups = [asyncio.Event() for _ in range(settings.mirror_workers)]

    async def run(self) -> None:
        """Work until cancelled; a sync under way when cancelled is handed back for another worker."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._listen())
            for wakeup in self._wakeups:
                tasks.create_task(self._work(wakeup))

    async def _work(self, wakeup: asyncio.Event) -> None:
        while True:
            wakeup.clear()
            try:
                await self._wait_until_writable()
                job = await claim_next(self._pool, self._settings.mirror_lease_s)
            except _DATABASE_ERRORS as error:
                log.warning("cannot look for due mirrors: %r", error)
                job = None
            if job is None:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._settings.repo_mirror_interval_s):
                        await wakeup.wait()
                continue
            try:
                await self.sync(job)
            except _DATABASE_ERRORS as error:
                # The lease runs out and the mirror is synced again, by this worker or another.
                log.warning("sync of %s interrupted by a database error: %r", job.full_name, error)

    async def _wait_until_writable(self) -> None:
        if await registry_read_only(self._pool, self._settings):
            log.info("the registry is read-only: mirror syncs wait")
            await wait_until_writable(self._pool, self._settings)
            log.info("the registry is writable again: mirror syncs resume")

    async def sync(self, job: MirrorJob) -> None:
        """Sync a claimed mirror and release it with the result."""
        lease = Lease(self._pool, job, self._settings.mirror_lease_s)
        log.info("syncing %s from %s", job.full_name, job.external_reference)
        try:
            report = await self._run(job, lease)
        except SyncInterruptedError:
            log.warning("mirror %s was taken over by another worker", job.full_name)
            return
        except asyncio.CancelledError:
            await self._hand_back(lease)
            raise
        except Exception as error:
            log.exception("sync of %s failed", job.full_name)
            report = SyncReport.failure(datetime.now(UTC), f"internal error: {error!r}", "internal")
        try:
            await release(self._pool, job, report, self._settings.mirror_retry_delay_s)
        except asyncio.CancelledError:
            await self._hand_back(lease)
            raise
        log.info("sync of %s: %s %s", job.full_name, report.status, report.error or "")

    async def _run(self, job: MirrorJob, lease: Lease) -> SyncReport:
        started_at = datetime.now(UTC)
        robot = job.robot
        if robot is None:
            return SyncReport.failure(started_at, "the mirror's robot account no longer exists", "config")
        try:
            username = self._secrets.decrypt(job.username_encrypted)
            password = self._secrets.decrypt(job.password_encrypted)
            reference = ExternalReference.parse(job.external_reference)
        except (UnreadableSecretError, InvalidReferenceError) as error:
            return SyncReport.failure(started_at, str(error), "config")
        upstream = UpstreamRegistry(
            reference,
            username=username,
            password=password,
            verify_tls=job.external_registry_config.verify_tls,
            proxy=job.external_registry_config.proxy,
            timeout_s=self._settings.mirror_upstream_timeout_s,
        )
        async with upstream:
            local = LocalRegistry(self._registry, self._settings, robot, job.full_name)
            sync = MirrorSync(
                job,
                pool=self._pool,
                upstream=upstream,
                local=local,
                lease=lease,
                rollback=self._settings.repo_mirror_rollback,
            )
            async with lease.heartbeat(sync.progress):
                return await sync.run()

    async def _hand_back(self, lease: Lease) -> None:
        """Make a mirror this worker stops syncing claimable at once (its lease would run out anyway)."""
        with contextlib.suppress(*_DATABASE_ERRORS, TimeoutError):
            async with asyncio.timeout(_HAND_BACK_TIMEOUT_S):
                await lease.expire()

    async def _listen(self) -> None:
        """Wake every worker on each notification; reconnect when the connection drops."""
        while True:
            try:
                await self._listen_until_dropped()
            except _DATABASE_ERRORS as error:
                log.warning("cannot listen for due mirrors, polling only: %r", error)
                await asyncio.sleep(self._settings.repo_mirror_interval_s)

    async def _listen_until_dropped(self) -> None:
        connection = await asyncpg.connect(self._settings.database_url)
        dropped = asyncio.Event()
        connection.add_termination_listener(lambda _connection: dropped.set())
        try:
            await connection.add_listener(WAKE_CHANNEL, self._on_notification)
            # Mirrors made due while nobody listened are due now.
            self._wake_all()
            await dropped.wait()
        finally:
            with contextlib.suppress(*_DATABASE_ERRORS, TimeoutError):
                await connection.close(timeout=5)

    def _on_notification(self, _connection: object, _pid: int, _channel: str, _payload: object) -> None:
        self._wake_all()

    def _wake_all(self) -> None:
        for wakeup in self._wakeups:
            wakeup.set()


async def run_mirror_worker(settings: Settings) -> None:
    """The mirror workers of one process, until cancelled."""
    # A sync holds a connection for short statements only, its blob copies several at once.
    pool = await create_pool(settings.database_url, max_size=settings.mirror_workers * 2 + 2)
    try:
        timeout = httpx.Timeout(settings.mirror_upstream_timeout_s)
        verify = await asyncio.to_thread(client_verification, settings.registry_ca_file)
        async with httpx.AsyncClient(
            base_url=settings.registry_url, timeout=timeout, verify=verify
        ) as registry:
            await MirrorWorkers(settings, pool, registry).run()
    finally:
        await pool.close()
