"""Concurrent misses of one image, spread over the registry's two HTTP processes: one upstream fetch
each; and a miss streamed to its client while the upstream is still sending."""

from __future__ import annotations

import asyncio
import hashlib
import json

from tests.proxy.conftest import Cache

PULLS = 20


async def _pull(cache: Cache, name: str) -> set[str]:
    """Manifest then every blob, on a connection of its own; the digests of the bytes received."""
    async with cache.client() as client:
        manifest = await client.get(
            f"/v2/{name}/manifests/v1", headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}
        )
        assert manifest.status_code == 200, manifest.text
        document = json.loads(manifest.content)
        digests = [document["config"]["digest"], *(layer["digest"] for layer in document["layers"])]

        async def blob(digest: str) -> str:
            response = await client.get(f"/v2/{name}/blobs/{digest}")
            assert response.status_code == 200, response.text
            return f"sha256:{hashlib.sha256(response.content).hexdigest()}"

        received = await asyncio.gather(*(blob(digest) for digest in digests))
        assert received == digests
        return set(digests)


async def test_concurrent_misses_fetch_each_blob_once(cache: Cache) -> None:
    await cache.push_image("app", "v1")
    cache.counter.reset_counts()

    pulled = await asyncio.gather(*(_pull(cache, cache.path("app")) for _ in range(PULLS)))

    blobs = pulled[0]
    assert all(each == blobs for each in pulled)
    assert dict(cache.counter.blob_fetches) == dict.fromkeys(blobs, 1)
    tag_checks = [key for key in cache.counter.requests if key.endswith("/manifests/v1")]
    assert [cache.counter.requests[key] for key in tag_checks] == [1], cache.counter.requests


async def test_client_gets_first_bytes_before_the_upstream_download_ends(cache: Cache) -> None:
    await cache.push_image("big", "v1", own_layer_size=4 * 1024 * 1024)
    async with cache.client() as client:
        manifest = (await client.get(f"/v2/{cache.path('big')}/manifests/v1")).json()
        layer = manifest["layers"][-1]["digest"]
        cache.counter.pause_blobs()
        async with client.stream("GET", f"/v2/{cache.path('big')}/blobs/{layer}") as response:
            assert response.status_code == 200 and response.headers["X-Quayside-Cache"] == "miss"
            pieces = response.aiter_bytes()
            first = await asyncio.wait_for(anext(pieces), timeout=30)
            assert first and cache.counter.paused.is_set(), "the upstream is still holding the rest"
            cache.counter.resume_blobs()
            received = first + b"".join([piece async for piece in pieces])
    assert f"sha256:{hashlib.sha256(received).hexdigest()}" == layer
    async with cache.client() as client:
        stored = await client.get(f"/v2/{cache.path('big')}/blobs/{layer}")
    assert stored.status_code == 200 and "X-Quayside-Cache" not in stored.headers
