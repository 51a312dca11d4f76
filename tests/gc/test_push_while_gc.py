"""Pushes, tag deletions and collection passes at once, on overlapping blobs, for 1,000 rounds:
every tag a client was told was pushed pulls back with identical bytes, and nothing is left that
nothing references. Passes run with no grace window, so they delete whatever is unreferenced the
moment they look and really compete with the pushes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import asyncpg
import httpx

from services.gc.passes import PassOptions, PassOutcome, run_pass
from shared.auth.accounts import set_time_machine_window
from shared.config import Settings
from shared.db import create_pool
from shared.oci.digest import digest_bytes
from shared.oci.mediatypes import OCI_IMAGE_CONFIG, OCI_MANIFEST
from shared.storage import Locations
from tests.fixtures.live_registry import LiveRegistry
from tests.fixtures.registry import registry_settings
from tests.gc.scan import scan_storage
from tests.support.oci import LAYER_TYPE, descriptor, error_code

ROUNDS = int(os.environ.get("QUAYSIDE_GC_RACE_ROUNDS", "1000"))
PASS_PAUSE_S = 0.05
PUSHERS = 8
TAGS_PER_PUSHER = 3
# Few contents, so that pushes and deletions keep meeting on the same digests.
LAYERS = [f"layer {index}".encode() * 8 for index in range(10)]
CONFIGS = [json.dumps({"architecture": "amd64", "os": "linux", "n": index}).encode() for index in range(3)]
# Anchor tags keep the configs referenced throughout, so that a round uploads only its layer (two
# requests a push): the layers are what pushes and passes fight over.
ANCHOR_LAYER = b"anchor layer"
MAX_ATTEMPTS = 50


@dataclass
class Counts:
    pushed: int = 0
    retried: int = 0
    deleted: int = 0
    passes: int = 0
    blobs_collected: int = 0
    manifests_collected: int = 0
    # tag -> (manifest bytes, blobs) of the last push the client was told succeeded
    expected: dict[str, tuple[bytes, list[bytes]]] = field(default_factory=dict)


def _manifest(config: bytes, layers: list[bytes]) -> bytes:
    body = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_IMAGE_CONFIG, config),
        "layers": [descriptor(LAYER_TYPE, layer) for layer in layers],
    }
    return json.dumps(body).encode()


async def _push(client: httpx.AsyncClient, name: str, tag: str, blobs: list[bytes], manifest: bytes) -> int:
    """Upload the blobs and PUT the manifest, again while a pass took a blob first; the retries."""
    for attempt in range(MAX_ATTEMPTS):
        for blob in blobs:
            uploaded = await client.post(
                f"/v2/{name}/blobs/uploads/", params={"digest": digest_bytes(blob)}, content=blob
            )
            assert uploaded.status_code == 201, uploaded.text
        put = await client.put(
            f"/v2/{name}/manifests/{tag}", content=manifest, headers={"Content-Type": OCI_MANIFEST}
        )
        if put.status_code == 201:
            assert put.headers["Docker-Content-Digest"] == digest_bytes(manifest)
            return attempt
        assert put.status_code == 400 and error_code(put) == "MANIFEST_BLOB_UNKNOWN", put.text
    raise AssertionError(f"{tag}: no push won against the collector in {MAX_ATTEMPTS} attempts")


async def _pusher(client: httpx.AsyncClient, name: str, worker: int, rounds: int, counts: Counts) -> None:
    chooser = random.Random(worker)
    for _ in range(rounds):
        tag = f"w{worker}-t{chooser.randrange(TAGS_PER_PUSHER)}"
        if tag in counts.expected and chooser.random() < 0.3:
            deleted = await client.delete(f"/v2/{name}/manifests/{tag}")
            assert deleted.status_code == 202, deleted.text
            del counts.expected[tag]
            counts.deleted += 1
            continue
        config = chooser.choice(CONFIGS)
        layer = chooser.choice(LAYERS)
        manifest = _manifest(config, [layer])
        counts.retried += await _push(client, name, tag, [layer], manifest)
        counts.expected[tag] = (manifest, [config, layer])
        counts.pushed += 1


@dataclass
class Collection:
    """Passes over the live registry's database and storage, run from the test process."""

    pool: asyncpg.Pool
    locations: Locations
    settings: Settings

    async def run(self) -> PassOutcome:
        return await run_pass(self.pool, self.locations, self.settings, PassOptions(grace_s=0))


async def _collect_until(collection: Collection, done: asyncio.Event, counts: Counts) -> None:
    """Passes one after the other, a few milliseconds apart at random: without that pause, a pass
    would fall between every upload and its manifest and no push would ever win."""
    pauses = random.Random(0)
    while not done.is_set():
        outcome = await collection.run()
        counts.passes += 1
        counts.blobs_collected += len(outcome.tally.blobs)
        counts.manifests_collected += len(outcome.tally.manifests)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(pauses.uniform(0, PASS_PAUSE_S)):
                await done.wait()


async def _pulls_back(
    client: httpx.AsyncClient, name: str, tag: str, manifest: bytes, blobs: list[bytes]
) -> None:
    pulled = await client.get(f"/v2/{name}/manifests/{tag}", headers={"Accept": OCI_MANIFEST})
    assert pulled.status_code == 200, (tag, pulled.text)
    assert pulled.content == manifest and pulled.headers["Docker-Content-Digest"] == digest_bytes(manifest)
    for blob in blobs:
        fetched = await client.get(f"/v2/{name}/blobs/{digest_bytes(blob)}")
        assert fetched.status_code == 200 and fetched.content == blob, (tag, digest_bytes(blob))


async def test_pushes_deletions_and_passes_at_once_lose_nothing_and_leave_nothing(
    live_registry: LiveRegistry,
) -> None:
    owner = await live_registry.user()
    name = f"{owner.username}/race"
    async with live_registry.pool.acquire() as conn:
        namespace_id = await conn.fetchval("SELECT id FROM namespace WHERE name = $1", owner.username)
        await set_time_machine_window(conn, namespace_id, 0)
    # Passes that never rest between batches: as much competition as possible.
    settings = registry_settings(
        live_registry.database_url, live_registry.storage_root, garbage_collection_duty=1.0
    )
    counts = Counts()
    done = asyncio.Event()
    async with (
        httpx.AsyncClient(base_url=live_registry.url, auth=owner.auth, timeout=30) as client,
        _collection(settings) as collection,
    ):
        # The anchors also create the repository first: concurrent first pushes to a new repository
        # race to create it (a unique violation on repository.full_name, outside this test's subject).
        for index, config in enumerate(CONFIGS):
            anchor = _manifest(config, [ANCHOR_LAYER])
            await _push(client, name, f"anchor-{index}", [config, ANCHOR_LAYER], anchor)
            counts.expected[f"anchor-{index}"] = (anchor, [config, ANCHOR_LAYER])
        collecting = asyncio.create_task(_collect_until(collection, done, counts))
        try:
            async with asyncio.TaskGroup() as pushers:
                for worker in range(PUSHERS):
                    pushers.create_task(_pusher(client, name, worker, ROUNDS // PUSHERS, counts))
        finally:
            done.set()
            await collecting
        final = await collection.run()
        for tag, (manifest, blobs) in counts.expected.items():
            await _pulls_back(client, name, tag, manifest, blobs)
        listed = await client.get(f"/v2/{name}/tags/list")
        consistency = await scan_storage(collection.pool, collection.locations)
    print(
        f"push-while-gc: {ROUNDS} rounds, {counts.pushed} pushes ({counts.retried} retried after"
        f" MANIFEST_BLOB_UNKNOWN), {counts.deleted} tag deletions, {counts.passes} passes deleting"
        f" {counts.manifests_collected} manifests and {counts.blobs_collected} blobs,"
        f" {len(counts.expected)} tags verified"
    )
    assert counts.pushed + counts.deleted == ROUNDS
    assert sorted(listed.json()["tags"] or []) == sorted(counts.expected)
    assert counts.passes > 10 and counts.blobs_collected > 0
    assert final.record is not None
    assert consistency.problems() == []


@contextlib.asynccontextmanager
async def _collection(settings: Settings) -> AsyncIterator[Collection]:
    pool = await create_pool(settings.database_url, max_size=4)
    try:
        locations = await Locations.open(settings)
        try:
            yield Collection(pool, locations, settings)
        finally:
            await locations.close()
    finally:
        await pool.close()
