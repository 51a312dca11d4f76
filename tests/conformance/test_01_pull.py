"""The conformance suite's pull workflow (01_pull_test.go), check for check, with the strict client."""

from __future__ import annotations

from shared.oci.mediatypes import OCI_MANIFEST
from tests.conformance.conftest import Suite, deleted_or_gone, succeeded
from tests.conformance.content import (
    DUMMY_DIGEST,
    ERROR_CODES,
    INVALID_MANIFEST,
    NONEXISTENT_MANIFEST,
    TEST_TAG,
)
from tests.conformance.strict_client import Checks

ACCEPT = {"Accept": OCI_MANIFEST}


async def test_pull_workflow(suite: Suite) -> None:
    content, client, checks = suite.content, suite.client, Checks("Pull")
    manifests, configs = content.manifests, content.configs

    # Setup
    for blob in (configs[0], configs[1], content.layer):
        with checks.check(f"Populate registry with test blob {blob.digest}"):
            assert succeeded(await suite.upload(blob))
    with checks.check("Populate registry with test manifest (tag)"):
        assert succeeded(await suite.put_manifest(TEST_TAG, manifests[0], OCI_MANIFEST))
    with checks.check("Populate registry with test manifest (digest)"):
        assert succeeded(await suite.put_manifest(manifests[1].digest, manifests[1], OCI_MANIFEST))

    # Pull blobs
    with checks.check("HEAD request to nonexistent blob should result in 404 response"):
        assert (await client.head(suite.path("blobs", DUMMY_DIGEST))).status_code == 404
    with checks.check("HEAD request to existing blob should yield 200"):
        response = await client.head(suite.path("blobs", configs[0].digest))
        assert response.status_code == 200
        assert response.headers.get("docker-content-digest", configs[0].digest) == configs[0].digest
    with checks.check("GET nonexistent blob should result in 404 response"):
        assert (await client.get(suite.path("blobs", DUMMY_DIGEST))).status_code == 404
    with checks.check("GET request to existing blob URL should yield 200"):
        response = await client.get(suite.path("blobs", configs[0].digest))
        assert response.status_code == 200
        assert response.content == configs[0].content

    # Pull manifests
    with checks.check("HEAD request to nonexistent manifest should return 404"):
        assert (await client.head(suite.path("manifests", NONEXISTENT_MANIFEST))).status_code == 404
    for index in (0, 1):
        with checks.check(f"HEAD request to manifest[{index}] path (digest) should yield 200 response"):
            response = await client.head(suite.path("manifests", manifests[index].digest), headers=ACCEPT)
            assert response.status_code == 200
            assert response.headers.get("docker-content-digest") == manifests[index].digest
    with checks.check("HEAD request to manifest path (tag) should yield 200 response"):
        response = await client.head(suite.path("manifests", TEST_TAG), headers=ACCEPT)
        assert response.status_code == 200
        assert response.headers.get("docker-content-digest") == manifests[0].digest
    with checks.check("GET nonexistent manifest should return 404"):
        assert (await client.get(suite.path("manifests", NONEXISTENT_MANIFEST))).status_code == 404
    for index in (0, 1):
        with checks.check(f"GET request to manifest[{index}] path (digest) should yield 200 response"):
            response = await client.get(suite.path("manifests", manifests[index].digest), headers=ACCEPT)
            assert response.status_code == 200
            assert response.content == manifests[index].content
    with checks.check("GET request to manifest path (tag) should yield 200 response"):
        response = await client.get(suite.path("manifests", TEST_TAG), headers=ACCEPT)
        assert response.status_code == 200
        assert response.content == manifests[0].content

    # Error codes
    with checks.check("400 response body should contain OCI-conforming JSON message"):
        response = await client.request(
            "GET",
            suite.path("manifests", "sha256:totallywrong"),
            content=INVALID_MANIFEST,
            headers={"Content-Type": OCI_MANIFEST},
        )
        assert response.status_code in (400, 404)
        if response.status_code == 400:
            assert response.json()["errors"][0]["code"] in ERROR_CODES

    # Teardown (manifests before blobs, the suite's default)
    for index in (0, 1):
        with checks.check(f"Delete manifest[{index}] created in setup"):
            response = await client.delete(suite.path("manifests", manifests[index].digest))
            assert succeeded(response) or response.status_code == 405, response.text
    for blob in (configs[0], configs[1], content.layer):
        with checks.check(f"Delete blob {blob.digest} created in setup"):
            response = await client.delete(suite.path("blobs", blob.digest))
            assert deleted_or_gone(response), response.text

    checks.assert_all_passed(expected_count=23)
