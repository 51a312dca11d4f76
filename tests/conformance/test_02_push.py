"""The conformance suite's push workflow (02_push_test.go), check for check, with the strict client."""

from __future__ import annotations

import httpx

from shared.oci.mediatypes import OCI_MANIFEST
from tests.conformance.conftest import Suite, deleted_or_gone, succeeded
from tests.conformance.content import DUMMY_DIGEST, EMPTY_LAYER_TAG, NONEXISTENT_MANIFEST
from tests.conformance.strict_client import Checks

OCTETS = {"Content-Type": "application/octet-stream"}


def location(response: httpx.Response) -> str:
    found = response.headers.get("location", "")
    assert found, f"no Location in {response.status_code} {response.text[:200]}"
    return found


async def test_push_workflow(suite: Suite) -> None:
    content, client, checks = suite.content, suite.client, Checks("Push")
    config, manifest = content.configs[1], content.manifests[1]
    last: httpx.Response | None = None

    # Blob Upload Streamed
    with checks.check("PATCH request with blob in body should yield 202 response"):
        session = await suite.start_upload()
        last = await client.patch(location(session), content=content.blob_a.content, headers=OCTETS)
        assert last.status_code == 202
    with checks.check("PUT request to session URL with digest should yield 201 response"):
        assert last is not None
        response = await client.put(
            location(last),
            params={"digest": content.blob_a.digest},
            headers={**OCTETS, "Content-Length": "0"},
        )
        assert response.status_code == 201
        location(response)

    # Blob Upload Monolithic
    with checks.check("GET nonexistent blob should result in 404 response"):
        assert (await client.get(suite.path("blobs", DUMMY_DIGEST))).status_code == 404
    with checks.check("POST request with digest and blob should yield a 201 or 202"):
        last = await client.post(
            f"/v2/{suite.name}/blobs/uploads/",
            params={"digest": config.digest},
            content=config.content,
            headers={**OCTETS, "Content-Length": config.length},
        )
        location(last)
        assert last.status_code in (201, 202)
    with checks.check(
        "GET request to blob URL from prior request should yield 200 or 404 based on response code"
    ):
        assert last is not None
        response = await client.get(suite.path("blobs", config.digest))
        assert response.status_code == (404 if last.status_code == 202 else 200)
    with checks.check("POST request should yield a session ID"):
        last = await suite.start_upload()
        assert last.status_code == 202
    with checks.check("PUT upload of a blob should yield a 201 Response"):
        response = await client.put(
            location(last),
            params={"digest": config.digest},
            content=config.content,
            headers={**OCTETS, "Content-Length": config.length},
        )
        location(response)
        assert response.status_code == 201
    with checks.check("GET request to existing blob should yield 200 response"):
        assert (await client.get(suite.path("blobs", config.digest))).status_code == 200
    with checks.check("PUT upload of a layer blob should yield a 201 Response"):
        response = await suite.upload(content.layer)
        location(response)
        assert response.status_code == 201
    with checks.check("GET request to existing layer should yield 200 response"):
        assert (await client.get(suite.path("blobs", content.layer.digest))).status_code == 200

    # Blob Upload Chunked
    first_chunk, second_chunk = content.blob_b_chunks
    first_range, second_range = content.blob_b_ranges
    with checks.check("Out-of-order blob upload should return 416"):
        session = await client.post(f"/v2/{suite.name}/blobs/uploads/", headers={"Content-Length": "0"})
        response = await client.patch(
            location(session),
            content=second_chunk,
            headers={**OCTETS, "Content-Length": str(len(second_chunk)), "Content-Range": second_range},
        )
        assert response.status_code == 416
    previous: httpx.Response | None = None
    with checks.check("PATCH request with first chunk should return 202"):
        previous = await client.post(f"/v2/{suite.name}/blobs/uploads/", headers={"Content-Length": "0"})
        last = await client.patch(
            location(previous),
            content=first_chunk,
            headers={**OCTETS, "Content-Length": str(len(first_chunk)), "Content-Range": first_range},
        )
        assert last.status_code == 202
        assert last.headers.get("range") == first_range
    with checks.check("Retry previous blob chunk should return 416"):
        assert previous is not None
        response = await client.patch(
            location(previous),
            content=first_chunk,
            headers={**OCTETS, "Content-Length": str(len(first_chunk)), "Content-Range": first_range},
        )
        assert response.status_code == 416
    with checks.check("Get on stale blob upload should return 204 with a range and location"):
        assert previous is not None
        last = await client.get(location(previous))
        assert last.status_code == 204
        location(last)
        assert last.headers.get("range") == first_range
    with checks.check("PATCH request with second chunk should return 202"):
        last = await client.patch(
            location(last),
            content=second_chunk,
            headers={**OCTETS, "Content-Length": str(len(second_chunk)), "Content-Range": second_range},
        )
        assert last.status_code == 202
        location(last)
    with checks.check("PUT request with digest should return 201"):
        response = await client.put(
            location(last),
            params={"digest": content.blob_b.digest},
            headers={**OCTETS, "Content-Length": "0"},
        )
        assert response.status_code == 201
        location(response)

    # Cross-Repository Blob Mount
    with checks.check("Cross-mounting of a blob without the from argument should yield session id"):
        response = await client.post(
            f"/v2/{suite.crossmount_name}/blobs/uploads/", params={"mount": DUMMY_DIGEST}
        )
        assert response.status_code == 202
        location(response)
    with checks.check("POST request to mount another repository's blob should return 201 or 202"):
        last = await client.post(
            f"/v2/{suite.crossmount_name}/blobs/uploads/",
            params={"mount": content.blob_a.digest, "from": suite.name},
        )
        assert last.status_code in (201, 202)
    with checks.check("GET request to test digest within cross-mount namespace should return 200"):
        assert last is not None and last.status_code == 201
        mounted = httpx.URL(location(last)).path
        assert mounted == f"/v2/{suite.crossmount_name}/blobs/{content.blob_a.digest}"
        assert (await client.get(mounted)).status_code == 200

    # Manifest Upload
    with checks.check("GET nonexistent manifest should return 404"):
        assert (await client.get(suite.path("manifests", NONEXISTENT_MANIFEST))).status_code == 404
    with checks.check("PUT should accept a manifest upload"):
        for index in range(4):
            response = await suite.put_manifest(f"test{index}", manifest, OCI_MANIFEST)
            location(response)
            assert response.status_code == 201
    with checks.check("Registry should accept a manifest upload with no layers"):
        response = await suite.put_manifest(EMPTY_LAYER_TAG, content.empty_layer_manifest, OCI_MANIFEST)
        assert response.status_code == 201, response.text
        location(response)
    with checks.check("GET request to manifest URL (digest) should yield 200 response"):
        response = await client.get(
            suite.path("manifests", manifest.digest), headers={"Accept": OCI_MANIFEST}
        )
        assert response.status_code == 200

    # Teardown
    with checks.check("Delete manifest created in tests"):
        for pushed in (manifest, content.empty_layer_manifest):
            response = await client.delete(suite.path("manifests", pushed.digest))
            assert succeeded(response) or response.status_code == 405, response.text
    for blob in (config, content.layer):
        with checks.check(f"Delete blob {blob.digest} created in tests"):
            assert deleted_or_gone(await client.delete(suite.path("blobs", blob.digest)))

    checks.assert_all_passed(expected_count=26)
