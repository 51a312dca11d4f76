"""Property: after any sequence of pushes, tag deletions, restores, time-machine purges, manifest
deletions by digest (tagged or not, through the registry's delete), repository deletions and GC
passes, with events handled late, twice or by the push path itself, the incremental figures equal
the recount exactly."""

from __future__ import annotations

import asyncio
import itertools
import random

import asyncpg
import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings

from services.quota.accounting import QuotaAccounting
from shared.events.models import Event
from shared.quota import lock_namespace, recheck_digests, recount_namespace
from tests.quota import store
from tests.quota.store import digest_of

OPERATIONS = (
    "push",
    "push",
    "push_enforced",
    "delete_tag",
    "restore",
    "purge",
    "gc",
    "delete_manifest",
    "delete_repo",
)
TAGS = ("a", "b", "c")
# A small pool of layers, so that repositories and manifests share many of them.
LAYERS = [(digest_of(f"layer-{n}"), 1000 + 37 * n) for n in range(12)]
_examples = itertools.count()

operations = st.lists(
    st.tuples(st.sampled_from(OPERATIONS), st.integers(0, 2**32)), min_size=500, max_size=500
)


class Run:
    def __init__(self, conn: asyncpg.Connection, namespace_id: int, repositories: list[int]) -> None:
        self.conn = conn
        self.namespace_id = namespace_id
        self.repositories = repositories
        self.handler = QuotaAccounting(default_reject_bytes=None)
        self.pending: list[Event] = []

    async def deliver(self, rng: random.Random) -> None:
        """Handle a random part of the pending events, in order, some twice."""
        count = rng.randint(0, len(self.pending))
        ready, self.pending = self.pending[:count], self.pending[count:]
        for event in ready:
            for _ in range(1 + (rng.random() < 0.2)):
                async with self.conn.transaction():
                    await self.handler(self.conn, event)

    async def apply(self, operation: str, seed: int) -> None:
        rng = random.Random(seed)
        conn, repository_id = self.conn, rng.choice(self.repositories)
        tag = rng.choice(TAGS)
        if operation in ("push", "push_enforced"):
            layers = dict(rng.sample(LAYERS, rng.randint(1, 4)))
            async with conn.transaction():
                _, event = await store.push(conn, repository_id, layers, tag if rng.random() < 0.9 else None)
                if operation == "push_enforced":
                    await lock_namespace(conn, self.namespace_id)
                    await recheck_digests(
                        conn, namespace_id=self.namespace_id, repository_id=repository_id, digests=layers
                    )
            self.pending.append(event)
        elif operation == "delete_tag":
            deleted = await store.delete_tag(conn, repository_id, tag)
            self.pending.extend([deleted] if deleted else [])
        elif operation == "restore":
            await store.restore_tag(conn, repository_id, tag)
        elif operation == "purge":
            await store.purge_time_machine(conn, repository_id, tag)
        elif operation == "gc":
            self.pending.append(await store.collect_garbage(conn, self.namespace_id))
        elif operation == "delete_manifest":
            # Any manifest, tagged or not: the registry's delete releases its bytes in its own transaction.
            digest = await conn.fetchval(
                "SELECT digest FROM manifest WHERE repository_id = $1 ORDER BY id OFFSET $2 LIMIT 1",
                repository_id,
                rng.randrange(4),
            )
            if digest is not None:
                await store.delete_manifest(conn, repository_id, digest)
        elif operation == "delete_repo" and rng.random() < 0.1:
            self.pending.append(await store.delete_repository(conn, repository_id))
            if rng.random() < 0.5:
                await store.purge_repository(conn, repository_id)
            replacement = await store.repository(conn, self.namespace_id, f"repo-{seed}")
            self.repositories[self.repositories.index(repository_id)] = replacement
        await self.deliver(rng)


async def run_operations(database_url: str, steps: list[tuple[str, int]]) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        example = next(_examples)
        namespace_id = await store.namespace(conn, f"prop{example}")
        repositories = [await store.repository(conn, namespace_id, f"r{n}") for n in range(3)]
        run = Run(conn, namespace_id, repositories)
        for operation, seed in steps:
            await run.apply(operation, seed)
        run.pending, pending = [], run.pending
        for event in pending:
            async with conn.transaction():
                await run.handler(conn, event)
        result = await recount_namespace(conn, namespace_id)
        assert not result.drifted, result
    finally:
        await conn.close()


@given(steps=operations)
@settings(
    max_examples=3,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
def test_incremental_figures_equal_the_recount_after_random_operations(
    database_url: str, steps: list[tuple[str, int]]
) -> None:
    asyncio.run(run_operations(database_url, steps))
