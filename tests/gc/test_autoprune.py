"""Auto-prune passes (services/gc/autoprune.py) on a registry's real tags: both methods, with and
without patterns, namespace and repository policies, immutable tags untouched, pruned tags in the
time machine (restorable), announced (TagDeleted) and audited (usage log autoprune_tag_delete)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from services.gc.autoprune import run_autoprune
from shared.readonly_state import registry_read_only
from tests.fixtures.registry import Account, Registry
from tests.support.oci import push_image, put_manifest, random_image
from tests.support.waiting import eventually


@pytest.fixture
async def owner(registry: Registry) -> Account:
    return await registry.user()


@pytest.fixture
async def org(registry: Registry, owner: Account) -> str:
    return await registry.organization(owner)


async def _push_tags(client: httpx.AsyncClient, repository: str, tags: list[str]) -> str:
    """One image under every tag, pushed in order (so the last one is the newest); its digest."""
    image = random_image(layer_count=1, layer_size=64)
    digest = await push_image(client, repository, image, tags[0])
    for tag in tags[1:]:
        assert (await put_manifest(client, repository, tag, image.manifest)).status_code == 201
    return digest


async def _live_tags(registry: Registry, repository: str) -> set[str]:
    async with registry.context.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT t.name FROM tag t JOIN repository r ON r.id = t.repository_id"
            " WHERE r.full_name = $1 AND (t.lifetime_end IS NULL OR t.lifetime_end > now())",
            repository,
        )
    return {row["name"] for row in rows}


async def _policy(client: httpx.AsyncClient, policies: str, body: dict[str, object]) -> None:
    response = await client.post(policies, json=body)
    assert response.status_code == 201, response.text


async def _age(registry: Registry, repository: str, tags: list[str], days: int) -> None:
    """Make the tags look created ``days`` ago."""
    async with registry.context.pool.acquire() as conn:
        await conn.execute(
            "UPDATE tag t SET lifetime_start = lifetime_start - make_interval(days => $3)"
            " FROM repository r WHERE r.id = t.repository_id AND r.full_name = $1 AND t.name = ANY($2::text[])",
            repository,
            tags,
            days,
        )


async def test_number_of_tags_keeps_the_newest_and_prunes_into_the_time_machine(
    registry: Registry, org: str, owner: Account
) -> None:
    repository = f"{org}/app"
    names = [f"build-{index}" for index in range(6)]
    async with registry.client(owner) as client:
        digest = await _push_tags(client, repository, names)
        await _policy(
            client, f"/api/v1/organization/{org}/autoprunepolicy/", {"method": "number_of_tags", "value": 2}
        )

        dry = await run_autoprune(registry.context.pool, dry_run=True)
        assert dry.tags_pruned == {"number_of_tags": 4}
        assert await _live_tags(registry, repository) == set(names)

        report = await run_autoprune(registry.context.pool)
        assert report.tags_pruned == {"number_of_tags": 4} and report.policies == 1
        assert {(tag.tag, tag.digest) for tag in report.pruned} == {(name, digest) for name in names[:4]}
        assert await _live_tags(registry, repository) == {"build-4", "build-5"}
        # A second pass finds nothing more to do.
        assert (await run_autoprune(registry.context.pool)).total_pruned == 0

        restored = await client.post(
            f"/api/v1/repository/{repository}/tag/build-0/restore", json={"manifest_digest": digest}
        )
        assert restored.status_code == 200, restored.text
    assert "build-0" in await _live_tags(registry, repository)

    async with registry.context.pool.acquire() as conn:
        logs = await conn.fetch(
            "SELECT repository, performer_name, metadata FROM log_entry WHERE kind = 'autoprune_tag_delete' ORDER BY id"
        )
        events = await conn.fetch(
            "SELECT payload FROM event_outbox WHERE routing_key = 'tag.deleted' ORDER BY id"
        )
    assert sorted(log["metadata"]["tag"] for log in logs) == names[:4]
    assert {(log["repository"], log["performer_name"]) for log in logs} == {("app", None)}
    assert {log["metadata"]["method"] for log in logs} == {"number_of_tags"}
    assert {log["metadata"]["value"] for log in logs} == {2}
    assert sorted(event["payload"]["tag"] for event in events) == names[:4]


async def test_patterns_select_the_tags_a_policy_covers(registry: Registry, org: str, owner: Account) -> None:
    repository = f"{org}/app"
    names = ["v1.0", "v1.1", "v1.2", "nightly-1", "nightly-2", "nightly-3"]
    async with registry.client(owner) as client:
        await _push_tags(client, repository, names)
        policies = f"/api/v1/repository/{repository}/autoprunepolicy/"
        # Of the nightlies, keep one; the releases are not covered.
        await _policy(client, policies, {"method": "number_of_tags", "value": 1, "tagPattern": "nightly-.*"})
        await run_autoprune(registry.context.pool)
        assert await _live_tags(registry, repository) == {"v1.0", "v1.1", "v1.2", "nightly-3"}

        # tagPatternMatches false: everything but the releases; keep two of those.
        await _policy(
            client,
            policies,
            {"method": "number_of_tags", "value": 2, "tagPattern": "v[0-9.]+", "tagPatternMatches": False},
        )
        await _push_tags(client, repository, ["rc-1", "rc-2"])
        await run_autoprune(registry.context.pool)
    assert await _live_tags(registry, repository) == {"v1.0", "v1.1", "v1.2", "rc-1", "rc-2"}


async def test_creation_date_prunes_old_tags_with_and_without_patterns(
    registry: Registry, org: str, owner: Account
) -> None:
    repository = f"{org}/app"
    other = f"{org}/other"
    names = ["old-a", "old-b", "keep-old", "new-a"]
    async with registry.client(owner) as client:
        await _push_tags(client, repository, names)
        await _push_tags(client, other, ["old-x", "new-x"])
        await _age(registry, repository, ["old-a", "old-b", "keep-old"], days=10)
        await _age(registry, other, ["old-x"], days=10)
        await _policy(
            client,
            f"/api/v1/organization/{org}/autoprunepolicy/",
            {"method": "creation_date", "value": "1w", "tagPattern": "keep-.*", "tagPatternMatches": False},
        )
        report = await run_autoprune(registry.context.pool)
    assert report.tags_pruned == {"creation_date": 3} and report.repositories == 2
    assert await _live_tags(registry, repository) == {"keep-old", "new-a"}
    assert await _live_tags(registry, other) == {"new-x"}
    # Measured from `now`: ten days on, the remaining tags are old as well.
    later = await run_autoprune(
        registry.context.pool, now=datetime.now(UTC) + timedelta(days=10), dry_run=True
    )
    assert {(tag.repository, tag.tag) for tag in later.pruned} == {("app", "new-a"), ("other", "new-x")}


async def test_immutable_tags_are_never_pruned(registry: Registry, org: str, owner: Account) -> None:
    repository = f"{org}/app"
    names = ["stable-1", "stable-2", "dev-1", "dev-2", "dev-3"]
    async with registry.client(owner) as client:
        await _push_tags(client, repository, names)
        immutable = await client.post(
            f"/api/v1/organization/{org}/immutabilitypolicy/", json={"tagPattern": "stable-.*"}
        )
        assert immutable.status_code == 201, immutable.text
        await _policy(
            client,
            f"/api/v1/repository/{repository}/autoprunepolicy/",
            {"method": "number_of_tags", "value": 1},
        )
        report = await run_autoprune(registry.context.pool)
    assert report.immutable_kept == 2
    assert report.tags_pruned == {"number_of_tags": 2}
    assert await _live_tags(registry, repository) == {"stable-1", "stable-2", "dev-3"}


async def test_nothing_is_pruned_while_the_registry_is_read_only(
    registry: Registry, org: str, owner: Account
) -> None:
    repository = f"{org}/app"
    async with registry.client(owner) as client:
        await _push_tags(client, repository, ["a", "b", "c"])
        await _policy(
            client, f"/api/v1/organization/{org}/autoprunepolicy/", {"method": "number_of_tags", "value": 1}
        )
    pool = registry.context.pool
    await pool.execute("UPDATE registry_state SET read_only = true, reason = 'maintenance'")
    await eventually(lambda: registry_read_only(pool))
    report = await run_autoprune(pool)
    assert report.skipped_read_only and report.total_pruned == 0
    assert await _live_tags(registry, repository) == {"a", "b", "c"}
