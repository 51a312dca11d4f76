"""Geo-replication end to end (issue 8), every piece a real process (tests/georeplication/conftest.py):
clients in "us" (127.0.0.2) and "eu" (127.0.0.3) push and pull through the gateway; the replication
worker copies blobs between the regions' SeaweedFS servers; storage and registry outages are
survived; skopeo works through the gateway."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shared.auth.accounts import create_user
from shared.oci.digest import digest_bytes
from shared.oci.mediatypes import OCI_MANIFEST
from tests.e2e.helpers import TAG, assert_same_content, image_layout, pull, push
from tests.fixtures.registry import Account
from tests.georeplication.conftest import Geo
from tests.georeplication.oci_client import RegionClient
from tests.support.oci import Image, random_image
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

REGION_HEADER = "quayside-region"


def blobs_of(image: Image) -> list[str]:
    return [digest_bytes(blob) for blob in (image.config, *image.layers)]


async def push_image(client: RegionClient, repository: str, image: Image, tag: str = "v1") -> None:
    for blob in (image.config, *image.layers):
        await client.push_blob(repository, blob)
    assert await client.push_manifest(repository, tag, image.manifest, OCI_MANIFEST) == image.digest


async def assert_pulls_identical(client: RegionClient, repository: str, image: Image, region: str) -> None:
    """The image's manifest and blobs, pulled through the client, are the pushed bytes, served by region."""
    manifest = await client.manifest(repository, "v1", OCI_MANIFEST)
    assert manifest.status_code == 200, manifest.text
    assert manifest.content == image.manifest
    assert manifest.headers[REGION_HEADER] == region
    for data, digest in zip((image.config, *image.layers), blobs_of(image), strict=True):
        blob = await client.blob(repository, digest)
        assert blob.status_code == 200, blob.text
        assert blob.content == data
        assert blob.headers[REGION_HEADER] == region


async def test_a_push_via_us_is_placed_in_eu_and_pulled_identical_via_eu(geo: Geo) -> None:
    owner, org = await geo.organization()
    repository = f"{org}/app"
    image = random_image(layer_count=2, layer_size=256 * 1024)

    async with geo.client("us", owner) as us:
        await push_image(us, repository, image)
        assert {response.headers[REGION_HEADER] for response in us.responses} == {"us"}

    await geo.wait_placed(blobs_of(image), "eu")
    for data, digest in zip((image.config, *image.layers), blobs_of(image), strict=True):
        assert await geo.placements(digest) == {"us", "eu"}
        assert geo.eu.stored_bytes(digest) == data
    async with geo.client("eu", owner) as eu:
        await assert_pulls_identical(eu, repository, image, "eu")


async def test_a_pull_via_eu_before_replication_finished_is_served_from_us(geo: Geo) -> None:
    owner, org = await geo.organization()
    repository = f"{org}/app"
    image = random_image(layer_count=1, layer_size=128 * 1024)

    async with geo.replication_paused():
        async with geo.client("us", owner) as us:
            await push_image(us, repository, image)
        for digest in blobs_of(image):
            assert await geo.placements(digest) == {"us"}

        async with geo.client("eu", owner) as eu:
            await assert_pulls_identical(eu, repository, image, "eu")
        for digest in blobs_of(image):
            assert geo.eu.stored_bytes(digest) is None

    await geo.wait_placed(blobs_of(image), "eu")


async def test_with_eu_storage_down_eu_pulls_and_pushes_succeed_and_the_backlog_drains_after(
    geo: Geo,
) -> None:
    owner, org = await geo.organization()
    repository = f"{org}/app"
    before = random_image(layer_count=1, layer_size=128 * 1024)
    during = random_image(layer_count=2, layer_size=128 * 1024)
    async with geo.client("us", owner) as us:
        await push_image(us, repository, before)
    await geo.wait_placed(blobs_of(before), "eu")

    async with geo.s3_down("eu"):

        async def eu_storage_reported_down() -> bool:
            answer = await geo.registry_health("eu")
            body = answer.json()["data"]
            return (
                answer.status_code == 200
                and body["services"]["storage:eu"] is False
                and body["locations"]["eu"]["healthy"] is False
            )

        await eventually(eu_storage_reported_down, timeout_s=60, step_s=0.1)
        health = (await geo.registry_health("eu")).json()["data"]
        assert health["services"]["storage:us"] is True
        assert health["locations"]["us"]["healthy"] is True

        async def gateway_sees_eu_degraded() -> bool:
            regions = {state["name"]: state for state in (await geo.gateway_status())["regions"]}
            return regions["eu"]["healthy"] and "storage:eu" in regions["eu"]["degraded"]

        await eventually(gateway_sees_eu_degraded, timeout_s=60, step_s=0.1)

        async with geo.client("eu", owner) as eu:
            await assert_pulls_identical(eu, repository, before, "eu")
            await push_image(eu, repository, during, tag="v2")
        for digest in blobs_of(during):
            assert await geo.placements(digest) == {"us"}

    await geo.wait_placed(blobs_of(during), "eu")
    for data, digest in zip((during.config, *during.layers), blobs_of(during), strict=True):
        assert geo.eu.stored_bytes(digest) == data
        assert geo.us.stored_bytes(digest) == data


async def test_the_gateway_fails_eu_clients_over_to_us_while_the_eu_registry_is_down(geo: Geo) -> None:
    owner, org = await geo.organization()
    repository = f"{org}/app"
    image = random_image(layer_count=1, layer_size=64 * 1024)
    async with geo.client("us", owner) as us:
        await push_image(us, repository, image)

    async with geo.registry_down("eu"), geo.client("eu", owner) as eu:
        await assert_pulls_identical(eu, repository, image, "us")
        other = random_image(layer_count=1, layer_size=64 * 1024)
        await push_image(eu, repository, other, tag="v3")
        assert eu.responses[-1].headers[REGION_HEADER] == "us"

    async def eu_served_again() -> bool:
        async with geo.client("eu", owner) as eu:
            answer = await eu.manifest(repository, "v1", OCI_MANIFEST)
        return answer.status_code == 200 and answer.headers[REGION_HEADER] == "eu"

    await eventually(eu_served_again, timeout_s=60, step_s=0.2)
    await geo.wait_placed(blobs_of(other), "eu")  # what eu clients pushed via us reaches eu too


async def test_a_namespace_replicated_to_a_filesystem_location_mixes_s3_and_files(geo: Geo) -> None:
    owner, org = await geo.organization()
    admin = await superuser(geo)
    async with geo.client("us", admin) as us:
        answer = await us.request(
            org,
            "PUT",
            f"/api/v1/superuser/replication/{org}",
            content=b'{"locations": ["us", "archive"]}',
            headers={"Content-Type": "application/json", **admin.basic_header},
        )
    assert answer.status_code == 200, answer.text
    image = random_image(layer_count=1, layer_size=64 * 1024)
    async with geo.client("eu", owner) as eu:
        await push_image(eu, f"{org}/app", image)

    await geo.wait_placed(blobs_of(image), "archive")
    for data, digest in zip((image.config, *image.layers), blobs_of(image), strict=True):
        assert await geo.placements(digest) == {"eu", "us", "archive"}
        stored = geo.archive_root / "blobs"
        assert any(path.read_bytes() == data for path in stored.rglob("*") if path.is_file())


async def test_skopeo_pushes_and_pulls_through_the_gateway(geo: Geo, tmp_path: Path) -> None:
    owner, org = await geo.organization()
    layout, top = await image_layout(tmp_path / "source")
    host = geo.gateway_url.removeprefix("http://")
    reference = f"docker://{host}/{org}/tools:{TAG}"

    await push(layout, reference, owner)
    (await pull(reference, tmp_path / "pulled", owner)).check()

    await assert_same_content(tmp_path / "pulled", layout, top)
    async with geo.client("eu", owner) as eu:
        manifest = await eu.manifest(f"{org}/tools", TAG, OCI_MANIFEST)
    assert manifest.status_code == 200
    assert manifest.headers[REGION_HEADER] == "eu"


async def superuser(geo: Geo) -> Account:
    admin = Account(f"admin{os.urandom(4).hex()}", os.urandom(16).hex())
    async with geo.pool.acquire() as conn:
        await create_user(conn, admin.username, admin.password, superuser=True)
    return admin
