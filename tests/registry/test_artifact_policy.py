"""The OCI artifact policy on manifest push: any media type by default; the opt-in restrictions
RESTRICT_OCI_ARTIFACT_TYPES with ALLOWED_OCI_ARTIFACT_TYPES, FEATURE_GENERAL_OCI_SUPPORT false; and
IGNORE_UNKNOWN_MEDIATYPES, which lifts them."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from shared.config import Settings
from shared.oci.mediatypes import OCI_EMPTY_CONFIG, OCI_IMAGE_CONFIG, OCI_MANIFEST
from tests.fixtures.registry import Account, Registry, registry_settings
from tests.support.oci import EMPTY_CONFIG, LAYER_TYPE, descriptor, error_code, push_blob, put_manifest
from tests.support.registry_app import running_registry

HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"
HELM_CHART = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
HELM_PROVENANCE = "application/vnd.cncf.helm.chart.provenance.v1.prov"
COSIGN_SIGNATURE = "application/vnd.dev.cosign.simplesigning.v1+json"
CUSTOM_CONFIG = "application/vnd.example.thing.config.v1+json"
CUSTOM_LAYER = "application/vnd.example.thing.layer.v1"


def _content_of(media_type: str) -> bytes:
    return EMPTY_CONFIG if media_type == OCI_EMPTY_CONFIG else os.urandom(32)


class Artifact:
    """An OCI image manifest with a config and layers of chosen media types, and their bytes."""

    def __init__(self, config_type: str, layer_types: list[str], *, artifact_type: str | None = None) -> None:
        self.config = _content_of(config_type)
        self.layers = [(media_type, _content_of(media_type)) for media_type in layer_types]
        body: dict[str, object] = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(config_type, self.config),
            "layers": [descriptor(media_type, data) for media_type, data in self.layers],
        }
        if artifact_type:
            body["artifactType"] = artifact_type
        self.manifest = json.dumps(body).encode()


async def push(client: httpx.AsyncClient, repo: str, artifact: Artifact) -> httpx.Response:
    for blob in (artifact.config, *(data for _, data in artifact.layers)):
        await push_blob(client, repo, blob)
    return await put_manifest(client, repo, "v1", artifact.manifest)


async def assert_refused_naming(
    client: httpx.AsyncClient, repo: str, response: httpx.Response, media_type: str
) -> None:
    assert response.status_code == 400, response.text
    assert error_code(response) == "MANIFEST_INVALID"
    error = response.json()["errors"][0]
    assert media_type in error["message"]
    assert error["detail"] == {"mediaType": media_type}
    assert (await client.get(f"/v2/{repo}/manifests/v1")).status_code == 404


@pytest.fixture
def repo(owner: Account) -> str:
    return f"{owner.username}/artifacts"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return registry_settings(database_url, tmp_path / "storage")


@pytest.fixture
async def restricted(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A client of a registry that restricts artifacts to the allow-list (Quay's list by default)."""
    async with running_registry(
        settings.model_copy(update={"restrict_oci_artifact_types": True})
    ) as registry:
        client, repo = await registry_client(registry)
        async with client:
            yield client, repo


IMAGES_AND_LISTED_ARTIFACTS = {
    "image": Artifact(OCI_IMAGE_CONFIG, [LAYER_TYPE, "application/vnd.oci.image.layer.v1.tar+zstd"]),
    "helm chart with provenance": Artifact(HELM_CONFIG, [HELM_CHART, HELM_PROVENANCE]),
    "cosign signature": Artifact(OCI_IMAGE_CONFIG, [COSIGN_SIGNATURE]),
    "cosign attestation": Artifact(OCI_IMAGE_CONFIG, ["application/vnd.dsse.envelope.v1+json"]),
    "spdx sbom": Artifact(OCI_IMAGE_CONFIG, ["text/spdx+json"]),
    "syft sbom": Artifact(OCI_IMAGE_CONFIG, ["application/vnd.syft+json"]),
    "cyclonedx sbom": Artifact(OCI_IMAGE_CONFIG, ["application/vnd.cyclonedx+json"]),
    "in-toto statement": Artifact(OCI_IMAGE_CONFIG, ["application/vnd.in-toto+json"]),
    "oci 1.1 spdx artifact": Artifact(
        OCI_EMPTY_CONFIG, ["application/spdx+json"], artifact_type="application/spdx+json"
    ),
    "oci 1.1 cosign signature": Artifact(
        OCI_EMPTY_CONFIG, [COSIGN_SIGNATURE], artifact_type="application/vnd.dev.cosign.artifact.sig.v1+json"
    ),
    "oci 1.1 artifact without content": Artifact(
        OCI_EMPTY_CONFIG, [OCI_EMPTY_CONFIG], artifact_type="application/vnd.cyclonedx+json"
    ),
}
UNLISTED_ARTIFACTS = {
    "unknown config type": Artifact(CUSTOM_CONFIG, [CUSTOM_LAYER]),
    "unknown artifact type": Artifact(
        OCI_EMPTY_CONFIG, [CUSTOM_LAYER], artifact_type="application/vnd.example.thing"
    ),
    "listed artifact type with an unlisted layer": Artifact(HELM_CONFIG, [HELM_CHART, COSIGN_SIGNATURE]),
    "image with an unknown layer type": Artifact(OCI_IMAGE_CONFIG, [LAYER_TYPE, CUSTOM_LAYER]),
    "unknown config vouched for by a listed artifact type": Artifact(
        CUSTOM_CONFIG, [HELM_CHART], artifact_type=HELM_CONFIG
    ),
    "unknown types everywhere": Artifact(CUSTOM_CONFIG, [CUSTOM_LAYER, "text/plain"]),
}


@pytest.mark.parametrize("name", [*IMAGES_AND_LISTED_ARTIFACTS, *UNLISTED_ARTIFACTS])
async def test_by_default_every_media_type_is_accepted(
    client: httpx.AsyncClient, repo: str, name: str
) -> None:
    artifact = {**IMAGES_AND_LISTED_ARTIFACTS, **UNLISTED_ARTIFACTS}[name]

    response = await push(client, repo, artifact)

    assert response.status_code == 201, response.text
    assert (await client.get(f"/v2/{repo}/manifests/v1")).content == artifact.manifest


@pytest.mark.parametrize("name", IMAGES_AND_LISTED_ARTIFACTS)
async def test_restricted_images_and_the_listed_artifact_types_are_accepted(
    restricted: tuple[httpx.AsyncClient, str], name: str
) -> None:
    client, repo = restricted
    artifact = IMAGES_AND_LISTED_ARTIFACTS[name]

    response = await push(client, repo, artifact)

    assert response.status_code == 201, response.text
    assert (await client.get(f"/v2/{repo}/manifests/v1")).content == artifact.manifest


async def test_restricted_an_unknown_config_type_is_refused(
    restricted: tuple[httpx.AsyncClient, str],
) -> None:
    client, repo = restricted

    response = await push(client, repo, UNLISTED_ARTIFACTS["unknown config type"])

    await assert_refused_naming(client, repo, response, CUSTOM_CONFIG)


async def test_restricted_an_unknown_artifact_type_is_refused(
    restricted: tuple[httpx.AsyncClient, str],
) -> None:
    client, repo = restricted

    response = await push(client, repo, UNLISTED_ARTIFACTS["unknown artifact type"])

    await assert_refused_naming(client, repo, response, "application/vnd.example.thing")


async def test_restricted_a_listed_artifact_type_with_a_layer_not_listed_for_it_is_refused(
    restricted: tuple[httpx.AsyncClient, str],
) -> None:
    client, repo = restricted
    # A cosign signature layer is allowed under an image config, not in a Helm chart.
    response = await push(client, repo, UNLISTED_ARTIFACTS["listed artifact type with an unlisted layer"])

    await assert_refused_naming(client, repo, response, COSIGN_SIGNATURE)
    assert HELM_CONFIG in response.json()["errors"][0]["message"]


async def test_restricted_an_image_with_an_unknown_layer_type_is_refused(
    restricted: tuple[httpx.AsyncClient, str],
) -> None:
    client, repo = restricted

    response = await push(client, repo, UNLISTED_ARTIFACTS["image with an unknown layer type"])

    await assert_refused_naming(client, repo, response, CUSTOM_LAYER)


async def test_restricted_an_allowed_artifact_type_cannot_vouch_for_another_config_type(
    restricted: tuple[httpx.AsyncClient, str],
) -> None:
    client, repo = restricted
    artifact = UNLISTED_ARTIFACTS["unknown config vouched for by a listed artifact type"]

    response = await push(client, repo, artifact)

    await assert_refused_naming(client, repo, response, CUSTOM_CONFIG)


async def registry_client(registry: Registry) -> tuple[httpx.AsyncClient, str]:
    owner = await registry.user()
    return registry.client(owner), f"{owner.username}/artifacts"


async def test_without_general_oci_support_only_images_are_accepted(settings: Settings) -> None:
    async with running_registry(
        settings.model_copy(update={"feature_general_oci_support": False})
    ) as registry:
        client, repo = await registry_client(registry)
        async with client:
            image = await push(client, repo, Artifact(OCI_IMAGE_CONFIG, [LAYER_TYPE]))
            chart = await push(client, f"{repo}-chart", Artifact(HELM_CONFIG, [HELM_CHART]))
            signature = await push(client, f"{repo}-sig", Artifact(OCI_IMAGE_CONFIG, [COSIGN_SIGNATURE]))

    assert image.status_code == 201, image.text
    assert chart.status_code == 400
    assert HELM_CONFIG in chart.json()["errors"][0]["message"]
    assert signature.status_code == 400
    assert COSIGN_SIGNATURE in signature.json()["errors"][0]["message"]


async def test_allowed_types_from_the_environment_replace_the_defaults(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUAYSIDE_RESTRICT_OCI_ARTIFACT_TYPES", "true")
    monkeypatch.setenv("QUAYSIDE_ALLOWED_OCI_ARTIFACT_TYPES", json.dumps({CUSTOM_CONFIG: [CUSTOM_LAYER]}))
    from_environment = Settings()
    policy = {
        "restrict_oci_artifact_types": from_environment.restrict_oci_artifact_types,
        "allowed_oci_artifact_types": from_environment.allowed_oci_artifact_types,
    }
    async with running_registry(settings.model_copy(update=policy)) as registry:
        client, repo = await registry_client(registry)
        async with client:
            custom = await push(client, repo, Artifact(CUSTOM_CONFIG, [CUSTOM_LAYER]))
            chart = await push(client, f"{repo}-chart", Artifact(HELM_CONFIG, [HELM_CHART]))

    assert custom.status_code == 201, custom.text
    assert chart.status_code == 400


async def test_ignore_unknown_mediatypes_lifts_the_restrictions(settings: Settings) -> None:
    artifact = UNLISTED_ARTIFACTS["unknown types everywhere"]
    policy = {
        "ignore_unknown_mediatypes": True,
        "restrict_oci_artifact_types": True,
        "feature_general_oci_support": False,
    }
    async with running_registry(settings.model_copy(update=policy)) as registry:
        client, repo = await registry_client(registry)
        async with client:
            response = await push(client, repo, artifact)
            served = await client.get(f"/v2/{repo}/manifests/v1")

    assert response.status_code == 201, response.text
    assert served.content == artifact.manifest
