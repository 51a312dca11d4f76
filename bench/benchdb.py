"""The benchmarks' database: a migrated database of the run's own on the local Postgres."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator

import asyncpg

from shared.db.migrate import migrate

ADMIN_DSN = os.environ.get("QUAYSIDE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@contextlib.asynccontextmanager
async def bench_database() -> AsyncIterator[str]:
    """A migrated database of the run's own on the local Postgres, dropped afterwards."""
    name = f"qs_bench_{uuid.uuid4().hex[:12]}"
    base, _, _ = ADMIN_DSN.rpartition("/")
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        await migrate(f"{base}/{name}")
        yield f"{base}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
