"""The backup lease GC respects (shared/backup_lease.py): seen while held, gone when released or
expired, and taken only once a transaction that checked it (GC deleting blobs) has committed."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg

from shared.backup_lease import backup_in_progress, release_lease, take_lease
from tests.support.waiting import wait_until


async def test_lease_is_seen_while_held_and_not_once_released_or_expired(db_pool: asyncpg.Pool) -> None:
    async with db_pool.acquire() as conn:
        assert not await backup_in_progress(conn)
        lease = await take_lease(conn, "test", timedelta(minutes=5))
        held = await backup_in_progress(conn)
        await release_lease(conn, lease)
        released = await backup_in_progress(conn)
        await take_lease(conn, "test", timedelta(milliseconds=1))
        await wait_until(lambda: _not_in_progress(conn))
    assert (held, released) == (True, False)


async def _not_in_progress(conn: asyncpg.Connection) -> bool:
    return not await backup_in_progress(conn)


async def test_taking_the_lease_waits_for_a_deleting_transaction_that_checked_it(
    db_pool: asyncpg.Pool,
) -> None:
    async with db_pool.acquire() as gc, db_pool.acquire() as backup:
        transaction = gc.transaction()
        await transaction.start()
        assert not await backup_in_progress(gc)
        taking = asyncio.create_task(take_lease(backup, "test", timedelta(minutes=5)))

        async def backup_waits_on_the_lock() -> bool:
            waiting = await db_pool.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND pid = $1",
                backup.get_server_pid(),
            )
            return bool(waiting)

        await wait_until(backup_waits_on_the_lock)
        assert not taking.done()
        await transaction.commit()
        await asyncio.wait_for(taking, 10)
        assert await backup_in_progress(gc)
