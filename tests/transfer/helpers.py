"""Content for the transfer tests: a source namespace with an index, shared layers, referrers,
labels and an expiring tag, pushed over /v2 and /api/v1; and archive surgery (flip, drop, replace)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from quayside.transfer.client import RegistryClient, RegistryRequestError
from shared.oci.digest import digest_bytes
from shared.oci.mediatypes import OCI_EMPTY_CONFIG, OCI_INDEX, OCI_MANIFEST
from tests.fixtures.live_registry import REPOSITORY_ROOT, LiveRegistry
from tests.fixtures.registry import Account
from tests.support.oci import Image, descriptor, index_of, push_blob, push_image, put_manifest, random_image

SIGNATURE_TYPE = "application/vnd.dev.cosign.artifact.sig.v1+json"
SBOM_TYPE = "application/spdx+json"


@dataclass
class Source:
    namespace: str
    index: str  # app:v1, over amd64 and arm64 images sharing a layer
    amd64: str
    single: str  # app:v2, expiring, labelled
    tools: str  # tools:latest, sharing the layer too
    signature: str  # referrer of the index
    sbom: str  # referrer of the amd64 image
    expiration: int
    shared_layer: str


def api(registry: LiveRegistry, account: Account) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=registry.url, auth=account.auth, timeout=30.0)


def client_for(registry: LiveRegistry, account: Account) -> RegistryClient:
    return RegistryClient(registry.url, account.username, account.password)


async def _referrer(client: httpx.AsyncClient, name: str, subject: bytes, artifact_type: str) -> str:
    await push_blob(client, name, b"{}")
    payload = os.urandom(64)
    await push_blob(client, name, payload)
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": descriptor(OCI_EMPTY_CONFIG, b"{}"),
            "layers": [descriptor("application/octet-stream", payload)],
            "subject": descriptor(json.loads(subject)["mediaType"], subject),
        }
    ).encode()
    digest = digest_bytes(body)
    response = await put_manifest(client, name, digest, body)
    assert response.status_code == 201, response.text
    return digest


async def populate(registry: LiveRegistry, owner: Account) -> Source:
    namespace = await registry.organization(owner)
    app, tools = f"{namespace}/app", f"{namespace}/tools"
    shared = os.urandom(4096)
    amd64, arm64 = random_image(1, 2048), random_image(1, 2048)
    amd64.layers.append(shared)
    arm64.layers.append(shared)
    single = random_image(2, 1024)
    expiration = int(time.time()) + 7200
    async with api(registry, owner) as client:
        for image in (amd64, arm64):
            await push_image(client, app, image, image.digest)
        index = index_of(amd64, arm64)
        response = await put_manifest(client, app, "v1", index, OCI_INDEX)
        assert response.status_code == 201, response.text
        await push_image(client, app, single, "v2")
        await push_image(client, app, random_image(1, 512), "dev-1")
        tools_image = Image(config=random_image().config, layers=[shared])
        await push_image(client, tools, tools_image, "latest")
        signature = await _referrer(client, app, index, SIGNATURE_TYPE)
        sbom = await _referrer(client, app, amd64.manifest, SBOM_TYPE)
        labels = f"/api/v1/repository/{app}/manifest/{single.digest}/labels"
        response = await client.post(labels, json={"key": "com.example.team", "value": "infra"})
        assert response.status_code == 201, response.text
        response = await client.put(f"/api/v1/repository/{app}/tag/v2", json={"expiration": expiration})
        assert response.status_code == 201, response.text
    return Source(
        namespace=namespace,
        index=digest_bytes(index),
        amd64=amd64.digest,
        single=single.digest,
        tools=tools_image.digest,
        signature=signature,
        sbom=sbom,
        expiration=expiration,
        shared_layer=digest_bytes(shared),
    )


async def manifest_digest(
    registry: LiveRegistry, account: Account, repository: str, reference: str
) -> str | None:
    async with client_for(registry, account) as client:
        try:
            raw, _ = await client.manifest(repository, reference)
        except RegistryRequestError as error:
            assert error.status_code == 404, error
            return None
    return digest_bytes(raw)


def blob_members(archive: Path) -> list[str]:
    with tarfile.open(archive) as tar:
        return [member.name for member in tar.getmembers() if member.name.startswith("blobs/sha256/")]


def flip_byte(archive: Path, member: str) -> None:
    """Invert one byte in the middle of a member's content, in place."""
    with tarfile.open(archive) as tar:
        info = tar.getmember(member)
    with archive.open("r+b") as stream:
        stream.seek(info.offset_data + info.size // 2)
        byte = stream.read(1)
        stream.seek(-1, os.SEEK_CUR)
        stream.write(bytes([byte[0] ^ 0xFF]))


def rewrite(
    archive: Path, output: Path, *, drop: str | None = None, replace: dict[str, bytes] | None = None
) -> None:
    """A copy of the archive without member `drop` and with the contents in `replace`."""
    replace = replace or {}
    with tarfile.open(archive) as source, tarfile.open(output, "w", format=tarfile.PAX_FORMAT) as target:
        for member in source.getmembers():
            if member.name == drop:
                continue
            if member.name in replace:
                data = replace[member.name]
                member.size = len(data)
                target.addfile(member, io.BytesIO(data))
            else:
                target.addfile(member, source.extractfile(member))


def read_member(archive: Path, member: str) -> bytes:
    with tarfile.open(archive) as tar:
        stream = tar.extractfile(member)
        assert stream is not None
        return stream.read()


async def run_cli(*args: str, timeout_s: float = 60.0) -> tuple[int, str]:
    """`python -m quayside ARGS` to completion: (exit status, merged output)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "quayside",
        *args,
        cwd=REPOSITORY_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(timeout_s):
        output, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")
