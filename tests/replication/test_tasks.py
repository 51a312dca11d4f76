"""Queueing copies: per-namespace targets replace the defaults, a blob shared by namespaces must
reach every location either needs, and queueing is idempotent."""

from __future__ import annotations

from pathlib import Path

from shared.config import FilesystemLocation
from shared.replication import backfill, set_namespace_targets
from tests.replication.support import Harness, replication_harness, replication_settings


async def _tasks(harness: Harness) -> set[tuple[str, str]]:
    rows = await harness.pool.fetch("SELECT digest, location FROM replication_task")
    return {(row[0], row[1]) for row in rows}


async def test_backfill_queues_what_each_blob_s_namespaces_require_once(
    database_url: str, tmp_path: Path
) -> None:
    locations = {name: FilesystemLocation(root=str(tmp_path / name)) for name in ("us", "eu", "ap")}
    settings = replication_settings(database_url, locations, preference=["us"], defaults=["us"])
    async with replication_harness(settings, copying=False) as harness:
        targeted, plain = await harness.registry.user(), await harness.registry.user()
        async with harness.pool.acquire() as conn:
            namespace_id = await conn.fetchval("SELECT id FROM namespace WHERE name = $1", targeted.username)
            await set_namespace_targets(conn, namespace_id, ["us", "eu"])
        only_targeted = await harness.push(targeted, b"in the targeted namespace")
        only_plain = await harness.push(plain, b"in the plain namespace")
        shared = await harness.push(plain, b"in both namespaces")
        await harness.push(targeted, b"in both namespaces")
        await harness.wait_consumed()
        queued_by_events = await _tasks(harness)

        await harness.pool.execute("DELETE FROM replication_task")
        first = await backfill(harness.pool, settings)
        queued_by_backfill = await _tasks(harness)
        second = await backfill(harness.pool, settings)
        off = await backfill(harness.pool, settings.model_copy(update={"feature_storage_replication": False}))

    expected = {(only_targeted, "eu"), (shared, "eu")}
    assert queued_by_events == expected
    assert queued_by_backfill == expected
    assert (first, second, off) == (2, 0, 0)
    assert only_plain not in {digest for digest, _ in queued_by_backfill}
