"""Pulls through a cache organization with skopeo and plain HTTP, against a real upstream
(Distribution), counting what reaches the upstream."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx

from shared.oci.mediatypes import OCI_INDEX, OCI_MANIFEST
from tests.proxy.conftest import Cache
from tests.support.skopeo import manifest_digest, run_skopeo


async def _expire(cache: Cache, repository: str, tag: str) -> None:
    """Make the cached tag due for its check against the upstream, as expiration_s passing would."""
    await cache.registry.pool.execute(
        "UPDATE proxy_cache_tag c SET checked_at = now() - interval '2 days' FROM repository r, namespace n"
        " WHERE c.repository_id = r.id AND r.namespace_id = n.id AND n.name = $1 AND r.name = $2 AND c.tag = $3",
        cache.org,
        cache.upstream_name(repository),
        tag,
    )


async def _stored_manifests(cache: Cache, repository: str) -> set[str]:
    rows = await cache.registry.pool.fetch(
        "SELECT m.digest FROM manifest m JOIN repository r ON r.id = m.repository_id"
        " JOIN namespace n ON n.id = r.namespace_id WHERE n.name = $1 AND r.name = $2",
        cache.org,
        cache.upstream_name(repository),
    )
    return {row["digest"] for row in rows}


async def test_pull_through_equals_direct_pull_and_second_pull_stays_local(
    cache: Cache, tmp_path: Path
) -> None:
    pushed = await cache.push_image("team/app", "v1")
    direct = await manifest_digest(f"docker://{cache.upstream.host}/{cache.upstream_name('team/app')}:v1")
    cache.counter.reset_counts()

    first = await cache.pull("team/app", "v1", tmp_path / "first")

    assert first == pushed == direct
    assert cache.counter.blob_fetches and set(cache.counter.blob_fetches.values()) == {1}
    cache.counter.reset_counts()
    second = await cache.pull("team/app", "v1", tmp_path / "second")
    assert second == pushed
    assert cache.counter.total_requests == 0, cache.counter.requests
    async with cache.client() as client:
        again = await client.get(f"/v2/{cache.path('team/app')}/manifests/v1")
    assert again.headers["X-Quayside-Cache"] == "hit"
    logged = await cache.registry.pool.fetchval(
        "SELECT count(*) FROM log_entry l JOIN namespace n ON n.id = l.namespace_id"
        " WHERE n.name = $1 AND l.kind = 'pull_repo' AND l.metadata->>'proxy_cache' = 'fill'",
        cache.org,
    )
    assert logged == 1


async def test_multi_arch_index_is_stored_with_every_child(cache: Cache, tmp_path: Path) -> None:
    pushed = await cache.push_index("multi", "latest")
    children = {entry.digest for entry in cache.factory.layout.entries()} - {pushed}

    async with cache.client() as client:
        index = await client.get(
            f"/v2/{cache.path('multi')}/manifests/latest",
            headers={"Accept": "application/vnd.oci.image.index.v1+json"},
        )
    assert index.status_code == 200 and index.headers["Docker-Content-Digest"] == pushed
    stored = await _stored_manifests(cache, "multi")
    assert pushed in stored and len(stored) == 3

    cache.counter.reset_counts()
    await cache.pull("multi", "latest", tmp_path / "all", "--all")
    blob_requests = {
        f"GET /v2/{cache.upstream_name('multi')}/blobs/{digest}" for digest in cache.counter.blob_fetches
    }
    assert cache.counter.requests.keys() == blob_requests, "no manifest is asked for again"
    assert children.isdisjoint({key.rpartition("/")[2] for key in cache.counter.requests})


async def test_moved_upstream_tag_is_followed_after_expiry(cache: Cache, tmp_path: Path) -> None:
    first = await cache.push_image("app", "stable")
    assert await cache.pull("app", "stable", tmp_path / "one") == first
    moved = await cache.push_image("app", "stable")

    assert await cache.pull("app", "stable", tmp_path / "two") == first, "fresh: the upstream is not asked"
    await _expire(cache, "app", "stable")
    assert await cache.pull("app", "stable", tmp_path / "three") == moved
    history = await cache.registry.pool.fetchval(
        "SELECT count(*) FROM tag t JOIN repository r ON r.id = t.repository_id WHERE r.name = $1"
        " AND t.name = 'stable'",
        cache.upstream_name("app"),
    )
    assert history == 2, "the previous target stays in the tag's history (time machine)"


async def test_outage_serves_cached_content_and_refuses_uncached(cache: Cache, tmp_path: Path) -> None:
    pushed = await cache.push_image("app", "v1")
    await cache.push_image("app", "v2")
    assert await cache.pull("app", "v1", tmp_path / "cached") == pushed
    await _expire(cache, "app", "v1")
    await cache.tcp.stop()

    assert await cache.pull("app", "v1", tmp_path / "during-outage") == pushed
    async with cache.client() as client:
        stale = await client.get(f"/v2/{cache.path('app')}/manifests/v1")
        uncached = await client.get(f"/v2/{cache.path('app')}/manifests/v2")
    assert stale.status_code == 200 and stale.headers["X-Quayside-Cache"] == "stale"
    assert uncached.status_code == 503
    assert uncached.json()["errors"][0]["code"] == "UNAVAILABLE"
    logged = await cache.registry.pool.fetchval(
        "SELECT count(*) FROM log_entry l JOIN namespace n ON n.id = l.namespace_id"
        " WHERE n.name = $1 AND l.kind = 'pull_repo' AND l.metadata->>'proxy_cache' = 'stale'",
        cache.org,
    )
    assert logged >= 1


async def test_upstream_404_is_passed_on(cache: Cache) -> None:
    await cache.push_image("app", "v1")
    async with cache.client() as client:
        missing_tag = await client.get(f"/v2/{cache.path('app')}/manifests/nope")
        missing_repository = await client.get(f"/v2/{cache.path('nothing/here')}/manifests/v1")
    assert missing_tag.status_code == 404 and missing_tag.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    assert missing_repository.status_code == 404


async def test_push_into_cache_organization_is_denied(cache: Cache, tmp_path: Path) -> None:
    await cache.push_image("app", "v1")
    result = await run_skopeo(
        "copy",
        "--dest-tls-verify=false",
        f"--dest-creds={cache.creds}",
        f"oci:{cache.factory.layout.root}:v1",
        cache.reference("app", "pushed"),
    )
    assert not result.ok and "denied" in result.stderr.lower(), result.stderr
    assert await _stored_manifests(cache, "app") == set()


async def test_fill_over_the_reject_limit_is_denied_and_caches_nothing(cache: Cache) -> None:
    await cache.push_image("app", "v1")
    async with cache.registry.pool.acquire() as conn:
        quota_id = await conn.fetchval(
            "INSERT INTO quota (namespace_id, limit_bytes) SELECT id, 1024 FROM namespace WHERE name = $1"
            " RETURNING id",
            cache.org,
        )
        await conn.execute(
            "INSERT INTO quota_limit (quota_id, limit_type, threshold_percent) VALUES ($1, 'Reject', 100)",
            quota_id,
        )
    async with cache.client() as client:
        refused = await client.get(f"/v2/{cache.path('app')}/manifests/v1")
    assert refused.status_code == 403 and refused.json()["errors"][0]["code"] == "DENIED"
    assert await _stored_manifests(cache, "app") == set()


async def test_head_of_an_uncached_blob_fills_it_as_quay_does(cache: Cache) -> None:
    await cache.push_image("app", "v1", own_layer_size=64 * 1024)
    async with cache.client() as client:
        manifest = await client.get(f"/v2/{cache.path('app')}/manifests/v1", headers={"Accept": OCI_MANIFEST})
        layer = manifest.json()["layers"][-1]
        cache.counter.reset_counts()
        head = await client.head(f"/v2/{cache.path('app')}/blobs/{layer['digest']}")
        assert head.status_code == 200, head.text
        assert int(head.headers["Content-Length"]) == layer["size"]
        assert dict(cache.counter.blob_fetches) == {layer["digest"]: 1}
        cache.counter.reset_counts()
        got = await client.get(f"/v2/{cache.path('app')}/blobs/{layer['digest']}")
    assert f"sha256:{hashlib.sha256(got.content).hexdigest()}" == layer["digest"]
    assert cache.counter.total_requests == 0, cache.counter.requests


async def test_an_index_whose_child_cannot_be_fetched_stores_nothing(cache: Cache) -> None:
    """Index and children are stored in one transaction: no child without its index, nor the reverse."""
    pushed = await cache.push_index("multi", "latest")
    children = [entry["digest"] for entry in json.loads(cache.factory.layout.read_blob(pushed))["manifests"]]
    async with httpx.AsyncClient(base_url=f"http://{cache.upstream.host}") as upstream:
        deleted = await upstream.delete(f"/v2/{cache.upstream_name('multi')}/manifests/{children[-1]}")
    assert deleted.status_code == 202, deleted.text
    async with cache.client() as client:
        refused = await client.get(
            f"/v2/{cache.path('multi')}/manifests/latest", headers={"Accept": OCI_INDEX}
        )
    assert refused.status_code == 404, refused.text
    assert await _stored_manifests(cache, "multi") == set()
