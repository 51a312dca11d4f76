"""A cache organization while the registry is read-only: cached content is served, misses get a
clear error and nothing is written (no repository, manifest, tag or fetched blob)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from shared.readonly_state import READ_ONLY_MESSAGE
from tests.fixtures.live_registry import REPOSITORY_ROOT, LiveRegistry, server_environment, serving_registry
from tests.proxy.conftest import Cache
from tests.support.process import ServerProcess, free_port
from tests.support.skopeo import manifest_digest, run_skopeo


@contextlib.asynccontextmanager
async def read_only_registry(registry: LiveRegistry) -> AsyncIterator[LiveRegistry]:
    """Another registry process on the same database and storage, started read-only
    (QUAYSIDE_REGISTRY_STATE=readonly): the shared registry's own state is left alone."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = server_environment(
        registry.database_url, registry.storage_root, port, {"QUAYSIDE_REGISTRY_STATE": "readonly"}
    )
    server = await ServerProcess.start([sys.executable, "-m", "services.registry"], env, REPOSITORY_ROOT)
    async with serving_registry(server, url, port, registry.database_url, registry.storage_root) as serving:
        await server.wait_until_serving(f"{url}/v2/", accepted=frozenset({200, 401}))
        yield serving


async def _rows(cache: Cache, repository: str) -> tuple[int, int]:
    """(repositories, manifests) the cache holds under the upstream name."""
    row = await cache.registry.pool.fetchrow(
        "SELECT count(DISTINCT r.id), count(m.id) FROM repository r JOIN namespace n ON n.id = r.namespace_id"
        " LEFT JOIN manifest m ON m.repository_id = r.id WHERE n.name = $1 AND r.name = $2",
        cache.org,
        cache.upstream_name(repository),
    )
    return int(row[0]), int(row[1])


async def test_read_only_serves_cached_content_and_refuses_misses_without_writing(
    cache: Cache, tmp_path: Path
) -> None:
    cached_digest = await cache.push_image("kept", "v1")
    await cache.push_image("kept", "v2")
    await cache.push_image("new", "v1")
    await cache.pull("kept", "v1", tmp_path / "kept")

    async with read_only_registry(cache.registry) as read_only:
        cache.counter.reset_counts()
        reference = read_only.reference(cache.path("kept"), "v1")
        pulled = await run_skopeo(
            "copy",
            "--src-tls-verify=false",
            f"--src-creds={cache.creds}",
            reference,
            f"oci:{tmp_path / 'ro'}:v1",
        )
        pulled.check()
        assert await manifest_digest(reference, f"--creds={cache.creds}") == cached_digest
        assert cache.counter.total_requests == 0, cache.counter.requests
        manifests_before = await _rows(cache, "kept")

        async with httpx.AsyncClient(base_url=read_only.url, auth=cache.owner.auth, timeout=60) as client:
            new_repository = await client.get(f"/v2/{cache.path('new')}/manifests/v1")
            new_tag = await client.get(f"/v2/{cache.path('kept')}/manifests/v2")

    for refused in (new_repository, new_tag):
        assert refused.status_code == 503, refused.text
        error = refused.json()["errors"][0]
        assert error["code"] == "UNAVAILABLE"
        assert error["message"].startswith(READ_ONLY_MESSAGE)
    assert cache.counter.total_requests == 0, cache.counter.requests
    assert await _rows(cache, "new") == (0, 0)
    assert await _rows(cache, "kept") == manifests_before
