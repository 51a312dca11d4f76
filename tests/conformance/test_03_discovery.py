"""The conformance suite's content discovery workflow (03_discovery_test.go), check for check, with
the strict client: tag listing, and referrers of artifacts whose types no registry knows (as config
media type and as artifactType), with and without the artifactType filter, for an existing subject,
a subject never pushed, and an unknown digest."""

from __future__ import annotations

import httpx

from shared.oci.mediatypes import OCI_INDEX, OCI_MANIFEST
from tests.conformance.conftest import Suite, deleted_or_gone, succeeded
from tests.conformance.content import ANNOTATION_KEY, ARTIFACT_TYPE_A, DUMMY_DIGEST, TEST_TAG
from tests.conformance.strict_client import Checks

TAG_COUNT = 4


def tag_list(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    tags: list[str] = response.json()["tags"]
    return tags


def referrers(response: httpx.Response) -> list[dict[str, object]]:
    """The manifests of a referrers answer, once it is a 200 OCI image index."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == OCI_INDEX
    index = response.json()
    assert index["mediaType"] == OCI_INDEX
    manifests: list[dict[str, object]] = index["manifests"]
    return manifests


async def test_content_discovery_workflow(suite: Suite) -> None:
    content, client, checks = suite.content, suite.client, Checks("Content Discovery")
    subject, unpushed_subject = content.manifests[4], content.manifests[3]

    # Setup
    with checks.check("Populate registry with test blob"):
        assert succeeded(await suite.upload(content.configs[2]))
    with checks.check("Populate registry with test layer"):
        assert succeeded(await suite.upload(content.layer))
    with checks.check("Populate registry with test tags"):
        for index in range(TAG_COUNT):
            assert succeeded(await suite.put_manifest(f"test{index}", content.manifests[2], OCI_MANIFEST))
    with checks.check("References setup"):
        assert content.empty_json.digest == (
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        )
        assert succeeded(await suite.upload(content.empty_json))
        # Referrers may arrive before their subject.
        assert succeeded(await suite.upload(content.ref_blob_a))
        for referrer in (content.refs_a_config, content.refs_a_layer):
            pushed = await suite.put_manifest(referrer.digest, referrer, OCI_MANIFEST)
            assert pushed.status_code == 201, pushed.text
            assert pushed.headers.get("oci-subject") == subject.digest
        pushed = await suite.put_manifest(content.refs_index.digest, content.refs_index, OCI_INDEX)
        assert pushed.status_code == 201, pushed.text
        assert pushed.headers.get("oci-subject") == subject.digest
        assert succeeded(await suite.upload(content.configs[4]))
        assert succeeded(await suite.upload(content.layer))
        assert succeeded(await suite.put_manifest(TEST_TAG, subject, OCI_MANIFEST))
        assert succeeded(await suite.upload(content.ref_blob_b))
        for referrer in (content.refs_b_config, content.refs_b_layer):
            pushed = await suite.put_manifest(referrer.digest, referrer, OCI_MANIFEST)
            assert pushed.status_code == 201, pushed.text
            assert pushed.headers.get("oci-subject") == subject.digest
        pushed = await suite.put_manifest(content.refs_c_layer.digest, content.refs_c_layer, OCI_MANIFEST)
        assert pushed.status_code == 201, pushed.text
        assert pushed.headers.get("oci-subject") == unpushed_subject.digest

    # Listing tags
    tags: list[str] = []
    with checks.check("GET request to list tags should yield 200 response"):
        tags = tag_list(await client.get(f"/v2/{suite.name}/tags/list"))
        assert tags == sorted([TEST_TAG, *(f"test{index}" for index in range(TAG_COUNT))])
    half = len(tags) // 2
    with checks.check("GET number of tags should be limitable by `n` query parameter"):
        assert len(tag_list(await client.get(f"/v2/{suite.name}/tags/list", params={"n": half}))) == half
    with checks.check("GET start of tag is set by `last` query parameter"):
        first_page = tag_list(await client.get(f"/v2/{suite.name}/tags/list", params={"n": half}))
        last = first_page[half - 1]
        next_page = tag_list(
            await client.get(f"/v2/{suite.name}/tags/list", params={"n": half, "last": last})
        )
        assert len(next_page) <= half
        assert last not in next_page
        assert next_page == tags[half : half * 2]

    # Listing referrers
    with checks.check("GET request to nonexistent blob should result in empty 200 response"):
        assert referrers(await client.get(suite.path("referrers", DUMMY_DIGEST))) == []
    with checks.check("GET request to existing blob should yield 200"):
        found = referrers(await client.get(suite.path("referrers", subject.digest)))
        assert len(found) == 5
        assert len({entry["digest"] for entry in found}) == 5
        for entry in found:
            assert entry["annotations"] == {ANNOTATION_KEY: content.annotations[str(entry["digest"])]}
    with checks.check("GET request to existing blob with filter should yield 200"):
        response = await client.get(
            suite.path("referrers", subject.digest), params={"artifactType": ARTIFACT_TYPE_A}
        )
        found = referrers(response)
        assert response.headers.get("oci-filters-applied") == "artifactType"
        assert {entry["digest"] for entry in found} == {
            content.refs_a_config.digest,
            content.refs_a_layer.digest,
        }
        assert all(entry["artifactType"] == ARTIFACT_TYPE_A for entry in found)
        for entry in found:
            assert entry["annotations"] == {ANNOTATION_KEY: content.annotations[str(entry["digest"])]}
    with checks.check("GET request to missing manifest should yield 200"):
        found = referrers(await client.get(suite.path("referrers", unpushed_subject.digest)))
        assert [entry["digest"] for entry in found] == [content.refs_c_layer.digest]
    with checks.check(
        "GET request to missing manifest with filter of another type should yield an empty 200"
    ):
        response = await client.get(
            suite.path("referrers", unpushed_subject.digest), params={"artifactType": ARTIFACT_TYPE_A}
        )
        assert referrers(response) == []

    # Teardown (manifests before blobs, the suite's default)
    with checks.check("Delete created manifest & associated tags"):
        for manifest in (
            content.refs_index,
            content.manifests[2],
            subject,
            content.refs_a_config,
            content.refs_a_layer,
            content.refs_b_config,
            content.refs_b_layer,
            content.refs_c_layer,
        ):
            response = await client.delete(suite.path("manifests", manifest.digest))
            assert deleted_or_gone(response), response.text
        assert tag_list(await client.get(f"/v2/{suite.name}/tags/list")) == []
    for blob in (
        content.configs[2],
        content.layer,
        content.configs[4],
        content.ref_blob_a,
        content.ref_blob_b,
    ):
        with checks.check(f"Delete blob {blob.digest} created in setup"):
            assert deleted_or_gone(await client.delete(suite.path("blobs", blob.digest)))
    with checks.check("Delete empty JSON blob created in setup"):
        assert deleted_or_gone(await client.delete(suite.path("blobs", content.empty_json.digest)))

    checks.assert_all_passed(expected_count=19)
