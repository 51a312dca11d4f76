"""Pull statistics: manifest GETs are counted in memory and written in batches, shown per tag and
per manifest where Quay shows them (and only to callers granted read on the repository)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from services.registry.domain.pull_stats import PullStats
from shared.oci.digest import digest_bytes
from tests.e2e.helpers import TAG, image_layout, pull, push
from tests.fixtures.live_registry import LiveRegistry
from tests.fixtures.registry import Account, Registry
from tests.support.oci import bearer_header, bearer_token, push_image, random_image
from tests.support.registry_app import running_registry
from tests.support.waiting import eventually, wait_until

_API = "/api/v1/repository"


async def _pull(
    client: httpx.AsyncClient,
    name: str,
    reference: str,
    times: int = 1,
    headers: dict[str, str] | None = None,
) -> None:
    for _ in range(times):
        response = await client.get(f"/v2/{name}/manifests/{reference}", headers=headers)
        assert response.status_code == 200, response.text


async def _flush(registry: Registry) -> None:
    await registry.context.pull_stats.flush(registry.context.pool)


async def _tag_statistics(client: httpx.AsyncClient, name: str, tag: str) -> dict[str, Any]:
    response = await client.get(f"{_API}/{name}/tag/{tag}/pull_statistics")
    assert response.status_code == 200, response.text
    statistics: dict[str, Any] = response.json()
    return statistics


async def _manifest_statistics(client: httpx.AsyncClient, name: str, digest: str) -> dict[str, Any]:
    response = await client.get(f"{_API}/{name}/manifest/{digest}/pull_statistics")
    assert response.status_code == 200, response.text
    statistics: dict[str, Any] = response.json()
    return statistics


async def test_pulls_by_tag_and_digest_are_counted_after_a_flush(registry: Registry, owner: Account) -> None:
    name = f"{owner.username}/app"
    async with registry.client(owner) as client:
        digest = await push_image(client, name, random_image(), "v1")
        before = await _tag_statistics(client, name, "v1")
        await _pull(client, name, "v1", times=3)
        await _pull(client, name, digest, times=2)
        await _flush(registry)
        by_tag = await _tag_statistics(client, name, "v1")
        by_digest = await _manifest_statistics(client, name, digest)
    assert before == {
        "tag_name": "v1",
        "tag_pull_count": 0,
        "last_tag_pull_date": None,
        "current_manifest_digest": digest,
        "manifest_pull_count": 0,
        "last_manifest_pull_date": None,
    }
    assert by_tag["tag_pull_count"] == 3 and by_tag["manifest_pull_count"] == 5
    assert by_tag["last_tag_pull_date"] and by_tag["last_manifest_pull_date"]
    assert by_digest == {
        "manifest_digest": digest,
        "manifest_pull_count": 5,
        "last_manifest_pull_date": by_tag["last_manifest_pull_date"],
    }


async def test_heads_and_blob_pulls_are_not_counted(registry: Registry, owner: Account) -> None:
    name = f"{owner.username}/app"
    image = random_image()
    async with registry.client(owner) as client:
        digest = await push_image(client, name, image, "v1")
        head = await client.head(f"/v2/{name}/manifests/v1")
        blob = await client.get(f"/v2/{name}/blobs/{digest_bytes(image.config)}")
        await _flush(registry)
        statistics = await _tag_statistics(client, name, "v1")
    assert head.status_code == 200 and blob.status_code == 200
    assert statistics["tag_pull_count"] == 0 and statistics["manifest_pull_count"] == 0
    assert statistics["current_manifest_digest"] == digest


async def test_pulls_served_from_the_manifest_cache_count_too(registry: Registry, owner: Account) -> None:
    name = f"{owner.username}/app"
    await wait_until(lambda: registry.context.manifests.listening)
    async with registry.client(owner) as client:
        digest = await push_image(client, name, random_image(), "v1")
        token = await bearer_token(client, f"repository:{name}:pull")
    async with registry.client() as client:
        await _pull(client, name, "v1", headers=bearer_header(token))
        assert registry.context.manifests.get(name, "v1") is not None  # the next ones are cache hits
        await _pull(client, name, "v1", times=4, headers=bearer_header(token))
    await _flush(registry)
    async with registry.client(owner) as client:
        statistics = await _tag_statistics(client, name, "v1")
    assert statistics["tag_pull_count"] == 5 and statistics["manifest_pull_count"] == 5
    assert statistics["current_manifest_digest"] == digest


async def test_the_registry_flushes_on_its_own_and_at_shutdown(registry: Registry, owner: Account) -> None:
    name = f"{owner.username}/app"
    async with registry.client(owner) as client:
        await push_image(client, name, random_image(), "v1")
    frequent = registry.settings.model_copy(update={"pull_stats_flush_interval_s": 0.1})
    async with running_registry(frequent) as replica, replica.client(owner) as client:
        await _pull(client, name, "v1", times=2)
        await wait_until(lambda: _counted(registry, "v1", 2))
    rare = registry.settings.model_copy(update={"pull_stats_flush_interval_s": 3600})
    async with running_registry(rare) as replica, replica.client(owner) as client:
        await _pull(client, name, "v1", times=3)
    # Its lifespan is over: what it had not written yet was written when it stopped.
    assert await _counted(registry, "v1", 5)


async def _counted(registry: Registry, tag: str, expected: int) -> bool:
    count = await registry.context.pool.fetchval(
        "SELECT pull_count FROM tag_pull_stats WHERE tag_name = $1", tag
    )
    return bool(count == expected)


async def test_a_failed_flush_keeps_its_counts_for_the_next(registry: Registry, owner: Account) -> None:
    name = f"{owner.username}/app"
    async with registry.client(owner) as client:
        await push_image(client, name, random_image(), "v1")
        repository_id = await registry.context.pool.fetchval("SELECT id FROM repository")
        stats = PullStats()
        stats.record(repository_id, "v1", "sha256:" + "a" * 64)
        closed = await asyncpg.create_pool(registry.settings.database_url, min_size=0, max_size=1)
        await closed.close()
        with pytest.raises(asyncpg.InterfaceError):
            await stats.flush(closed)
        stats.record(repository_id, "v1", "sha256:" + "a" * 64)
        await stats.flush(registry.context.pool)
    assert await _counted(registry, "v1", 2)


async def test_counts_of_deleted_repositories_are_dropped(registry: Registry, owner: Account) -> None:
    name = f"{owner.username}/gone"
    async with registry.client(owner) as client:
        digest = await push_image(client, name, random_image(), "v1")
        await _pull(client, name, "v1")
        assert (await client.delete(f"{_API}/{name}")).status_code == 204
        await registry.context.pool.execute("DELETE FROM repository")  # as the purge does
    await _flush(registry)
    rows = await registry.context.pool.fetchval(
        "SELECT count(*) FROM manifest_pull_stats WHERE digest = $1", digest
    )
    assert rows == 0


async def test_tag_lists_carry_pull_counts(registry: Registry, owner: Account) -> None:
    name = f"{owner.username}/app"
    async with registry.client(owner) as client:
        await push_image(client, name, random_image(), "pulled")
        await push_image(client, name, random_image(), "never")
        await _pull(client, name, "pulled", times=2)
        await _flush(registry)
        tags = (await client.get(f"{_API}/{name}/tag/")).json()["tags"]
    by_name = {tag["name"]: tag for tag in tags}
    assert by_name["pulled"]["pull_count"] == 2 and by_name["pulled"]["last_pulled"]
    assert by_name["never"]["pull_count"] == 0 and by_name["never"]["last_pulled"] is None


async def test_public_readers_do_not_see_pull_statistics(registry: Registry, owner: Account) -> None:
    name = f"{owner.username}/public"
    stranger = await registry.user()
    async with registry.client(owner) as client:
        digest = await push_image(client, name, random_image(), "v1")
        visibility = await client.post(f"{_API}/{name}/changevisibility", json={"visibility": "public"})
        assert visibility.status_code == 200, visibility.text
    async with registry.client(stranger) as client:
        tags = (await client.get(f"{_API}/{name}/tag/")).json()["tags"]
        tag_statistics = await client.get(f"{_API}/{name}/tag/v1/pull_statistics")
        manifest_statistics = await client.get(f"{_API}/{name}/manifest/{digest}/pull_statistics")
    async with registry.client() as client:
        anonymous = await client.get(f"{_API}/{name}/tag/v1/pull_statistics")
    assert tags and "pull_count" not in tags[0]
    assert tag_statistics.status_code == 403 and manifest_statistics.status_code == 403
    assert anonymous.status_code == 401


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("tag/unknown/pull_statistics", 404),
        ("tag/bad%00tag/pull_statistics", 400),
        ("tag/" + "t" * 300 + "/pull_statistics", 404),
        ("manifest/sha256:" + "0" * 64 + "/pull_statistics", 404),
        ("manifest/not-a-digest/pull_statistics", 400),
        ("manifest/sha256:%00/pull_statistics", 400),
    ],
    ids=["unknown-tag", "nul-tag", "long-tag", "unknown-manifest", "bad-digest", "nul-digest"],
)
async def test_unknown_or_malformed_references_are_refused(
    registry: Registry, owner: Account, path: str, status: int
) -> None:
    name = f"{owner.username}/app"
    async with registry.client(owner) as client:
        await push_image(client, name, random_image(), "v1")
        response = await client.get(f"{_API}/{name}/{path}")
    assert response.status_code == status, response.text
    assert isinstance(response.json()["detail"], str)


@pytest.fixture
def live_registry_env() -> dict[str, str]:
    return {"QUAYSIDE_PULL_STATS_FLUSH_INTERVAL_S": "0.2"}


@pytest.mark.e2e
async def test_skopeo_pulls_are_counted_by_the_server_process(
    live_registry: LiveRegistry, tmp_path: Path
) -> None:
    owner = await live_registry.user()
    layout, _ = await image_layout(tmp_path / "source")
    name = f"{owner.username}/app"
    reference = live_registry.reference(name, TAG)
    await push(layout, reference, owner)
    for attempt in range(3):
        (await pull(reference, tmp_path / f"pulled{attempt}", owner)).check()

    async def statistics() -> dict[str, Any] | None:
        async with httpx.AsyncClient(base_url=live_registry.url, auth=owner.auth) as client:
            answer = await _tag_statistics(client, name, TAG)
        return answer if answer["tag_pull_count"] == 3 else None

    counted: dict[str, Any] = await eventually(statistics)
    assert counted["manifest_pull_count"] == 3


@pytest.mark.parametrize("path", ["tag/v1/pull_statistics", "manifest/{digest}/pull_statistics"])
async def test_a_private_repository_answers_strangers_as_a_missing_one(
    registry: Registry, owner: Account, path: str
) -> None:
    name, missing = f"{owner.username}/private", f"{owner.username}/ghost"
    stranger = await registry.user()
    async with registry.client(owner) as client:
        digest = await push_image(client, name, random_image(), "v1")
    for account, refusal in ((stranger, 403), (None, 401)):
        async with registry.client(account) as client:
            hidden = await client.get(f"{_API}/{name}/{path.format(digest=digest)}")
            absent = await client.get(f"{_API}/{missing}/{path.format(digest=digest)}")
        assert hidden.status_code == refusal, hidden.text
        assert (hidden.status_code, hidden.text.replace(name, missing)) == (absent.status_code, absent.text)
