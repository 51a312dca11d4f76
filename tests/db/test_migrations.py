import asyncpg

from shared.db.migrate import apply_migrations


async def test_migrations_are_recorded_and_not_reapplied(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        assert await apply_migrations(conn) == []
        names = [r["name"] for r in await conn.fetch("SELECT name FROM schema_migration ORDER BY name")]
        assert names[0] == "0001_core.sql"
        assert await conn.fetchval("SELECT to_regclass('event_outbox') IS NOT NULL")
    finally:
        await conn.close()
