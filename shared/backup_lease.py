"""The lease of a running `quayside backup` (table backup_lease, migration 0018).

The backup takes its database snapshot after taking the lease and copies every blob that snapshot
references while holding it. Garbage collection calls backup_in_progress(conn) inside the
transaction that deletes blob rows and skips the deletion while it is true: the shared advisory lock
makes taking the lease wait for such a transaction to commit, so no deletion overlaps the snapshot.
A backup that dies stops renewing its lease, which then expires.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import asyncpg

# Taken shared by GC's check, exclusively (and briefly) by a backup taking its lease.
_LEASE_LOCK_KEY = 0x5155_4241


async def backup_in_progress(conn: asyncpg.Connection) -> bool:
    """Whether an unexpired backup lease exists; call it in the transaction that deletes blobs."""
    if conn.is_in_transaction():
        await conn.execute("SELECT pg_advisory_xact_lock_shared($1)", _LEASE_LOCK_KEY)
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM backup_lease WHERE expires_at > now())"))


async def take_lease(conn: asyncpg.Connection, holder: str, ttl: timedelta) -> uuid.UUID:
    lease_id = uuid.uuid4()
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LEASE_LOCK_KEY)
        await conn.execute("DELETE FROM backup_lease WHERE expires_at <= now()")
        await conn.execute(
            "INSERT INTO backup_lease (id, holder, expires_at) VALUES ($1, $2, now() + $3::interval)",
            lease_id,
            holder,
            ttl,
        )
    return lease_id


async def renew_lease(conn: asyncpg.Connection, lease_id: uuid.UUID, ttl: timedelta) -> None:
    await conn.execute(
        "UPDATE backup_lease SET expires_at = now() + $2::interval WHERE id = $1", lease_id, ttl
    )


async def release_lease(conn: asyncpg.Connection, lease_id: uuid.UUID) -> None:
    await conn.execute("DELETE FROM backup_lease WHERE id = $1", lease_id)
