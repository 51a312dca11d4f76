"""Warning and Reject crossings announced through the outbox once per crossing, re-armed when usage
falls back under; the system default reject quota for namespaces without one."""

from __future__ import annotations

import json

import asyncpg

from services.quota.accounting import QuotaAccounting
from shared.quota import check_crossings, lock_namespace, recheck_digests, reject_limit_bytes, usage_bytes
from tests.quota import store
from tests.quota.store import digest_of


async def quota(conn: asyncpg.Connection, namespace_id: int, limit_bytes: int, **limits: int) -> None:
    quota_id = await conn.fetchval(
        "INSERT INTO quota (namespace_id, limit_bytes) VALUES ($1, $2) RETURNING id",
        namespace_id,
        limit_bytes,
    )
    for kind, percent in limits.items():
        await conn.execute(
            "INSERT INTO quota_limit (quota_id, limit_type, threshold_percent) VALUES ($1, $2, $3)",
            quota_id,
            kind.capitalize(),
            percent,
        )


async def announced(conn: asyncpg.Connection) -> list[tuple[str, int, int]]:
    rows = await conn.fetch(
        "SELECT routing_key, payload FROM event_outbox WHERE routing_key LIKE 'quota.%' ORDER BY id"
    )
    payloads = [(row[0], json.loads(row[1]) if isinstance(row[1], str) else row[1]) for row in rows]
    return [(key, payload["usage_bytes"], payload["threshold_percent"]) for key, payload in payloads]


async def pushed(
    conn: asyncpg.Connection, repository_id: int, label: str, size: int, handler: QuotaAccounting
) -> str:
    digest, event = await store.push(conn, repository_id, {digest_of(label): size}, label)
    async with conn.transaction():
        await handler(conn, event)
    return digest


async def test_warning_then_reject_are_announced_once_per_crossing_and_rearmed_below(
    db_pool: asyncpg.Pool,
) -> None:
    handler = QuotaAccounting(default_reject_bytes=None)
    async with db_pool.acquire() as conn:
        org = await store.namespace(conn, "limited")
        repo = await store.repository(conn, org, "app")
        await quota(conn, org, 1000, warning=80, reject=100)
        assert await reject_limit_bytes(conn, org, 5) == 1000

        await pushed(conn, repo, "a", 500, handler)
        assert await announced(conn) == []
        await pushed(conn, repo, "b", 350, handler)
        await pushed(conn, repo, "c", 10, handler)
        assert await announced(conn) == [("quota.warning", 850, 80)]
        await pushed(conn, repo, "d", 140, handler)
        await pushed(conn, repo, "e", 1, handler)
        assert await announced(conn) == [("quota.warning", 850, 80), ("quota.exceeded", 1000, 100)]

        # GC takes usage back under both limits: they re-arm, and the next crossing is announced again.
        for tag in ("b", "d", "e"):
            await store.end_tag(conn, repo, tag)
        await store.purge_time_machine(conn, repo)
        collected = await store.collect_garbage(conn, org)
        async with conn.transaction():
            await handler(conn, collected)
        assert await usage_bytes(conn, org) == 510
        assert await conn.fetchval("SELECT count(*) FROM quota_crossing WHERE namespace_id = $1", org) == 0
        await pushed(conn, repo, "f", 300, handler)
        assert (await announced(conn))[2:] == [("quota.warning", 810, 80)]


async def test_the_system_default_rejects_at_100_percent_only_without_a_quota_of_its_own(
    db_pool: asyncpg.Pool,
) -> None:
    handler = QuotaAccounting(default_reject_bytes=2000)
    async with db_pool.acquire() as conn:
        plain = await store.namespace(conn, "plain")
        own = await store.namespace(conn, "own-quota")
        assert await reject_limit_bytes(conn, plain, 2000) == 2000
        assert await reject_limit_bytes(conn, plain, None) is None
        # A quota of its own replaces the default, even one without a Reject limit.
        await quota(conn, own, 10_000, warning=50)
        assert await reject_limit_bytes(conn, own, 2000) is None

        repo = await store.repository(conn, plain, "app")
        await pushed(conn, repo, "x", 1999, handler)
        assert await announced(conn) == []
        await pushed(conn, repo, "y", 1, handler)
        await pushed(conn, repo, "z", 1, handler)
        assert await announced(conn) == [("quota.exceeded", 2000, 100)]

        other = await store.repository(conn, own, "app")
        await pushed(conn, other, "w", 4000, handler)
        assert await announced(conn) == [("quota.exceeded", 2000, 100)]
        await pushed(conn, other, "v", 1000, handler)
        assert (await announced(conn))[1:] == [("quota.warning", 5000, 50)]


async def test_a_quota_set_after_the_usage_is_announced_by_the_next_check(db_pool: asyncpg.Pool) -> None:
    async with db_pool.acquire() as conn:
        org = await store.namespace(conn, "late-quota")
        repo = await store.repository(conn, org, "app")
        digest = digest_of("big")
        await store.push(conn, repo, {digest: 900}, "v1")
        async with conn.transaction():
            await lock_namespace(conn, org)
            await recheck_digests(conn, namespace_id=org, repository_id=repo, digests=[digest])
        await quota(conn, org, 1000, warning=50, reject=90)
        async with conn.transaction():
            await lock_namespace(conn, org)
            assert await check_crossings(conn, org, 900) == ["Reject:90", "Warning:50"]
            assert await check_crossings(conn, org, 900) == []
        assert [key for key, _, _ in await announced(conn)] == ["quota.exceeded", "quota.warning"]
