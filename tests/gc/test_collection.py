"""Tag, manifest and blob collection against the registry's real database and filesystem storage."""

from __future__ import annotations

import json

from shared.storage.paths import blob_path
from tests.fixtures.registry import Account, Registry
from tests.gc.conftest import Collector
from tests.support.oci import push_image, random_image


async def test_an_untagged_image_is_collected_with_its_blobs(
    registry: Registry, collector: Collector, owner: Account
) -> None:
    name = f"{owner.username}/app"
    image = random_image()
    async with registry.client(owner) as client:
        await push_image(client, name, image, "v1")
        assert (await client.delete(f"/v2/{name}/manifests/{image.digest}")).status_code == 202
    outcome = await collector.run()
    assert len(outcome.tally.blobs) == 3
    assert outcome.tally.bytes_reclaimed == sum(len(b) for b in (image.config, *image.layers))
    driver = registry.context.locations.driver("local")
    assert await driver.list("blobs") == []
