"""One manifest of a repository: GET /api/v1/repository/{namespace}/{repository}/manifest/{manifestref}."""

from __future__ import annotations

import json
import os

import pytest

from shared.oci.digest import digest_bytes
from shared.oci.mediatypes import DOCKER_MANIFEST, OCI_IMAGE_CONFIG, OCI_INDEX
from tests.api.conftest import Organization
from tests.fixtures.registry import Registry
from tests.support.oci import (
    DOCKER_LAYER_TYPE,
    LAYER_TYPE,
    Image,
    docker_manifest,
    index_of,
    push_image,
    push_image_blobs,
    put_manifest,
    random_image,
)


def _image_with_history() -> Image:
    """Two layers; the config's history has an empty-layer step between the steps that made them."""
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-05-01T10:00:00Z",
        "history": [
            {"created": "2024-05-01T09:00:00Z", "created_by": "/bin/sh -c #(nop) ADD file:abc in /"},
            {"created": "2024-05-01T09:30:00Z", "created_by": "ENV PATH=/bin", "empty_layer": True},
            {
                "created": "2024-05-01T10:00:00Z",
                "created_by": "RUN make install",
                "author": "builder@corp.test",
                "comment": "buildkit",
            },
        ],
        "nonce": os.urandom(8).hex(),
    }
    return Image(config=json.dumps(config).encode(), layers=[os.urandom(300), os.urandom(500)])


def _path(repository: str, reference: str) -> str:
    return f"/api/v1/repository/{repository}/manifest/{reference}"


async def test_an_image_manifest_with_its_layers_and_their_history(
    registry: Registry, organization: Organization
) -> None:
    repository = f"{organization.name}/app"
    image = _image_with_history()
    async with registry.client(organization.owner) as client:
        await push_image(client, repository, image, "v1")
        response = await client.get(_path(repository, image.digest))

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["digest"] == image.digest
    assert body["is_manifest_list"] is False
    assert json.loads(body["manifest_data"]) == json.loads(image.manifest)
    assert body["config_media_type"] == OCI_IMAGE_CONFIG
    assert isinstance(body["created"], str)
    first, second = body["layers"]
    assert first == {
        "index": 0,
        "compressed_size": 300,
        "is_remote": False,
        "urls": None,
        "command": ["/bin/sh -c #(nop) ADD file:abc in /"],
        "comment": None,
        "author": None,
        "blob_digest": json.loads(image.manifest)["layers"][0]["digest"],
        "created_datetime": "Wed, 01 May 2024 09:00:00 -0000",
        "media_type": LAYER_TYPE,
    }
    assert (second["index"], second["compressed_size"], second["command"]) == (1, 500, ["RUN make install"])
    assert (second["author"], second["comment"]) == ("builder@corp.test", "buildkit")


async def test_a_docker_manifest_without_history_and_an_index(
    registry: Registry, organization: Organization
) -> None:
    repository = f"{organization.name}/multi"
    amd64, arm64 = random_image(), random_image()
    async with registry.client(organization.owner) as client:
        for image in (amd64, arm64):
            await push_image(client, repository, image, image.digest)
        index = index_of(amd64, arm64)
        assert (await put_manifest(client, repository, "multi", index, OCI_INDEX)).status_code == 201
        docker = random_image(layer_count=1)
        await push_image_blobs(client, repository, docker)
        docker_body = docker_manifest(docker)
        pushed = await put_manifest(client, repository, "docker", docker_body, DOCKER_MANIFEST)
        assert pushed.status_code == 201, pushed.text
        listed = (await client.get(_path(repository, digest_bytes(docker_body)))).json()
        indexed = (await client.get(_path(repository, digest_bytes(index)))).json()

    [layer] = listed["layers"]
    assert layer["media_type"] == DOCKER_LAYER_TYPE and layer["command"] is None
    assert listed["config_media_type"] == "application/vnd.docker.container.image.v1+json"
    assert indexed["is_manifest_list"] is True
    assert indexed["layers"] is None and indexed["config_media_type"] is None
    assert json.loads(indexed["manifest_data"]) == json.loads(index)


@pytest.mark.parametrize(
    "reference",
    [
        "sha256:" + "0" * 64,
        "sha256:short",
        "latest",
        "sha256:" + "A" * 64,
    ],
)
async def test_unknown_or_malformed_digests_answer_404(
    registry: Registry, organization: Organization, reference: str
) -> None:
    repository = f"{organization.name}/app"
    async with registry.client(organization.owner) as client:
        await push_image(client, repository, random_image(), "v1")
        response = await client.get(_path(repository, reference))
    assert response.status_code == 404, response.text
    assert isinstance(response.json()["detail"], str)


async def test_only_readers_see_a_private_repositorys_manifest(
    registry: Registry, organization: Organization
) -> None:
    repository = f"{organization.name}/app"
    image = random_image()
    outsider = await registry.user()
    async with registry.client(organization.owner) as client:
        await push_image(client, repository, image, "v1")
        labels = await client.get(f"{_path(repository, image.digest)}/labels")
    async with registry.client(outsider) as client:
        by_outsider = await client.get(_path(repository, image.digest))
    async with registry.client() as client:
        by_anonymous = await client.get(_path(repository, image.digest))
    assert labels.status_code == 200  # the labels below the manifest are still routed to labels
    assert by_outsider.status_code == 403 and by_anonymous.status_code == 401
