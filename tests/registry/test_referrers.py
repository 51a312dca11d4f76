"""Manifests with a subject and GET /v2/<name>/referrers/<digest>."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from shared.oci.digest import digest_bytes
from shared.oci.mediatypes import OCI_EMPTY_CONFIG, OCI_INDEX, OCI_MANIFEST
from tests.fixtures.registry import Account, Registry, registry_settings
from tests.support.oci import (
    EMPTY_CONFIG,
    INVALID_REPOSITORY_NAMES,
    descriptor,
    push_blob,
    push_image,
    put_manifest,
    random_image,
)
from tests.support.registry_app import running_registry

SBOM_TYPE = "application/spdx+json"
SIGNATURE_CONFIG_TYPE = "application/vnd.example.signature.config.v1+json"


@pytest.fixture
async def registry(database_url: str, tmp_path: Path) -> AsyncIterator[Registry]:
    """The registry accepting any media type (IGNORE_UNKNOWN_MEDIATYPES): these tests push
    artifacts of made-up types."""
    settings = registry_settings(database_url, tmp_path / "storage", ignore_unknown_mediatypes=True)
    async with running_registry(settings) as running:
        yield running


@pytest.fixture
def repo(owner: Account) -> str:
    return f"{owner.username}/app"


def artifact(
    subject: bytes,
    *,
    artifact_type: str | None,
    config_type: str,
    config: bytes,
    payload: bytes,
    **annotations: str,
) -> bytes:
    """An OCI image manifest used as an artifact that refers to the subject manifest."""
    body: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(config_type, config),
        "layers": [descriptor("application/octet-stream", payload)],
        "subject": descriptor(OCI_MANIFEST, subject),
    }
    if artifact_type:
        body["artifactType"] = artifact_type
    if annotations:
        body["annotations"] = annotations
    return json.dumps(body).encode()


async def push_artifact(
    client: httpx.AsyncClient, repo: str, body: bytes, config: bytes, payload: bytes
) -> httpx.Response:
    await push_blob(client, repo, config)
    await push_blob(client, repo, payload)
    return await put_manifest(client, repo, digest_bytes(body), body)


async def referrers(client: httpx.AsyncClient, repo: str, digest: str, **params: str) -> httpx.Response:
    return await client.get(f"/v2/{repo}/referrers/{digest}", params=params)


async def test_referrers_list_the_manifests_whose_subject_is_the_digest(
    client: httpx.AsyncClient, repo: str
) -> None:
    image = random_image()
    await push_image(client, repo, image, "v1")
    sbom = artifact(
        image.manifest,
        artifact_type=SBOM_TYPE,
        config_type=OCI_EMPTY_CONFIG,
        config=EMPTY_CONFIG,
        payload=b'{"spdxVersion": "SPDX-2.3"}',
        **{"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
    )
    signature = artifact(
        image.manifest,
        artifact_type=None,
        config_type=SIGNATURE_CONFIG_TYPE,
        config=b'{"sig": 1}',
        payload=b"sig",
    )

    pushed = [
        await push_artifact(client, repo, sbom, EMPTY_CONFIG, b'{"spdxVersion": "SPDX-2.3"}'),
        await push_artifact(client, repo, signature, b'{"sig": 1}', b"sig"),
    ]
    response = await referrers(client, repo, image.digest)

    for answer in pushed:
        assert answer.status_code == 201, answer.text
        assert answer.headers["oci-subject"] == image.digest
    assert response.status_code == 200
    assert response.headers["content-type"] == OCI_INDEX
    assert "oci-filters-applied" not in response.headers
    index = response.json()
    assert index["schemaVersion"] == 2
    assert index["mediaType"] == OCI_INDEX
    assert index["manifests"] == [
        {
            "mediaType": OCI_MANIFEST,
            "digest": digest_bytes(sbom),
            "size": len(sbom),
            "artifactType": SBOM_TYPE,
            "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
        },
        {
            # Without artifactType, the config's media type stands for it.
            "mediaType": OCI_MANIFEST,
            "digest": digest_bytes(signature),
            "size": len(signature),
            "artifactType": SIGNATURE_CONFIG_TYPE,
        },
    ]


async def test_artifact_type_filter(client: httpx.AsyncClient, repo: str) -> None:
    image = random_image()
    await push_image(client, repo, image, "v1")
    sbom = artifact(
        image.manifest,
        artifact_type=SBOM_TYPE,
        config_type=OCI_EMPTY_CONFIG,
        config=EMPTY_CONFIG,
        payload=b"sbom",
    )
    other = artifact(
        image.manifest,
        artifact_type="application/x-other",
        config_type=OCI_EMPTY_CONFIG,
        config=EMPTY_CONFIG,
        payload=b"o",
    )
    await push_artifact(client, repo, sbom, EMPTY_CONFIG, b"sbom")
    await push_artifact(client, repo, other, EMPTY_CONFIG, b"o")

    filtered = await referrers(client, repo, image.digest, artifactType=SBOM_TYPE)
    no_match = await referrers(client, repo, image.digest, artifactType="application/x-none")

    assert filtered.headers["oci-filters-applied"] == "artifactType"
    assert [entry["digest"] for entry in filtered.json()["manifests"]] == [digest_bytes(sbom)]
    assert no_match.status_code == 200
    assert no_match.headers["oci-filters-applied"] == "artifactType"
    assert no_match.json()["manifests"] == []


async def test_subject_need_not_exist(client: httpx.AsyncClient, repo: str) -> None:
    absent = random_image()
    body = artifact(
        absent.manifest,
        artifact_type=SBOM_TYPE,
        config_type=OCI_EMPTY_CONFIG,
        config=EMPTY_CONFIG,
        payload=b"s",
    )

    pushed = await push_artifact(client, repo, body, EMPTY_CONFIG, b"s")
    response = await referrers(client, repo, absent.digest)

    assert pushed.status_code == 201, pushed.text
    assert pushed.headers["oci-subject"] == absent.digest
    assert [entry["digest"] for entry in response.json()["manifests"]] == [digest_bytes(body)]


async def test_an_index_may_refer_to_a_subject(client: httpx.AsyncClient, repo: str) -> None:
    image = random_image()
    await push_image(client, repo, image, "v1")
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "artifactType": "application/vnd.example.bundle",
            "manifests": [],
            "subject": descriptor(OCI_MANIFEST, image.manifest),
        }
    ).encode()

    pushed = await put_manifest(client, repo, digest_bytes(index), index, OCI_INDEX)
    response = await referrers(client, repo, image.digest)

    assert pushed.headers["oci-subject"] == image.digest
    assert response.json()["manifests"] == [
        {
            "mediaType": OCI_INDEX,
            "digest": digest_bytes(index),
            "size": len(index),
            "artifactType": "application/vnd.example.bundle",
        }
    ]


async def test_unknown_subject_answers_an_empty_index(client: httpx.AsyncClient, repo: str) -> None:
    await push_image(client, repo, random_image(), "v1")

    response = await referrers(client, repo, digest_bytes(b"unknown"))

    assert response.status_code == 200
    assert response.json() == {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}


async def test_referrers_of_deleted_manifests_disappear(client: httpx.AsyncClient, repo: str) -> None:
    image = random_image()
    await push_image(client, repo, image, "v1")
    body = artifact(
        image.manifest,
        artifact_type=SBOM_TYPE,
        config_type=OCI_EMPTY_CONFIG,
        config=EMPTY_CONFIG,
        payload=b"s",
    )
    await push_artifact(client, repo, body, EMPTY_CONFIG, b"s")

    assert (await client.delete(f"/v2/{repo}/manifests/{digest_bytes(body)}")).status_code == 202
    assert (await referrers(client, repo, image.digest)).json()["manifests"] == []


@pytest.mark.parametrize("digest", ["sha256:short", "latest", "sha256:" + "G" * 64])
async def test_invalid_digest_is_digest_invalid(client: httpx.AsyncClient, repo: str, digest: str) -> None:
    await push_image(client, repo, random_image(), "v1")

    response = await referrers(client, repo, digest)

    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "DIGEST_INVALID"


async def test_unknown_repository_is_name_unknown(client: httpx.AsyncClient, repo: str) -> None:
    response = await referrers(client, repo, digest_bytes(b"x"))

    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "NAME_UNKNOWN"


@pytest.mark.parametrize("name", INVALID_REPOSITORY_NAMES)
async def test_invalid_repository_names_are_name_invalid(client: httpx.AsyncClient, name: str) -> None:
    response = await referrers(client, name, digest_bytes(b"x"))

    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "NAME_INVALID"
