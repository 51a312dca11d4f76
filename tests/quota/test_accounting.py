"""The usage rule over real Postgres: distinct blobs per namespace and per repository, charged while
any tag row (alive or restorable) reaches their manifests, released only when GC deletes them."""

from __future__ import annotations

import asyncpg

from services.quota.accounting import QuotaAccounting
from shared.events.consumer import IdempotentConsumer
from shared.quota import count_saved_manifest, lock_namespace, recheck_digests, recount_namespace, usage_bytes
from tests.quota import store
from tests.quota.store import digest_of

BASE, APP_A, APP_B, CONFIG = digest_of("base"), digest_of("app-a"), digest_of("app-b"), digest_of("config")
LATE = digest_of("late")
SIZES = {BASE: 1_000_000, APP_A: 30_000, APP_B: 50_000, CONFIG: 700}

handle = QuotaAccounting(default_reject_bytes=None)


def blobs(*digests: str) -> dict[str, int]:
    return {digest: SIZES[digest] for digest in digests}


async def handled(pool: asyncpg.Pool, event: object) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await handle(conn, event)  # type: ignore[arg-type]


async def assert_exact(conn: asyncpg.Connection, namespace_id: int) -> None:
    result = await recount_namespace(conn, namespace_id)
    assert not result.drifted, result


async def test_a_shared_layer_counts_once_for_the_namespace_and_once_for_each_repository(
    db_pool: asyncpg.Pool,
) -> None:
    async with db_pool.acquire() as conn:
        org = await store.namespace(conn, "shared-org")
        one, two = await store.repository(conn, org, "one"), await store.repository(conn, org, "two")
        _, pushed_a = await store.push(conn, one, blobs(BASE, APP_A, CONFIG), "latest")
        _, pushed_b = await store.push(conn, two, blobs(BASE, APP_B, CONFIG), "latest")
        _, pushed_c = await store.push(conn, one, blobs(BASE, APP_B), "other")
    for event in (pushed_a, pushed_b, pushed_c, pushed_a):
        await handled(db_pool, event)
    async with db_pool.acquire() as conn:
        total, (first, second) = await store.figures(conn, org, [one, two])
        assert total == SIZES[BASE] + SIZES[APP_A] + SIZES[APP_B] + SIZES[CONFIG]
        assert first == SIZES[BASE] + SIZES[APP_A] + SIZES[APP_B] + SIZES[CONFIG]
        assert second == SIZES[BASE] + SIZES[APP_B] + SIZES[CONFIG]
        await assert_exact(conn, org)


async def test_tag_delete_expiry_and_time_machine_release_nothing_until_gc_deletes(
    db_pool: asyncpg.Pool,
) -> None:
    async with db_pool.acquire() as conn:
        org = await store.namespace(conn, "lifecycle")
        one, two = await store.repository(conn, org, "one"), await store.repository(conn, org, "two")
        _, first = await store.push(conn, one, blobs(BASE, APP_A), "deleted")
        _, second = await store.push(conn, one, blobs(APP_B), "expiring")
        _, third = await store.push(conn, two, blobs(BASE), "keep")
    for event in (first, second, third):
        await handled(db_pool, event)
    everything = SIZES[BASE] + SIZES[APP_A] + SIZES[APP_B]

    async with db_pool.acquire() as conn:
        deleted = await store.delete_tag(conn, one, "deleted")
        # Expiry: the tag's end passed (the registry's expiry announcer ends such rows the same way).
        await conn.execute(
            "UPDATE tag SET lifetime_end = now() - interval '1 second' WHERE repository_id = $1 AND name = 'expiring'",
            one,
        )
    assert deleted is not None
    await handled(db_pool, deleted)
    async with db_pool.acquire() as conn:
        assert await store.figures(conn, org, [one, two]) == (everything, [everything, SIZES[BASE]])
        # A GC pass while the ended rows are still restorable removes nothing.
        assert (await store.collect_garbage(conn, org)).repositories == []
        assert await store.restore_tag(conn, one, "deleted")
        await store.end_tag(conn, one, "deleted")
        await store.purge_time_machine(conn, one)
        assert await store.figures(conn, org, [one, two]) == (everything, [everything, SIZES[BASE]])
        await assert_exact(conn, org)
        collected = await store.collect_garbage(conn, org)
    await handled(db_pool, collected)
    await handled(db_pool, collected)
    async with db_pool.acquire() as conn:
        # BASE stays charged to the namespace: repository two still uses it.
        assert await store.figures(conn, org, [one, two]) == (SIZES[BASE], [0, SIZES[BASE]])
        assert sorted(collected.blobs_deleted) == sorted([APP_A, APP_B])
        await assert_exact(conn, org)


async def test_manifest_deleted_by_digest_and_repository_deletion_release_their_bytes(
    db_pool: asyncpg.Pool,
) -> None:
    async with db_pool.acquire() as conn:
        org = await store.namespace(conn, "deletions")
        one, two = await store.repository(conn, org, "one"), await store.repository(conn, org, "two")
        digest, first = await store.push(conn, one, blobs(BASE, APP_A), "v1")
        _, second = await store.push(conn, two, blobs(BASE, APP_B), "v1")
    await handled(db_pool, first)
    await handled(db_pool, second)
    async with db_pool.acquire() as conn:
        assert await store.delete_manifest(conn, one, digest)
        assert not await store.delete_manifest(conn, one, digest)
        assert await store.figures(conn, org, [one, two]) == (
            SIZES[BASE] + SIZES[APP_B],
            [0, SIZES[BASE] + SIZES[APP_B]],
        )
        await assert_exact(conn, org)
        deleted = await store.delete_repository(conn, two)
    await handled(db_pool, deleted)
    async with db_pool.acquire() as conn:
        assert await store.figures(conn, org, [one, two]) == (0, [0, 0])
        await assert_exact(conn, org)

        # A deletion whose rows were purged before its event is handled releases the bytes too.
        three = await store.repository(conn, org, "three")
        _, third = await store.push(conn, three, blobs(APP_A), "v1")
    await handled(db_pool, third)
    async with db_pool.acquire() as conn:
        assert await usage_bytes(conn, org) == SIZES[APP_A]
        deleted = await store.delete_repository(conn, three)
        await store.purge_repository(conn, three)
    await handled(db_pool, deleted)
    async with db_pool.acquire() as conn:
        assert await usage_bytes(conn, org) == 0
        await assert_exact(conn, org)


async def test_an_untagged_manifest_deleted_by_digest_is_released_at_once(db_pool: asyncpg.Pool) -> None:
    async with db_pool.acquire() as conn:
        org = await store.namespace(conn, "untagged")
        one = await store.repository(conn, org, "one")
        digest, pushed = await store.push(conn, one, blobs(BASE, APP_A), None)
        _, kept = await store.push(conn, one, blobs(BASE), "v1")
    await handled(db_pool, pushed)
    await handled(db_pool, kept)
    async with db_pool.acquire() as conn:
        assert await store.delete_manifest(conn, one, digest)
        # Released in the delete's own transaction; the layer another manifest uses stays counted.
        assert await store.figures(conn, org, [one]) == (SIZES[BASE], [SIZES[BASE]])
        await assert_exact(conn, org)
        collected = await store.collect_garbage(conn, org)
    assert collected.blobs_deleted == [APP_A]
    await handled(db_pool, collected)
    async with db_pool.acquire() as conn:
        assert await store.figures(conn, org, [one]) == (SIZES[BASE], [SIZES[BASE]])
        await assert_exact(conn, org)


async def test_the_recount_finds_every_kind_of_drift_and_repairs_it(db_pool: asyncpg.Pool) -> None:
    async with db_pool.acquire() as conn:
        org = await store.namespace(conn, "drifting")
        one = await store.repository(conn, org, "one")
        _, pushed = await store.push(conn, one, blobs(BASE, APP_A), "v1")
    await handled(db_pool, pushed)
    async with db_pool.acquire() as conn:
        await conn.execute("UPDATE namespace_usage SET bytes = bytes + 5 WHERE namespace_id = $1", org)
        await conn.execute(
            "DELETE FROM quota_repository_blob WHERE repository_id = $1 AND digest = $2", one, APP_A
        )
        await conn.execute(
            "INSERT INTO quota_namespace_blob (namespace_id, digest, size) VALUES ($1, $2, 3)",
            org,
            digest_of("ghost"),
        )
        result = await recount_namespace(conn, org)
        assert result.drifted and result.drift_bytes == 5 and result.extra_digests == 1
        assert [(drift.repository, drift.mismatched_digests) for drift in result.repositories] == [("one", 1)]
        async with conn.transaction():
            await lock_namespace(conn, org)
            assert (await recount_namespace(conn, org, repair=True)).repaired
        assert await store.figures(conn, org, [one]) == (
            SIZES[BASE] + SIZES[APP_A],
            [SIZES[BASE] + SIZES[APP_A]],
        )
        await assert_exact(conn, org)


async def test_recheck_is_state_based_and_a_redelivered_event_is_handled_once(db_pool: asyncpg.Pool) -> None:
    async with db_pool.acquire() as conn:
        org = await store.namespace(conn, "redelivered")
        one = await store.repository(conn, org, "one")
        _, pushed = await store.push(conn, one, blobs(BASE, CONFIG), "v1")
        # The registry's push path re-checks in its own transaction ...
        async with conn.transaction():
            await lock_namespace(conn, org)
            change = await recheck_digests(
                conn, namespace_id=org, repository_id=one, digests=[BASE, CONFIG, BASE]
            )
        assert change.namespace_added == SIZES[BASE] + SIZES[CONFIG]
    # ... so the service's ManifestPushed, delivered twice, changes nothing.
    consumer = IdempotentConsumer("quota.test", db_pool, handle)
    body = pushed.model_dump_json().encode()
    assert (await consumer.process(pushed.routing_key, body)).outcome == "handled"
    assert (await consumer.process(pushed.routing_key, body)).outcome == "duplicate"
    async with db_pool.acquire() as conn:
        assert await store.figures(conn, org, [one]) == (
            SIZES[BASE] + SIZES[CONFIG],
            [SIZES[BASE] + SIZES[CONFIG]],
        )
        await assert_exact(conn, org)


async def test_the_push_path_count_moves_what_the_general_recheck_moves(db_pool: asyncpg.Pool) -> None:
    """count_saved_manifest (the registry's push transaction) against recheck_digests on twin
    namespaces in the same states: a first push, a re-push, a blob shared with another repository,
    and a push in flight into a repository marked for deletion meanwhile, which counts nothing (what
    the repository held is released by the RepositoryDeleted handling, under the same lock)."""
    results: dict[str, list[tuple[int, int, int, int]]] = {}
    for label in ("push-path", "general"):
        async with db_pool.acquire() as conn:
            org = await store.namespace(conn, f"twin-{label}")
            one, two = await store.repository(conn, org, "one"), await store.repository(conn, org, "two")
            await store.push(conn, two, blobs(BASE), "base")
            await handled_in(conn, org, two, [BASE], label)
            steps = [(one, [BASE, APP_A, CONFIG]), (one, [BASE, APP_A, CONFIG]), (two, [APP_B, BASE])]
            moved = []
            for repository, digests in steps:
                await store.push(conn, repository, {digest: SIZES[digest] for digest in digests}, None)
                moved.append(await handled_in(conn, org, repository, digests, label))
            await conn.execute("UPDATE repository SET state = 'MARKED_FOR_DELETION' WHERE id = $1", two)
            await store.push(conn, two, {LATE: 4096}, None)
            moved.append(await handled_in(conn, org, two, [LATE], label))
            moved.append((await usage_bytes(conn, org), 0, 0, 0))
            results[label] = moved
    assert results["push-path"] == results["general"]
    assert results["push-path"][0] == (
        SIZES[APP_A] + SIZES[CONFIG],
        0,
        SIZES[BASE] + SIZES[APP_A] + SIZES[CONFIG],
        0,
    )
    assert results["push-path"][1] == results["push-path"][3] == (0, 0, 0, 0)


async def handled_in(
    conn: asyncpg.Connection, org: int, repository: int, digests: list[str], label: str
) -> tuple[int, int, int, int]:
    async with conn.transaction():
        await lock_namespace(conn, org)
        recheck = count_saved_manifest if label == "push-path" else recheck_digests
        change = await recheck(conn, namespace_id=org, repository_id=repository, digests=digests)
    return (
        change.namespace_added,
        change.namespace_removed,
        change.repository_added,
        change.repository_removed,
    )
