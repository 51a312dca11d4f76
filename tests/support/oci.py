"""Building and pushing small OCI content over the /v2 API in tests."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import httpx

from shared.oci.digest import digest_bytes
from shared.oci.mediatypes import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_IMAGE_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
)

LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"


async def push_blob(client: httpx.AsyncClient, name: str, data: bytes) -> str:
    """Push with the single-request upload (POST ?digest=); return the digest."""
    digest = digest_bytes(data)
    response = await client.post(
        f"/v2/{name}/blobs/uploads/",
        params={"digest": digest},
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 201, response.text
    return digest


def descriptor(media_type: str, data: bytes, **extra: object) -> dict[str, object]:
    return {"mediaType": media_type, "digest": digest_bytes(data), "size": len(data), **extra}


@dataclass
class Image:
    """An OCI image manifest with its config and layers, all bytes kept for pushing."""

    config: bytes
    layers: list[bytes]
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def manifest(self) -> bytes:
        body = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_IMAGE_CONFIG, self.config),
            "layers": [descriptor(LAYER_TYPE, layer) for layer in self.layers],
            **self.extra,
        }
        return json.dumps(body).encode()

    @property
    def digest(self) -> str:
        return digest_bytes(self.manifest)


def random_image(layer_count: int = 2, layer_size: int = 1024, **extra: object) -> Image:
    config = json.dumps({"architecture": "amd64", "os": "linux", "nonce": os.urandom(8).hex()}).encode()
    return Image(config=config, layers=[os.urandom(layer_size) for _ in range(layer_count)], extra=extra)


async def push_image(client: httpx.AsyncClient, name: str, image: Image, reference: str) -> str:
    """Push blobs then the manifest under the reference; return the manifest digest."""
    for blob in (image.config, *image.layers):
        await push_blob(client, name, blob)
    response = await client.put(
        f"/v2/{name}/manifests/{reference}", content=image.manifest, headers={"Content-Type": OCI_MANIFEST}
    )
    assert response.status_code == 201, response.text
    return image.digest


def index_of(*images: Image) -> bytes:
    manifests = [
        descriptor(OCI_MANIFEST, image.manifest, platform={"architecture": arch, "os": "linux"})
        for image, arch in zip(images, ("amd64", "arm64", "ppc64le", "s390x"), strict=False)
    ]
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}).encode()


DOCKER_CONFIG_TYPE = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_TYPE = "application/vnd.docker.image.rootfs.diff.tar.gzip"
EMPTY_CONFIG = b"{}"

# Repository names the OCI grammar refuses: uppercase, '..', empty components, over 255 characters.
INVALID_REPOSITORY_NAMES = ["ns/Upper", "ns/%2E%2E", "ns/a..b", "ns//app", "ns/app/", "ns/" + "a" * 253]


async def push_image_blobs(client: httpx.AsyncClient, name: str, image: Image) -> None:
    for blob in (image.config, *image.layers):
        await push_blob(client, name, blob)


async def put_manifest(
    client: httpx.AsyncClient, name: str, reference: str, body: bytes, media_type: str | None = OCI_MANIFEST
) -> httpx.Response:
    """PUT a manifest as is; no Content-Type header when media_type is None."""
    headers = {"Content-Type": media_type} if media_type else {}
    return await client.put(f"/v2/{name}/manifests/{reference}", content=body, headers=headers)


def docker_manifest(image: Image) -> bytes:
    """The image's config and layers as a Docker schema 2 manifest."""
    body = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": descriptor(DOCKER_CONFIG_TYPE, image.config),
        "layers": [descriptor(DOCKER_LAYER_TYPE, layer) for layer in image.layers],
    }
    return json.dumps(body).encode()


def docker_manifest_list(*manifests: bytes) -> bytes:
    entries = [
        descriptor(DOCKER_MANIFEST, manifest, platform={"architecture": arch, "os": "linux"})
        for manifest, arch in zip(manifests, ("amd64", "arm64", "ppc64le", "s390x"), strict=False)
    ]
    return json.dumps({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST_LIST, "manifests": entries}).encode()


async def bearer_token(client: httpx.AsyncClient, *scopes: str) -> str:
    """A token from GET /v2/auth for the scopes, as the client's credentials may get it."""
    response = await client.get("/v2/auth", params=[("scope", scope) for scope in scopes])
    assert response.status_code == 200, response.text
    token: str = response.json()["token"]
    return token


def bearer_header(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def error_code(response: httpx.Response) -> str:
    """The OCI error code of an error response."""
    code: str = response.json()["errors"][0]["code"]
    return code
