"""A cache organization at its Reject limit: a fill evicts the least recently pulled cached images
and is admitted in the same pull; refused only when the image alone is larger than the limit."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from tests.proxy.conftest import Cache
from tests.support.skopeo import run_skopeo
from tests.support.waiting import wait_until

KiB = 1024
OWN_LAYER = 256 * KiB
# The base layers every image of the factory shares (tests.fixtures.upstream.ImageFactory).
BASE_LAYERS = (64 + 32) * KiB
# Room for the shared base and two images' own layers (and configs), not three.
LIMIT = BASE_LAYERS + 2 * OWN_LAYER + 48 * KiB


async def _set_reject_limit(cache: Cache, limit_bytes: int) -> None:
    async with cache.registry.pool.acquire() as conn:
        quota_id = await conn.fetchval(
            "INSERT INTO quota (namespace_id, limit_bytes) SELECT id, $2 FROM namespace WHERE name = $1"
            " RETURNING id",
            cache.org,
            limit_bytes,
        )
        await conn.execute(
            "INSERT INTO quota_limit (quota_id, limit_type, threshold_percent) VALUES ($1, 'Reject', 100)",
            quota_id,
        )


async def _usage(cache: Cache) -> int:
    value = await cache.registry.pool.fetchval(
        "SELECT u.bytes FROM namespace_usage u JOIN namespace n ON n.id = u.namespace_id WHERE n.name = $1",
        cache.org,
    )
    return int(value or 0)


async def _cached_repositories(cache: Cache) -> set[str]:
    """The cache's repositories (upstream names, the test's prefix removed) with a live tag."""
    rows = await cache.registry.pool.fetch(
        "SELECT DISTINCT r.name FROM tag t JOIN repository r ON r.id = t.repository_id"
        " JOIN namespace n ON n.id = r.namespace_id"
        " WHERE n.name = $1 AND (t.lifetime_end IS NULL OR t.lifetime_end > now())",
        cache.org,
    )
    return {row["name"].removeprefix(f"{cache.prefix}/") for row in rows}


async def _last_pull(cache: Cache, repository: str) -> datetime | None:
    value: datetime | None = await cache.registry.pool.fetchval(
        "SELECT s.last_pulled_at FROM tag_pull_stats s JOIN repository r ON r.id = s.repository_id"
        " JOIN namespace n ON n.id = r.namespace_id WHERE n.name = $1 AND r.name = $2 AND s.tag_name = 'v1'",
        cache.org,
        cache.upstream_name(repository),
    )
    return value


async def _checked_at(cache: Cache, repository: str) -> datetime:
    value: datetime = await cache.registry.pool.fetchval(
        "SELECT c.checked_at FROM proxy_cache_tag c JOIN repository r ON r.id = c.repository_id"
        " JOIN namespace n ON n.id = r.namespace_id WHERE n.name = $1 AND r.name = $2 AND c.tag = 'v1'",
        cache.org,
        cache.upstream_name(repository),
    )
    return value


async def _pull_again_later_than(cache: Cache, repository: str, other: str) -> None:
    """Pull repository:v1 again and wait until its pull statistics (flushed every few seconds) say it
    was pulled after ``other`` was filled."""
    async with cache.client() as client:
        pulled = await client.get(f"/v2/{cache.path(repository)}/manifests/v1")
    assert pulled.status_code == 200, pulled.text
    other_filled = await _checked_at(cache, other)

    async def recorded() -> bool:
        last = await _last_pull(cache, repository)
        return last is not None and last > other_filled

    await wait_until(recorded, timeout_s=30)


async def test_fill_at_the_limit_evicts_the_least_recently_pulled_and_is_admitted(
    cache: Cache, tmp_path: Path
) -> None:
    for repository in ("a", "b", "c"):
        await cache.push_image(repository, "v1", OWN_LAYER)
    await _set_reject_limit(cache, LIMIT)
    await cache.pull("a", "v1", tmp_path / "a")
    await cache.pull("b", "v1", tmp_path / "b")
    await _pull_again_later_than(cache, "a", "b")
    assert await _cached_repositories(cache) == {"a", "b"}

    pulled_c = await cache.pull("c", "v1", tmp_path / "c")

    assert pulled_c
    assert await _cached_repositories(cache) == {"a", "c"}
    assert await _usage(cache) <= LIMIT
    evicted = await cache.registry.pool.fetch(
        "SELECT l.repository, l.metadata->>'tag' AS tag FROM log_entry l JOIN namespace n ON n.id = l.namespace_id"
        " WHERE n.name = $1 AND l.kind = 'delete_tag' AND l.metadata->>'proxy_cache' = 'evicted'",
        cache.org,
    )
    assert [(row["repository"], row["tag"]) for row in evicted] == [(cache.upstream_name("b"), "v1")]
    # What stays is whole, the base layers it shares with the evicted image included: no upstream request.
    cache.counter.reset_counts()
    await cache.pull("a", "v1", tmp_path / "a-again")
    assert cache.counter.total_requests == 0, cache.counter.requests
    # The evicted image is fetched again on its next pull (its manifest: the bytes of its blobs stay
    # stored, and are linked again, until garbage collection deletes them), evicting in turn.
    await cache.pull("b", "v1", tmp_path / "b-again")
    assert any("/manifests/" in request for request in cache.counter.requests), cache.counter.requests
    assert "b" in await _cached_repositories(cache)
    assert await _usage(cache) <= LIMIT


async def test_an_image_larger_than_the_whole_quota_is_refused_and_evicts_nothing(
    cache: Cache, tmp_path: Path
) -> None:
    await cache.push_image("small", "v1", OWN_LAYER)
    await cache.push_image("huge", "v1", 4 * LIMIT)
    await _set_reject_limit(cache, LIMIT)
    await cache.pull("small", "v1", tmp_path / "small")
    usage = await _usage(cache)

    result = await run_skopeo(
        "copy",
        "--src-tls-verify=false",
        f"--src-creds={cache.creds}",
        cache.reference("huge", "v1"),
        f"oci:{tmp_path / 'huge'}:v1",
    )

    assert not result.ok
    assert "quota has been exceeded" in result.stderr.lower(), result.stderr
    assert await _cached_repositories(cache) == {"small"}
    assert await _usage(cache) == usage
    cache.counter.reset_counts()
    await cache.pull("small", "v1", tmp_path / "small-again")
    assert cache.counter.total_requests == 0, cache.counter.requests
