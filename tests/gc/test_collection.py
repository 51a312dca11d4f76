"""What a pass collects, and what it keeps: tags and the time machine, shared blobs, index
children, referrers, deleted repositories and organizations; storage and rows agree afterwards."""

from __future__ import annotations

import httpx

from shared.oci.digest import digest_bytes
from shared.oci.mediatypes import OCI_INDEX, OCI_MANIFEST
from tests.fixtures.registry import Account, Registry
from tests.gc.conftest import Collector
from tests.gc.scan import scan
from tests.support.oci import Image, descriptor, index_of, push_image, put_manifest, random_image

DAY_S = 86_400
TWO_WEEKS_DAYS = 14


def _sizes(*images: Image) -> int:
    return sum(len(blob) for image in images for blob in {image.config, *image.layers})


async def _pulls(client: httpx.AsyncClient, name: str, reference: str, image: Image) -> bool:
    """The manifest and every blob of the image come back as pushed."""
    manifest = await client.get(f"/v2/{name}/manifests/{reference}", headers={"Accept": OCI_MANIFEST})
    if manifest.status_code != 200 or manifest.content != image.manifest:
        return False
    for blob in (image.config, *image.layers):
        fetched = await client.get(f"/v2/{name}/blobs/{digest_bytes(blob)}")
        if fetched.status_code != 200 or fetched.content != blob:
            return False
    return True


async def test_a_deleted_tag_is_restorable_within_the_time_machine_and_purged_after(
    registry: Registry, collector: Collector, owner: Account
) -> None:
    name = f"{owner.username}/app"
    image = random_image()
    async with registry.client(owner) as client:
        await push_image(client, name, image, "v1")
        assert (await client.delete(f"/v2/{name}/manifests/v1")).status_code == 202

        within = await collector.run(days_later=TWO_WEEKS_DAYS - 1)
        assert within.tally.tags_purged == 0 and within.tally.blobs == []
        restored = await client.post(
            f"/api/v1/repository/{name}/tag/v1/restore", json={"manifest_digest": image.digest}
        )
        assert restored.status_code == 200, restored.text
        assert await _pulls(client, name, "v1", image)

        assert (await client.delete(f"/v2/{name}/manifests/v1")).status_code == 202
        after = await collector.run(days_later=TWO_WEEKS_DAYS + 1)
    assert after.tally.tags_purged == 2  # the first deletion's row and the restored one
    assert [manifest.digest for manifest in after.tally.manifests] == [image.digest]
    assert after.tally.bytes_reclaimed == _sizes(image)
    assert (await scan(registry)).problems() == []
    assert (await scan(registry)).stored == set()


async def test_a_blob_shared_with_another_image_survives_while_that_image_lives(
    registry: Registry, collector: Collector, owner: Account
) -> None:
    other = await registry.user()
    shared_layer = random_image(layer_count=1).layers[0]
    first = random_image(layer_count=1)
    first.layers.append(shared_layer)
    second = random_image(layer_count=1)
    second.layers.append(shared_layer)
    async with registry.client(owner) as client:
        await push_image(client, f"{owner.username}/one", first, "latest")
        await push_image(client, f"{owner.username}/two", second, "latest")
        assert (await client.delete(f"/v2/{owner.username}/one/manifests/{first.digest}")).status_code == 202
    async with registry.client(other) as client:
        await push_image(client, f"{other.username}/copy", second, "latest")

    outcome = await collector.run()
    deleted = {blob.digest for blob in outcome.tally.blobs}
    assert deleted == {digest_bytes(first.config), digest_bytes(first.layers[0])}
    async with registry.client(owner) as client:
        assert await _pulls(client, f"{owner.username}/two", "latest", second)
    assert (await scan(registry)).problems() == []


async def test_a_multi_arch_index_keeps_its_children_until_it_goes(
    registry: Registry, collector: Collector, owner: Account
) -> None:
    name = f"{owner.username}/multi"
    amd64, arm64 = random_image(), random_image()
    async with registry.client(owner) as client:
        for child in (amd64, arm64):
            await push_image(client, name, child, child.digest)
        index = index_of(amd64, arm64)
        assert (await put_manifest(client, name, "latest", index, OCI_INDEX)).status_code == 201

        kept = await collector.run()
        assert kept.tally.manifests == [] and kept.tally.blobs == []
        for child in (amd64, arm64):
            assert await _pulls(client, name, child.digest, child)

        assert (await client.delete(f"/v2/{name}/manifests/{digest_bytes(index)}")).status_code == 202
        first = await collector.run()
        second = await collector.run()
    collected = {manifest.digest for manifest in first.tally.manifests + second.tally.manifests}
    assert collected == {amd64.digest, arm64.digest}
    assert first.tally.bytes_reclaimed + second.tally.bytes_reclaimed == _sizes(amd64, arm64)
    assert (await scan(registry)).blobs == set()


async def test_a_referrer_lives_exactly_as_long_as_its_subject(
    registry: Registry, collector: Collector, owner: Account
) -> None:
    name = f"{owner.username}/signed"
    subject = random_image()
    signature = random_image(
        layer_count=1,
        artifactType="application/vnd.dev.cosign.artifact.sig.v1+json",
        subject=descriptor(OCI_MANIFEST, subject.manifest),
    )
    async with registry.client(owner) as client:
        await push_image(client, name, subject, "v1")
        await push_image(client, name, signature, signature.digest)

        kept = await collector.run()
        assert kept.tally.manifests == []
        assert await _pulls(client, name, signature.digest, signature)

        assert (await client.delete(f"/v2/{name}/manifests/v1")).status_code == 202
        within = await collector.run(days_later=1)
        assert within.tally.manifests == []
        gone = await collector.run(days_later=TWO_WEEKS_DAYS + 1)
    assert {manifest.digest for manifest in gone.tally.manifests} == {subject.digest, signature.digest}
    assert gone.tally.bytes_reclaimed == _sizes(subject, signature)


async def test_a_blob_uploaded_within_the_grace_window_is_kept_for_its_push(
    registry: Registry, collector: Collector, owner: Account
) -> None:
    name = f"{owner.username}/slow"
    image = random_image()
    async with registry.client(owner) as client:
        for blob in (image.config, *image.layers):
            await client.post(
                f"/v2/{name}/blobs/uploads/", params={"digest": digest_bytes(blob)}, content=blob
            )
        kept = await collector.run(grace_s=3600)
        assert kept.tally.blobs == []
        assert (await put_manifest(client, name, "v1", image.manifest)).status_code == 201
        assert await _pulls(client, name, "v1", image)


async def test_deleted_repositories_and_organizations_are_purged_and_their_bytes_reclaimed(
    storage_registry: Registry,
) -> None:
    registry = storage_registry
    collector = Collector(registry)
    owner = await registry.user()
    organization = await registry.organization(owner)
    kept, in_repository, in_organization = random_image(), random_image(), random_image()
    async with registry.client(owner) as client:
        await push_image(client, f"{owner.username}/kept", kept, "v1")
        await push_image(client, f"{owner.username}/gone", in_repository, "v1")
        await push_image(client, f"{organization}/app", in_organization, "v1")
        assert (await client.delete(f"/api/v1/repository/{owner.username}/gone")).status_code == 204
        assert (await client.delete(f"/api/v1/organization/{organization}")).status_code == 204
        outcome = await collector.run()
        assert await _pulls(client, f"{owner.username}/kept", "v1", kept)
    tally = outcome.tally
    assert (tally.repositories_purged, tally.namespaces_purged) == (2, 1)
    assert tally.bytes_reclaimed == _sizes(in_repository, in_organization)
    [location] = registry.context.locations.order
    assert dict(tally.bytes_by_location) == {location: tally.bytes_reclaimed}
    consistency = await scan(registry)
    assert consistency.problems() == []
    assert {digest for _, digest in consistency.stored} == {
        digest_bytes(blob) for blob in (kept.config, *kept.layers)
    }


async def test_a_manifest_pushed_again_by_digest_is_kept_for_the_index_that_follows(
    registry: Registry, collector: Collector, owner: Account
) -> None:
    name = f"{owner.username}/multi"
    child = random_image()
    async with registry.client(owner) as client:
        await push_image(client, name, child, child.digest)
        async with registry.context.pool.acquire() as conn:
            # Pushed long ago, nothing reaches it: garbage, until it is pushed again.
            await conn.execute("UPDATE manifest SET pushed_at = now() - interval '2 hours'")
            await conn.execute("UPDATE blob SET created_at = now() - interval '2 hours'")
            await conn.execute("UPDATE repository_blob SET touched_at = now() - interval '2 hours'")
        assert (await put_manifest(client, name, child.digest, child.manifest)).status_code == 201
        kept = await collector.run(grace_s=3600)
        assert kept.tally.manifests == [] and kept.tally.blobs == []
        index = index_of(child)
        assert (await put_manifest(client, name, "latest", index, OCI_INDEX)).status_code == 201
        assert await _pulls(client, name, child.digest, child)
