"""GET /api/v1/repository/{ns}/{repo}/manifest/{digest}/placements: each blob of a manifest (an
index: of its children too) with the locations holding it and the required ones still missing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from services.registry.app import create_app
from shared.config import FilesystemLocation, Settings
from shared.oci.digest import digest_bytes
from shared.oci.mediatypes import OCI_INDEX
from tests.fixtures.registry import Account, Registry
from tests.support.oci import Image, index_of, push_image, put_manifest, random_image


@pytest.fixture
async def registry(database_url: str, tmp_path: Path) -> AsyncIterator[Registry]:
    """A registry with two locations; pushes land in us, and every blob must reach us and eu."""
    settings = Settings(
        database_url=database_url,
        storage_locations={
            "us": FilesystemLocation(root=str(tmp_path / "us")),
            "eu": FilesystemLocation(root=str(tmp_path / "eu")),
        },
        storage_preference=["us", "eu"],
        token_secret="test-secret-0123456789abcdef0123456789",
        feature_storage_replication=True,
        distributed_storage_default_locations=["us", "eu"],
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield Registry(app=app, settings=settings)


def placements_path(repository: str, digest: str) -> str:
    return f"/api/v1/repository/{repository}/manifest/{digest}/placements"


async def placed_copy(registry: Registry, digest: str, location: str) -> None:
    """Record a verified copy in ``location``, as the replication service does once it copied one."""
    await registry.context.pool.execute(
        "INSERT INTO blob_placement (digest, location) VALUES ($1, $2)", digest, location
    )


async def pushed(registry: Registry, owner: Account, repository: str, image: Image) -> str:
    async with registry.client(owner) as client:
        return await push_image(client, repository, image, "v1")


async def test_every_blob_is_listed_with_its_locations_and_the_missing_required_ones(
    registry: Registry,
) -> None:
    owner = await registry.user()
    repository = f"{await registry.organization(owner)}/app"
    image = random_image(layer_count=2)
    digest = await pushed(registry, owner, repository, image)
    config_digest, first_layer, second_layer = (digest_bytes(blob) for blob in (image.config, *image.layers))
    await placed_copy(registry, first_layer, "eu")

    async with registry.client(owner) as client:
        answer = await client.get(placements_path(repository, digest))

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["manifest"] == digest
    assert body["required"] == ["us", "eu"]
    assert body["truncated"] is False
    blobs = {blob["digest"]: blob for blob in body["blobs"]}
    assert body["blobs"][0]["digest"] == config_digest  # the config first
    assert blobs[config_digest] == {
        "digest": config_digest,
        "size": len(image.config),
        "kind": "config",
        "locations": ["us"],
        "missing": ["eu"],
        "manifests": [digest],
    }
    assert blobs[first_layer]["kind"] == "layer"
    assert blobs[first_layer]["locations"] == ["eu", "us"]
    assert blobs[first_layer]["missing"] == []
    assert blobs[second_layer]["missing"] == ["eu"]
    assert blobs[second_layer]["size"] == len(image.layers[1])


async def test_an_index_lists_the_blobs_of_its_children_once_each(registry: Registry) -> None:
    owner = await registry.user()
    repository = f"{await registry.organization(owner)}/multi"
    amd64, arm64 = random_image(layer_count=1), random_image(layer_count=1)
    # Both platforms share one layer.
    arm64 = Image(config=arm64.config, layers=[amd64.layers[0], *arm64.layers])
    async with registry.client(owner) as client:
        for image in (amd64, arm64):
            await push_image(client, repository, image, image.digest)
        index = index_of(amd64, arm64)
        assert (await put_manifest(client, repository, "multi", index, OCI_INDEX)).status_code == 201
        answer = await client.get(placements_path(repository, digest_bytes(index)))

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["media_type"] == OCI_INDEX
    blobs = {blob["digest"]: blob for blob in body["blobs"]}
    shared = digest_bytes(amd64.layers[0])
    assert set(blobs) == {
        digest_bytes(blob) for blob in (amd64.config, arm64.config, *amd64.layers, *arm64.layers)
    }
    assert blobs[shared]["manifests"] == sorted([amd64.digest, arm64.digest])
    assert blobs[digest_bytes(arm64.config)]["manifests"] == [arm64.digest]
    assert [blob["kind"] for blob in body["blobs"]][:2] == ["config", "config"]


async def test_namespace_targets_and_the_replication_switch_decide_what_is_missing(
    registry: Registry,
) -> None:
    owner = await registry.user()
    superuser = await registry.user(superuser=True)
    organization = await registry.organization(owner)
    repository = f"{organization}/app"
    image = random_image(layer_count=1)
    digest = await pushed(registry, owner, repository, image)
    async with registry.client(superuser) as client:
        targets = await client.put(
            f"/api/v1/superuser/replication/{organization}", json={"locations": ["eu"]}
        )
        assert targets.status_code == 200, targets.text
        only_eu = (await client.get(placements_path(repository, digest))).json()

    assert only_eu["required"] == ["eu"]
    assert all(blob["locations"] == ["us"] and blob["missing"] == ["eu"] for blob in only_eu["blobs"])

    # With replication off nothing is required anywhere.
    settings = registry.settings.model_copy(update={"feature_storage_replication": False})
    app = create_app(settings)
    async with app.router.lifespan_context(app), Registry(app=app, settings=settings).client(owner) as client:
        switched_off = (await client.get(placements_path(repository, digest))).json()
    assert switched_off["required"] == []
    assert all(blob["missing"] == [] for blob in switched_off["blobs"])


@pytest.mark.parametrize(
    ("reference", "status", "detail"),
    [
        ("latest", 400, "invalid manifest digest 'latest'"),
        ("sha256:" + "0" * 64, 404, "no manifest sha256:" + "0" * 64 + " in this repository"),
        ("sha256:%00", 400, "the path must not contain control characters"),
    ],
)
async def test_bad_and_unknown_digests_get_quay_errors(
    registry: Registry, reference: str, status: int, detail: str
) -> None:
    owner = await registry.user()
    repository = f"{await registry.organization(owner)}/app"
    await pushed(registry, owner, repository, random_image(layer_count=1))
    async with registry.client(owner) as client:
        answer = await client.get(placements_path(repository, reference))

    assert answer.status_code == status, answer.text
    body: dict[str, Any] = answer.json()
    assert isinstance(body["detail"], str) and body["detail"].startswith(detail)


async def test_readers_and_writers_are_refused_admins_and_superusers_may_look(registry: Registry) -> None:
    owner, writer, superuser = (
        await registry.user(),
        await registry.user(),
        await registry.user(superuser=True),
    )
    repository = f"{await registry.organization(owner)}/app"
    digest = await pushed(registry, owner, repository, random_image(layer_count=1))
    async with registry.client(owner) as client:
        granted = await client.put(
            f"/api/v1/repository/{repository}/permissions/user/{writer.username}", json={"role": "write"}
        )
        assert granted.status_code == 200, granted.text
    statuses = {}
    for name, account in (("writer", writer), ("superuser", superuser), ("anonymous", None)):
        async with registry.client(account) as client:
            statuses[name] = (await client.get(placements_path(repository, digest))).status_code

    assert statuses == {"writer": 403, "superuser": 200, "anonymous": 401}
