"""Garbage collection against proxy fills (the guard of shared/blob_guard.py): passes running while
the cache fills an image, and while it fills it again after collection took it, never leave a
cached image that does not pull, nor bytes or rows that nothing references. Passes run with no
grace window, so they delete whatever is unreferenced the moment they look."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator

import httpx

from services.gc.passes import PassOptions, run_pass
from shared.auth.accounts import set_time_machine_window
from shared.config import Settings
from shared.db import create_pool
from shared.storage import Locations
from tests.fixtures.registry import registry_settings
from tests.gc.scan import scan_storage
from tests.proxy.conftest import Cache
from tests.support.waiting import wait_until

MANIFEST_ACCEPT = {"Accept": "application/vnd.oci.image.manifest.v1+json"}


@contextlib.asynccontextmanager
async def _passes(settings: Settings) -> AsyncIterator[tuple[asyncio.Event, list[int]]]:
    """Passes one after the other until the block ends (the event set by it), then one more."""
    pool = await create_pool(settings.database_url, max_size=4)
    locations = await Locations.open(settings)
    stop = asyncio.Event()
    ran: list[int] = []

    async def collect() -> None:
        while not stop.is_set():
            await run_pass(pool, locations, settings, PassOptions(grace_s=0))
            ran.append(1)
            await asyncio.sleep(0)

    running = asyncio.create_task(collect())
    try:
        yield stop, ran
    finally:
        stop.set()
        await running
        final = await run_pass(pool, locations, settings, PassOptions(grace_s=0))
        assert final.record is not None, final.reason
        await locations.close()
        await pool.close()


async def _pull(client: httpx.AsyncClient, name: str) -> list[str]:
    """The tag's manifest and every blob, all checked against their digests; the blob digests."""
    manifest = await client.get(f"/v2/{name}/manifests/v1", headers=MANIFEST_ACCEPT)
    assert manifest.status_code == 200, manifest.text
    document = manifest.json()
    digests = [document["config"]["digest"], *(layer["digest"] for layer in document["layers"])]

    async def blob(digest: str) -> str:
        response = await client.get(f"/v2/{name}/blobs/{digest}")
        assert response.status_code == 200, response.text
        return f"sha256:{hashlib.sha256(response.content).hexdigest()}"

    assert await asyncio.gather(*(blob(digest) for digest in digests)) == digests
    return [manifest.headers["Docker-Content-Digest"], *digests]


async def _problems(cache: Cache, settings: Settings, digests: set[str]) -> list[str]:
    """The scan's problems with these blobs, once the fills that served them have recorded them (a
    client has all the bytes just before its fill's commit)."""

    async def recorded() -> bool:
        placed = await cache.registry.pool.fetchval(
            "SELECT count(*) FROM blob_placement WHERE digest = ANY($1::text[])", list(digests)
        )
        return bool(placed == len(digests))

    await wait_until(recorded)
    pool = await create_pool(settings.database_url, max_size=2)
    locations = await Locations.open(settings)
    try:
        consistency = await scan_storage(pool, locations)
    finally:
        await locations.close()
        await pool.close()
    return [problem for problem in consistency.problems() if any(digest in problem for digest in digests)]


async def _stored(settings: Settings) -> set[str]:
    pool = await create_pool(settings.database_url, max_size=2)
    locations = await Locations.open(settings)
    try:
        return {digest for _, digest in (await scan_storage(pool, locations)).stored}
    finally:
        await locations.close()
        await pool.close()


async def _left(cache: Cache, digests: set[str]) -> int:
    return int(
        await cache.registry.pool.fetchval(
            "SELECT (SELECT count(*) FROM blob WHERE digest = ANY($1::text[]))"
            " + (SELECT count(*) FROM manifest WHERE digest = ANY($1::text[]))",
            list(digests),
        )
    )


async def test_fills_and_refills_racing_collection_stay_whole(cache: Cache) -> None:
    await cache.push_image("app", "v1", own_layer_size=256 * 1024)
    settings = registry_settings(cache.registry.database_url, cache.registry.storage_root)
    async with cache.registry.pool.acquire() as conn:
        namespace_id = await conn.fetchval("SELECT id FROM namespace WHERE name = $1", cache.org)
        await set_time_machine_window(conn, namespace_id, 0)
    name = cache.path("app")
    async with cache.client() as client:
        async with _passes(settings) as (_, ran):
            first = await _pull(client, name)
        assert ran, "no pass ran during the fill"
        blobs = set(first[1:])
        assert await _problems(cache, settings, blobs) == []
        assert (await _pull(client, name)) == first  # still whole after the passes

        for _ in range(3):
            deleted = await client.delete(f"/api/v1/repository/{name}/tag/v1")
            assert deleted.status_code == 204, deleted.text
            async with _passes(settings):
                assert (await _pull(client, name)) == first  # filled again while passes collect
            assert await _problems(cache, settings, blobs) == []
            assert (await _pull(client, name)) == first

        deleted = await client.delete(f"/api/v1/repository/{name}/tag/v1")
        assert deleted.status_code == 204, deleted.text
    async with _passes(settings):
        pass
    assert await _left(cache, set(first)) == 0
    assert set(await _stored(settings)).isdisjoint(blobs)
