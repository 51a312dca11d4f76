"""The protocol between pushes and collection, one interleaving at a time: a push that comes while
the collector deletes its blob (or index child) waits and then fails cleanly; a blob a push holds
is skipped; an interrupted deletion is finished without touching a copy pushed again."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import timedelta

import asyncpg
import httpx

from services.gc.blob_collection import collect_blobs
from services.gc.pacing import Pacer
from services.gc.tally import PassTally
from shared import blob_guard
from shared.oci.digest import digest_bytes
from shared.oci.mediatypes import OCI_INDEX
from shared.storage.paths import blob_path
from tests.fixtures.registry import Account, Registry
from tests.gc.conftest import Collector
from tests.gc.scan import scan
from tests.support.oci import error_code, index_of, push_blob, push_image, put_manifest, random_image
from tests.support.waiting import wait_until


async def _waiting_on_a_lock(pool: asyncpg.Pool) -> bool:
    return bool(await pool.fetchval("SELECT EXISTS (SELECT 1 FROM pg_locks WHERE NOT granted)"))


async def _blocked(registry: Registry, request: Awaitable[httpx.Response]) -> asyncio.Task[httpx.Response]:
    """Start the request and return once it waits on a lock."""
    task = asyncio.ensure_future(request)
    await wait_until(lambda: _waiting_on_a_lock(registry.context.pool))
    assert not task.done()
    return task


async def _delete_blob_while_holding_it(
    registry: Registry, conn: asyncpg.Connection, digests: list[str]
) -> None:
    """As the collector does, on a session that already holds the digests' guards."""
    cutoff = await conn.fetchval("SELECT now()") + timedelta(seconds=1)
    tally = PassTally()
    await collect_blobs(conn, registry.context.locations, tally, cutoff, Pacer(1.0), dry_run=False)
    assert set(digests) <= {blob.digest for blob in tally.blobs}


async def test_a_manifest_put_during_the_deletion_of_its_blob_answers_blob_unknown(
    registry: Registry, owner: Account
) -> None:
    name = f"{owner.username}/app"
    image = random_image(layer_count=1)
    digests = [digest_bytes(image.config), digest_bytes(image.layers[0])]
    async with registry.client(owner) as client:
        for blob in (image.config, *image.layers):
            await push_blob(client, name, blob)
        async with registry.context.pool.acquire() as collector:
            assert await blob_guard.claim_for_deletion(collector, digests) == digests
            try:
                put = await _blocked(registry, put_manifest(client, name, "v1", image.manifest))
                await _delete_blob_while_holding_it(registry, collector, digests)
            finally:
                await blob_guard.release(collector, digests)
        answer = await put
        assert answer.status_code == 400 and error_code(answer) == "MANIFEST_BLOB_UNKNOWN"
        assert (await client.get(f"/v2/{name}/manifests/v1")).status_code == 404
    assert (await scan(registry)).problems() == []


async def test_a_mount_during_the_deletion_of_its_blob_falls_back_to_an_upload(
    registry: Registry, owner: Account
) -> None:
    layer = random_image(layer_count=1).layers[0]
    digest = digest_bytes(layer)
    async with registry.client(owner) as client:
        await push_blob(client, f"{owner.username}/source", layer)
        async with registry.context.pool.acquire() as collector:
            assert await blob_guard.claim_for_deletion(collector, [digest]) == [digest]
            try:
                mount = client.post(
                    f"/v2/{owner.username}/target/blobs/uploads/",
                    params={"mount": digest, "from": f"{owner.username}/source"},
                )
                mounting = await _blocked(registry, mount)
                await _delete_blob_while_holding_it(registry, collector, [digest])
            finally:
                await blob_guard.release(collector, [digest])
        answer = await mounting
        assert answer.status_code == 202  # a new upload session: the blob is gone
        assert (await client.head(f"/v2/{owner.username}/target/blobs/{digest}")).status_code == 404


async def test_a_blob_a_push_holds_is_left_for_the_next_pass(
    registry: Registry, collector: Collector, owner: Account
) -> None:
    layer = random_image(layer_count=1).layers[0]
    async with registry.client(owner) as client:
        digest = await push_blob(client, f"{owner.username}/app", layer)
    async with registry.context.pool.acquire() as pusher, pusher.transaction():
        await blob_guard.hold_for_push(pusher, [digest])
        held = await collector.run()
        assert held.tally.blobs == []
    freed = await collector.run()
    assert [blob.digest for blob in freed.tally.blobs] == [digest]


async def test_an_index_put_during_the_deletion_of_its_child_answers_blob_unknown(
    registry: Registry, owner: Account
) -> None:
    name = f"{owner.username}/multi"
    child = random_image(layer_count=1)
    async with registry.client(owner) as client:
        await push_image(client, name, child, child.digest)
        async with registry.context.pool.acquire() as conn, conn.transaction():
            # The collector's lock and delete of an unreached manifest (manifest_collection.py).
            [locked] = await conn.fetch(
                "SELECT id FROM manifest WHERE digest = $1 FOR UPDATE SKIP LOCKED", child.digest
            )
            index_put = await _blocked(
                registry, put_manifest(client, name, "latest", index_of(child), OCI_INDEX)
            )
            await conn.execute("DELETE FROM manifest WHERE id = $1", locked["id"])
        answer = await index_put
        assert answer.status_code == 400 and error_code(answer) == "MANIFEST_BLOB_UNKNOWN"


async def test_an_interrupted_deletion_is_finished_but_a_copy_pushed_again_is_kept(
    registry: Registry, collector: Collector, owner: Account
) -> None:
    gone, again = random_image(layer_count=2).layers
    driver = registry.context.locations.driver("local")
    async with registry.client(owner) as client:
        for layer in (gone, again):
            await push_blob(client, f"{owner.username}/app", layer)
    # As a collector that died after committing its row deletion, before deleting the bytes.
    async with registry.context.pool.acquire() as conn:
        await conn.execute("DELETE FROM blob WHERE digest = $1", digest_bytes(gone))
        await conn.executemany(
            "INSERT INTO blob_deletion (digest, locations) VALUES ($1, ARRAY['local'])",
            [(digest_bytes(gone),), (digest_bytes(again),)],
        )
    await collector.run(grace_s=3600)
    async with registry.context.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM blob_deletion") == 0
    assert await driver.stat(blob_path(digest_bytes(again))) == len(again)
    assert {digest for _, digest in (await scan(registry)).stored} == {digest_bytes(again)}
