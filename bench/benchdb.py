"""The benchmarks' database (a migrated database of the run's own on the local Postgres) and the
settings of a registry storing into one local folder."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg

from shared.config import FilesystemLocation, Settings
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


def local_settings(database_url: str, storage: Path, **fields: Any) -> Settings:
    """Settings of the database with one filesystem location, ``local`` at ``storage``, a fresh
    token secret, and ``fields`` besides."""
    return Settings(
        database_url=database_url,
        storage_locations={"local": FilesystemLocation(root=str(storage))},
        storage_preference=["local"],
        token_secret=uuid.uuid4().hex,
        **fields,
    )
