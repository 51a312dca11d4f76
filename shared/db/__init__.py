"""Postgres access: one asyncpg pool per process, plain SQL migrations."""

from __future__ import annotations

import json

import asyncpg


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _end_transaction_only(conn: asyncpg.Connection) -> None:
    """Nothing beyond what asyncpg always does on release (roll back an open transaction)."""


async def create_pool(dsn: str, max_size: int = 10) -> asyncpg.Pool:
    """Open a pool whose connections encode and decode jsonb as Python objects.

    Released connections are not reset (asyncpg's default costs a round trip per release, a
    quarter of a manifest GET): never leave session state (SET, LISTEN, session advisory locks)
    on a pooled connection; use transaction-scoped settings and locks.
    """
    pool = await asyncpg.create_pool(
        dsn, min_size=1, max_size=max_size, init=_init_connection, reset=_end_transaction_only
    )
    assert pool is not None
    return pool
