"""The per-process manifest cache: served from memory, never stale past a committed change."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import asyncpg

from services.registry.v2.manifest_cache import CHANNEL, ManifestCache
from tests.fixtures.registry import Registry
from tests.support.oci import bearer_header, bearer_token, push_image, random_image
from tests.support.registry_app import running_registry
from tests.support.waiting import eventually, wait_until


async def _pull_digest(registry: Registry, name: str, reference: str, token: str) -> str:
    async with registry.client() as client:
        response = await client.get(f"/v2/{name}/manifests/{reference}", headers=bearer_header(token))
    assert response.status_code == 200, response.text
    return response.headers["docker-content-digest"]


async def _cached_digest(registry: Registry, name: str, reference: str) -> str | None:
    cached = registry.context.manifests.get(name, reference)
    return cached.digest if cached else None


async def _pulled_into_the_cache(
    registry: Registry, name: str, reference: str, token: str, digest: str
) -> None:
    """Pull until the cache holds the manifest: a pull read while the push's own change announcement
    was still on its way is rightly not stored."""

    async def cached_after_a_pull() -> bool:
        assert await _pull_digest(registry, name, reference, token) == digest
        return await _cached_digest(registry, name, reference) == digest

    await eventually(cached_after_a_pull)


async def test_a_tag_moved_by_another_replica_is_never_served_stale(registry: Registry) -> None:
    alice = await registry.user()
    name = f"{alice.username}/app"
    await wait_until(lambda: registry.context.manifests.listening)
    async with registry.client(alice) as client:
        first = await push_image(client, name, random_image(), "latest")
        token = await bearer_token(client, f"repository:{name}:pull")
    await _pulled_into_the_cache(registry, name, "latest", token, first)

    async with running_registry(registry.settings) as other, other.client(alice) as client:
        second = await push_image(client, name, random_image(), "latest")

    await wait_until(lambda: registry.context.manifests.get(name, "latest") is None)
    assert await _pull_digest(registry, name, "latest", token) == second


async def test_changes_made_in_plain_sql_evict_too(registry: Registry) -> None:
    alice = await registry.user()
    name = f"{alice.username}/app"
    await wait_until(lambda: registry.context.manifests.listening)
    async with registry.client(alice) as client:
        digest = await push_image(client, name, random_image(), "v1")
        token = await bearer_token(client, f"repository:{name}:pull")
    await _pulled_into_the_cache(registry, name, "v1", token, digest)

    async with registry.context.pool.acquire() as conn:
        await conn.execute("UPDATE tag SET lifetime_end = now() WHERE name = 'v1'")
    await wait_until(lambda: registry.context.manifests.get(name, "v1") is None)
    async with registry.client() as client:
        response = await client.get(f"/v2/{name}/manifests/v1", headers=bearer_header(token))
    assert response.status_code == 404


async def test_without_its_listening_connection_the_cache_empties_and_stays_off(registry: Registry) -> None:
    alice = await registry.user()
    name = f"{alice.username}/app"
    cache = registry.context.manifests
    await wait_until(lambda: cache.listening)
    async with registry.client(alice) as client:
        digest = await push_image(client, name, random_image(), "v1")
        token = await bearer_token(client, f"repository:{name}:pull")
    await _pulled_into_the_cache(registry, name, "v1", token, digest)

    async with registry.context.pool.acquire() as conn:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND query LIKE $1",
            f"%LISTEN%{CHANNEL}%",
        )
    await wait_until(lambda: cache.get(name, "v1") is None)
    await wait_until(lambda: cache.listening)  # it reconnects by itself
    assert await _pull_digest(registry, name, "v1", token) == digest


async def test_an_entry_read_before_a_change_was_announced_is_not_stored(registry: Registry) -> None:
    cache = registry.context.manifests
    await wait_until(lambda: cache.listening)
    read_at = cache.generation
    conn = await asyncpg.connect(registry.settings.database_url)
    try:
        await conn.execute("SELECT pg_notify($1, '42')", CHANNEL)
    finally:
        await conn.close()
    await wait_until(lambda: cache.generation != read_at)
    cache.put("ns/app", "latest", (42, "sha256:" + "0" * 64, "application/json", b"{}"), read_at)
    assert cache.get("ns/app", "latest") is None


async def test_basic_and_anonymous_pulls_are_never_served_from_the_cache(registry: Registry) -> None:
    alice = await registry.user()
    bob = await registry.user()
    name = f"{alice.username}/app"
    await wait_until(lambda: registry.context.manifests.listening)
    async with registry.client(alice) as client:
        digest = await push_image(client, name, random_image(), "v1")
        token = await bearer_token(client, f"repository:{name}:pull")
    await _pulled_into_the_cache(registry, name, "v1", token, digest)
    async with registry.client(bob) as client:
        assert (await client.get(f"/v2/{name}/manifests/v1")).status_code == 403
    async with registry.client() as client:
        assert (await client.get(f"/v2/{name}/manifests/v1")).status_code == 401


def _row(digest_hex: str) -> tuple[int, str, str, bytes]:
    return 7, "sha256:" + digest_hex * 64, "application/json", b"{}"


def _listening_cache() -> ManifestCache:
    cache = ManifestCache()
    cache.listening = True
    return cache


async def test_an_entry_in_the_second_half_of_its_life_is_read_again_once_and_stays_served() -> None:
    cache = _listening_cache()
    cache.put("ns/app", "v1", _row("1"), cache.generation)
    fresh = cache.get("ns/app", "v1")
    assert fresh is not None
    reads: list[str] = []
    release = asyncio.Event()

    async def read() -> tuple[int, str, str, bytes]:
        reads.append("read")
        await release.wait()
        return _row("2")

    cache.refresh_ahead("ns/app", "v1", fresh, read)  # young: nothing read (checked below)
    ageing = dataclasses.replace(fresh, expires_at=time.monotonic() + 1.0)
    for _ in range(5):
        cache.refresh_ahead("ns/app", "v1", ageing, read)
    await wait_until(lambda: reads == ["read"])  # one read: none for the young entry, one for five calls
    assert cache.get("ns/app", "v1") == fresh  # still served meanwhile
    release.set()
    await wait_until(lambda: (entry := cache.get("ns/app", "v1")) is not None and entry.digest.endswith("2"))
    renewed = cache.get("ns/app", "v1")
    assert renewed is not None and renewed.expires_at > fresh.expires_at


async def test_a_read_again_that_finds_nothing_or_predates_a_change_is_not_kept() -> None:
    cache = _listening_cache()
    cache.put("ns/app", "gone", _row("1"), cache.generation)
    cache.put("ns/app", "moved", _row("1"), cache.generation)
    release = asyncio.Event()

    async def nothing() -> None:
        return None

    returned = asyncio.Event()

    async def late() -> tuple[int, str, str, bytes]:
        await release.wait()
        returned.set()  # the cache stores or drops in the same step as this returns
        return _row("3")

    for reference, read in (("gone", nothing), ("moved", late)):
        entry = cache.get("ns/app", reference)
        assert entry is not None
        cache.refresh_ahead(
            "ns/app", reference, dataclasses.replace(entry, expires_at=time.monotonic()), read
        )
    await wait_until(lambda: cache.get("ns/app", "gone") is None)
    cache._on_notification(None, 0, CHANNEL, "8")  # another repository changed: the read predates it
    release.set()
    await asyncio.wait_for(returned.wait(), 5)
    moved = cache.get("ns/app", "moved")
    assert moved is not None and moved.digest.endswith("1")
