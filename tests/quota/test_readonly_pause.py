"""While the registry is read-only the quota consumers handle nothing; once writable, they catch up."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from services.quota.worker import quota_consumers
from shared.config import Settings
from shared.events.bus import InProcessBus
from shared.quota import usage_bytes
from shared.readonly_state import set_registry_state
from tests.quota import store
from tests.quota.store import digest_of


async def test_consumers_wait_while_read_only(db_pool: asyncpg.Pool, database_url: str) -> None:
    settings = Settings(
        database_url=database_url, registry_state_refresh_s=0.05, quota_reconcile_interval_s=0
    )
    async with db_pool.acquire() as conn:
        org = await store.namespace(conn, "paused")
        repo = await store.repository(conn, org, "app")
        _, pushed = await store.push(conn, repo, {digest_of("p"): 777}, "v1")
        await set_registry_state(conn, read_only=True, changed_by="test")
    bus = InProcessBus()
    async with quota_consumers(settings, db_pool, bus):
        delivery = asyncio.create_task(
            bus.publish(pushed.routing_key, pushed.model_dump_json().encode(), str(pushed.event_id))
        )
        # Not handled within half a second of read-only mode (the consumer re-checks every 0.1 s).
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.shield(delivery), 0.5)
        async with db_pool.acquire() as conn:
            assert await usage_bytes(conn, org) == 0
            await set_registry_state(conn, read_only=False, changed_by="test")
        await asyncio.wait_for(delivery, 15)
    async with db_pool.acquire() as conn:
        assert await usage_bytes(conn, org) == 777
