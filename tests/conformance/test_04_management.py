"""The conformance suite's content management workflow (04_management_test.go), check for check,
with the strict client: delete by tag and by digest, the tag list reflecting it, blob delete."""

from __future__ import annotations

from shared.oci.mediatypes import OCI_MANIFEST
from tests.conformance.conftest import Suite, succeeded
from tests.conformance.content import TEST_TAG
from tests.conformance.strict_client import Checks


async def test_content_management_workflow(suite: Suite) -> None:
    content, client, checks = suite.content, suite.client, Checks("Content Management")
    config, manifest = content.configs[3], content.manifests[3]
    tag_count = 0

    # Setup
    with checks.check("Populate registry with test config blob"):
        assert succeeded(await suite.upload(config))
    with checks.check("Populate registry with test layer"):
        assert succeeded(await suite.upload(content.layer))
    with checks.check("Populate registry with test tag"):
        assert succeeded(await suite.put_manifest(TEST_TAG, manifest, OCI_MANIFEST))
    with checks.check("Check how many tags there are before anything gets deleted"):
        response = await client.get(f"/v2/{suite.name}/tags/list")
        assert response.status_code == 200
        tag_count = len(response.json()["tags"])
        assert tag_count == 1

    # Manifest delete: this registry allows deleting tags, so the suite's 400/405 escapes do not apply.
    with checks.check("DELETE request to manifest tag should return 202"):
        response = await client.delete(suite.path("manifests", TEST_TAG))
        assert response.status_code == 202, response.text
    with checks.check("DELETE request to manifest (digest) should yield 202 response unless already deleted"):
        response = await client.delete(suite.path("manifests", manifest.digest))
        assert response.status_code in (202, 404), response.text
    with checks.check("GET request to deleted manifest URL should yield 404 response"):
        assert (await client.get(suite.path("manifests", manifest.digest))).status_code == 404
    with checks.check("GET request to tags list should reflect manifest deletion"):
        response = await client.get(f"/v2/{suite.name}/tags/list")
        assert response.status_code == 200
        assert len(response.json()["tags"]) < tag_count

    # Blob delete
    with checks.check("DELETE request to blob URL should yield 202 response"):
        for blob in (config, content.layer):
            response = await client.delete(suite.path("blobs", blob.digest))
            assert response.status_code == 202, response.text
    with checks.check("GET request to deleted blob URL should yield 404 response"):
        assert (await client.get(suite.path("blobs", config.digest))).status_code == 404

    with checks.check("Every delete was authorized by a token for exactly the challenged delete scope"):
        deletes = [
            exchange
            for exchange in suite.auth.exchanges
            if exchange.challenge.scope == f"repository:{suite.name}:delete"
        ]
        assert len(deletes) == 4
        assert all(exchange.granted == {f"repository:{suite.name}": ["delete"]} for exchange in deletes)

    checks.assert_all_passed(expected_count=11)
