"""Apply the SQL files in migrations/ in name order, each once, recorded in schema_migration.

Applying 0013_stored_names_check also runs, that once, the check of stored names (stored_names).

`python -m shared.db.migrate` (the compose suite's one-shot migrate step) waits for PostgreSQL at
QUAYSIDE_DATABASE_URL, logging why each attempt failed, then applies what is pending and exits.
"""

from __future__ import annotations

from pathlib import Path

import asyncpg

from shared.db import stored_names

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Serialises concurrent migrators (several services starting at once).
_ADVISORY_LOCK_KEY = 0x5155_4159


def migration_names() -> list[str]:
    """Every migration of this code, in the order they apply."""
    return [path.name for path in sorted(MIGRATIONS_DIR.glob("*.sql"))]


async def pending_migrations(conn: asyncpg.Connection) -> list[str]:
    """This code's migrations not applied to the database yet, in order (all of them on an empty one)."""
    if not await conn.fetchval("SELECT to_regclass('schema_migration') IS NOT NULL"):
        return migration_names()
    done = {row["name"] for row in await conn.fetch("SELECT name FROM schema_migration")}
    return [name for name in migration_names() if name not in done]


async def apply_migrations(conn: asyncpg.Connection) -> list[str]:
    """Apply pending migrations; return the names applied by this call."""
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _ADVISORY_LOCK_KEY)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migration ("
            " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row["name"] for row in await conn.fetch("SELECT name FROM schema_migration")}
        for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
            if path.name in done:
                continue
            async with conn.transaction():
                await conn.execute(path.read_text())
                await conn.execute("INSERT INTO schema_migration (name) VALUES ($1)", path.name)
            applied_now.append(path.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _ADVISORY_LOCK_KEY)
    if stored_names.CHECK_MIGRATION in applied_now:
        await stored_names.warn_of_invalid_stored_names(conn)
    return applied_now


async def migrate(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        return await apply_migrations(conn)
    finally:
        await conn.close()


if __name__ == "__main__":
    # Imported here: the process entry depends on this module, not the other way round.
    from shared.service_main import run_migrate_step

    run_migrate_step()
