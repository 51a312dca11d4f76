"""`quayside gc run [--dry-run]` and `quayside gc status`, as real processes on a registry's database
and storage."""

from __future__ import annotations

import json

from shared.oci.digest import digest_bytes
from tests.cli.helpers import clean_env, quayside
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
    env = clean_env(QUAYSIDE_STORAGE_LOCATIONS=json.dumps(storage), QUAYSIDE_STORAGE_PREFERENCE="local")
    database = ["--database-url", registry.settings.database_url]

    dry = await quayside("gc", "run", "--dry-run", *database, env=env)
    assert dry.returncode == 0, dry.stderr
    assert all(digest in dry.stdout for digest in digests)
    assert "that would be deleted" in dry.stdout and "4096" in dry.stdout
    async with registry.context.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM blob") == 2

    done = await quayside("gc", "run", *database, env=env)
    assert done.returncode == 0, done.stderr
    assert all(digest in done.stdout for digest in digests) and "bytes reclaimed in local" in done.stdout
    async with registry.context.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM blob") == 0
    assert await registry.context.locations.driver("local").list("blobs") == []

    status = await quayside("gc", "status", *database, env=env)
    assert status.returncode == 0, status.stderr
    lines = [line for line in status.stdout.splitlines() if "finished" in line]
    assert len(lines) == 2 and "yes" in lines[1] and "4.0 KiB" in lines[0]
    assert digest_bytes(layers[0]) == digests[0]
