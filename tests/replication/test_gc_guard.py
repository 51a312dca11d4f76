"""A copy under way holds the blob's GC guard: garbage collection cannot claim the blob until the
copy has recorded its placement."""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import AsyncIterable, AsyncIterator
from datetime import datetime
from pathlib import Path

from services.replication.copier import ClaimedCopy, Drivers, copy_blob
from shared import blob_guard
from shared.config import FilesystemLocation, Settings
from shared.storage import StorageDriver
from shared.storage.base import ObjectInfo
from tests.replication.support import replication_harness, replication_settings

BLOB_BYTES = 3 * 1024 * 1024


class GatedReads(StorageDriver):
    """A real driver whose reads stop after their first chunk until ``gate`` is set."""

    def __init__(self, driver: StorageDriver, reading: asyncio.Event, gate: asyncio.Event) -> None:
        self.name = driver.name
        self._driver = driver
        self.reading = reading
        self.gate = gate

    async def read(self, path: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        async for chunk in self._driver.read(path, offset, length):
            yield chunk
            self.reading.set()
            await self.gate.wait()

    async def put(self, path: str, chunks: AsyncIterable[bytes]) -> int:
        return await self._driver.put(path, chunks)

    async def stat(self, path: str) -> int:
        return await self._driver.stat(path)

    async def delete(self, path: str) -> None:
        await self._driver.delete(path)

    async def list(self, prefix: str) -> list[str]:
        return await self._driver.list(prefix)

    async def list_objects(self, prefix: str) -> builtins.list[ObjectInfo]:
        return await self._driver.list_objects(prefix)

    async def abort_incomplete_writes(self, started_before: datetime) -> int:
        return await self._driver.abort_incomplete_writes(started_before)

    async def move(self, source: str, destination: str) -> None:
        await self._driver.move(source, destination)

    async def concat(self, sources: builtins.list[str], destination: str) -> int:
        return await self._driver.concat(sources, destination)


class GatedSource(Drivers):
    """The configured drivers, the source location's ("us") reads gated: ``reading`` is set once
    one has started, and they go on once ``gate`` is set."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.reading = asyncio.Event()
        self.gate = asyncio.Event()

    async def get(self, name: str) -> StorageDriver:
        driver = await super().get(name)
        return GatedReads(driver, self.reading, self.gate) if name == "us" else driver


async def test_garbage_collection_cannot_claim_a_blob_being_copied(database_url: str, tmp_path: Path) -> None:
    locations = {name: FilesystemLocation(root=str(tmp_path / name)) for name in ("us", "eu")}
    settings = replication_settings(database_url, locations, preference=["us"], defaults=["us", "eu"])
    drivers = GatedSource(settings)
    async with replication_harness(settings, copying=False) as harness:
        owner = await harness.registry.user()
        digest = await harness.push(owner, b"z" * BLOB_BYTES)
        await harness.wait_consumed()
        copying = asyncio.create_task(
            copy_blob(harness.pool, drivers, ClaimedCopy(digest=digest, location="eu"))
        )
        try:
            await asyncio.wait_for(drivers.reading.wait(), 30)
            async with harness.pool.acquire() as conn:
                during = await blob_guard.claim_for_deletion(conn, [digest])
                await blob_guard.release(conn, during)
            drivers.gate.set()
            await asyncio.wait_for(copying, 30)
        finally:
            copying.cancel()
            await drivers.close()
        async with harness.pool.acquire() as conn:
            after = await blob_guard.claim_for_deletion(conn, [digest])
            await blob_guard.release(conn, after)
        placements = await harness.placements(digest)

    assert during == []
    assert after == [digest]
    assert placements == {"us", "eu"}
