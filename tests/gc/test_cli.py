"""`quayside gc run [--dry-run]` and `quayside gc status` on a registry's database and storage (the
commands run in a thread of the test process: a process each would cost seconds of imports)."""

from __future__ import annotations

import asyncio
import json

from click.testing import Result
from typer.testing import CliRunner

from quayside.cli import app
from tests.fixtures.registry import Account, Registry
from tests.support.oci import push_blob, random_image


async def test_gc_run_shows_what_it_would_delete_then_deletes_it_and_status_lists_the_passes(
    registry: Registry, owner: Account
) -> None:
    layers = random_image(layer_count=2, layer_size=2048).layers
    async with registry.client(owner) as client:
        digests = [await push_blob(client, f"{owner.username}/app", layer) for layer in layers]
    async with registry.context.pool.acquire() as conn:
        # Uploaded two hours ago and never used by a manifest: past PUSH_TEMP_TAG_EXPIRATION_SEC.
        await conn.execute("UPDATE blob SET created_at = now() - interval '2 hours'")
        await conn.execute("UPDATE repository_blob SET touched_at = now() - interval '2 hours'")
    storage = {name: location.model_dump() for name, location in registry.settings.storage_locations.items()}
    env = {
        "QUAYSIDE_STORAGE_LOCATIONS": json.dumps(storage),
        "QUAYSIDE_STORAGE_PREFERENCE": "local",
        # In process: a lowered priority would stay with the test's thread.
        "QUAYSIDE_GARBAGE_COLLECTION_NICENESS": "0",
    }
    database = ["--database-url", registry.settings.database_url]
    runner = CliRunner()

    async def quayside(*args: str) -> Result:
        return await asyncio.to_thread(runner.invoke, app, list(args), env=env)

    dry = await quayside("gc", "run", "--dry-run", *database)
    assert dry.exit_code == 0, dry.output
    assert all(digest in dry.stdout for digest in digests)
    assert "that would be deleted" in dry.stdout and "4096" in dry.stdout
    async with registry.context.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM blob") == 2

    done = await quayside("gc", "run", *database)
    assert done.exit_code == 0, done.output
    assert all(digest in done.stdout for digest in digests) and "bytes reclaimed in local" in done.stdout
    async with registry.context.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM blob") == 0
    assert await registry.context.locations.driver("local").list("blobs") == []

    status = await quayside("gc", "status", *database)
    assert status.exit_code == 0, status.output
    lines = [line for line in status.stdout.splitlines() if "finished" in line]
    assert len(lines) == 2 and "yes" in lines[1] and "4.0 KiB" in lines[0]
