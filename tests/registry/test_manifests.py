"""PUT, GET, HEAD and DELETE /v2/<name>/manifests/<reference> against the real registry app."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator

import httpx
import pytest

from shared.oci.digest import digest_bytes
from shared.oci.mediatypes import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST
from tests.fixtures.registry import Account, Registry
from tests.support.oci import (
    INVALID_REPOSITORY_NAMES,
    LAYER_TYPE,
    descriptor,
    docker_manifest,
    docker_manifest_list,
    index_of,
    push_blob,
    push_image,
    push_image_blobs,
    put_manifest,
    random_image,
)
from tests.support.waiting import eventually


@pytest.fixture
def repo(owner: Account) -> str:
    return f"{owner.username}/app"


def error_of(response: httpx.Response) -> dict[str, object]:
    errors = response.json()["errors"]
    assert len(errors) == 1
    error: dict[str, object] = errors[0]
    return error


async def test_image_manifest_is_served_by_tag_and_digest_exactly_as_pushed(
    client: httpx.AsyncClient, repo: str
) -> None:
    image = random_image()
    await push_image_blobs(client, repo, image)
    # Unusual spacing and key order: the registry must keep the bytes, not re-serialize them.
    body = json.dumps(json.loads(image.manifest), indent=3, sort_keys=True).encode()
    digest = digest_bytes(body)

    pushed = await put_manifest(client, repo, "v1", body)

    assert pushed.status_code == 201, pushed.text
    assert pushed.headers["location"] == f"/v2/{repo}/manifests/{digest}"
    assert pushed.headers["docker-content-digest"] == digest
    assert "oci-subject" not in pushed.headers
    for reference in ("v1", digest):
        fetched = await client.get(f"/v2/{repo}/manifests/{reference}")
        assert fetched.status_code == 200
        assert fetched.content == body
        assert fetched.headers["content-type"] == OCI_MANIFEST
        assert fetched.headers["content-length"] == str(len(body))
        assert fetched.headers["docker-content-digest"] == digest
        assert fetched.headers["etag"] == f'"{digest}"'


async def test_head_answers_the_headers_without_the_body(client: httpx.AsyncClient, repo: str) -> None:
    image = random_image()
    await push_image(client, repo, image, "v1")

    response = await client.head(f"/v2/{repo}/manifests/v1")

    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-length"] == str(len(image.manifest))
    assert response.headers["docker-content-digest"] == image.digest
    assert response.headers["content-type"] == OCI_MANIFEST


async def test_unknown_manifests_are_manifest_unknown(client: httpx.AsyncClient, repo: str) -> None:
    await push_image(client, repo, random_image(), "v1")
    for reference in ("v2", digest_bytes(b"nothing"), "not.a.valid.tag." + "x" * 200):
        response = await client.get(f"/v2/{repo}/manifests/{reference}")
        assert response.status_code == 404
        assert error_of(response)["code"] == "MANIFEST_UNKNOWN"
        assert (await client.head(f"/v2/{repo}/manifests/{reference}")).status_code == 404


async def test_pull_from_an_unknown_repository_is_name_unknown(client: httpx.AsyncClient, repo: str) -> None:
    response = await client.get(f"/v2/{repo}/manifests/latest")

    assert response.status_code == 404
    assert error_of(response)["code"] == "NAME_UNKNOWN"


async def test_public_manifests_are_served_to_anonymous_callers(
    registry: Registry, client: httpx.AsyncClient, repo: str
) -> None:
    image = random_image()
    await push_image(client, repo, image, "v1")
    async with registry.client() as anonymous:
        assert (await anonymous.get(f"/v2/{repo}/manifests/v1")).status_code == 401
        # A change made outside this process reaches its pull-permission cache through the
        # repository-change notification, within about a second.
        await registry.context.pool.execute("UPDATE repository SET visibility = 'public' WHERE name = 'app'")

        async def served() -> httpx.Response | None:
            answer = await anonymous.get(f"/v2/{repo}/manifests/v1")
            return answer if answer.status_code == 200 else None

        response = await eventually(served, timeout_s=10)
    assert response.content == image.manifest


async def test_push_by_digest_stores_an_untagged_manifest(client: httpx.AsyncClient, repo: str) -> None:
    image = random_image()
    await push_image_blobs(client, repo, image)

    pushed = await put_manifest(client, repo, image.digest, image.manifest)

    assert pushed.status_code == 201, pushed.text
    assert pushed.headers["docker-content-digest"] == image.digest
    assert (await client.get(f"/v2/{repo}/manifests/{image.digest}")).content == image.manifest
    assert (await client.get(f"/v2/{repo}/tags/list")).json()["tags"] == []


async def test_push_by_sha512_digest(client: httpx.AsyncClient, repo: str) -> None:
    image = random_image()
    await push_image_blobs(client, repo, image)
    digest = digest_bytes(image.manifest, "sha512")

    pushed = await put_manifest(client, repo, digest, image.manifest)

    assert pushed.status_code == 201, pushed.text
    assert pushed.headers["docker-content-digest"] == digest
    assert (await client.get(f"/v2/{repo}/manifests/{digest}")).content == image.manifest


async def test_digest_reference_must_be_the_digest_of_the_body(client: httpx.AsyncClient, repo: str) -> None:
    image = random_image()
    await push_image_blobs(client, repo, image)

    for reference in (digest_bytes(b"other"), "sha256:abc", "md5:" + "0" * 32):
        response = await put_manifest(client, repo, reference, image.manifest)
        assert response.status_code == 400
        assert error_of(response)["code"] == "DIGEST_INVALID"
    assert (await client.get(f"/v2/{repo}/manifests/{image.digest}")).status_code == 404


@pytest.mark.parametrize("tag", [".hidden", "-dash", "a" * 129, "spa ce", "a+b"])
async def test_invalid_tags_are_refused(client: httpx.AsyncClient, repo: str, tag: str) -> None:
    image = random_image()
    await push_image_blobs(client, repo, image)

    response = await put_manifest(client, repo, tag, image.manifest)

    assert response.status_code == 400
    assert error_of(response)["code"] == "MANIFEST_INVALID"
    assert "tag" in str(error_of(response)["message"])


async def test_missing_layer_is_manifest_blob_unknown(
    registry: Registry, client: httpx.AsyncClient, repo: str, owner: Account
) -> None:
    image = random_image(layer_count=2)
    await push_blob(client, repo, image.config)
    await push_blob(client, repo, image.layers[0])
    # Present in the registry, but in another repository: not visible to this one.
    await push_blob(client, f"{owner.username}/other", image.layers[1])

    response = await put_manifest(client, repo, "v1", image.manifest)

    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "MANIFEST_BLOB_UNKNOWN"
    missing = digest_bytes(image.layers[1])
    assert error["detail"] == {"digest": missing, "missing": [missing]}
    assert await registry.context.pool.fetchval("SELECT count(*) FROM manifest") == 0


async def test_missing_config_is_manifest_blob_unknown(client: httpx.AsyncClient, repo: str) -> None:
    image = random_image(layer_count=1)
    await push_blob(client, repo, image.layers[0])

    response = await put_manifest(client, repo, "v1", image.manifest)

    assert response.status_code == 400
    assert error_of(response)["detail"]["digest"] == digest_bytes(image.config)  # type: ignore[index]


async def test_first_push_of_an_image_to_a_new_repository_needs_its_blobs(
    registry: Registry, client: httpx.AsyncClient, repo: str
) -> None:
    response = await put_manifest(client, repo, "v1", random_image().manifest)

    assert error_of(response)["code"] == "MANIFEST_BLOB_UNKNOWN"
    assert await registry.context.pool.fetchval("SELECT count(*) FROM repository") == 0


async def test_foreign_layers_with_urls_need_not_be_in_the_registry(
    client: httpx.AsyncClient, repo: str
) -> None:
    image = random_image(layer_count=1)
    await push_image_blobs(client, repo, image)
    foreign = descriptor(
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        os.urandom(64),
        urls=["https://example.com/layer.tar.gz"],
    )
    body = json.loads(docker_manifest(image))
    body["layers"].append(foreign)

    response = await put_manifest(client, repo, "v1", json.dumps(body).encode(), DOCKER_MANIFEST)

    assert response.status_code == 201, response.text


async def test_manifests_over_the_size_limit_are_refused(
    registry: Registry, client: httpx.AsyncClient, repo: str
) -> None:
    limit = registry.settings.max_manifest_bytes
    image = random_image()
    await push_image_blobs(client, repo, image)
    body = json.loads(image.manifest)
    body["annotations"] = {"padding": ""}
    body["annotations"]["padding"] = "x" * (limit + 1 - len(json.dumps(body)))
    oversized = json.dumps(body).encode()
    assert len(oversized) == limit + 1

    async def chunked() -> AsyncIterator[bytes]:
        for start in range(0, len(oversized), 65536):
            yield oversized[start : start + 65536]

    declared = await put_manifest(client, repo, "big", oversized)
    streamed = await client.put(
        f"/v2/{repo}/manifests/big", content=chunked(), headers={"Content-Type": OCI_MANIFEST}
    )

    for response in (declared, streamed):
        assert response.status_code == 413
        assert error_of(response)["code"] == "MANIFEST_INVALID"
    body["annotations"]["padding"] = body["annotations"]["padding"][1:]
    assert (await put_manifest(client, repo, "big", json.dumps(body).encode())).status_code == 201


def _image_manifest_with(**changes: object) -> bytes:
    body = json.loads(random_image().manifest)
    body.update(changes)
    return json.dumps({key: value for key, value in body.items() if value is not None}).encode()


_LAYER = {"mediaType": LAYER_TYPE, "digest": digest_bytes(b"layer"), "size": 5}


@pytest.mark.parametrize(
    ("body", "content_type", "complaint"),
    [
        pytest.param(b"{not json", OCI_MANIFEST, "not valid JSON", id="not-json"),
        pytest.param(b"[1, 2]", OCI_MANIFEST, "JSON object", id="array"),
        pytest.param(b"\xff\xfe\x00", OCI_MANIFEST, "not valid JSON", id="not-text"),
        pytest.param(_image_manifest_with(schemaVersion=1), OCI_MANIFEST, "schemaVersion", id="schema-1"),
        pytest.param(_image_manifest_with(schemaVersion="2"), OCI_MANIFEST, "schemaVersion", id="schema-str"),
        pytest.param(_image_manifest_with(config=None), OCI_MANIFEST, "config", id="no-config"),
        pytest.param(
            _image_manifest_with(layers=[{**_LAYER, "digest": "sha256:xyz"}]),
            OCI_MANIFEST,
            "layers.0.digest",
            id="bad-digest",
        ),
        pytest.param(
            _image_manifest_with(layers=[{**_LAYER, "size": -1}]),
            OCI_MANIFEST,
            "layers.0.size",
            id="negative-size",
        ),
        pytest.param(
            _image_manifest_with(layers=[{**_LAYER, "size": "5"}]),
            OCI_MANIFEST,
            "layers.0.size",
            id="string-size",
        ),
        pytest.param(
            _image_manifest_with(layers=[{"digest": _LAYER["digest"], "size": 5}]),
            OCI_MANIFEST,
            "mediaType",
            id="descriptor-without-media-type",
        ),
        pytest.param(
            _image_manifest_with(annotations={"a": 1}),
            OCI_MANIFEST,
            "annotations",
            id="annotation-not-string",
        ),
        pytest.param(
            _image_manifest_with(mediaType=None),
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            "unsupported",
            id="schema1",
        ),
        pytest.param(_image_manifest_with(mediaType="text/plain"), None, "unsupported", id="unknown-in-body"),
        pytest.param(
            _image_manifest_with(mediaType=OCI_INDEX),
            OCI_MANIFEST,
            "does not match",
            id="header-body-mismatch",
        ),
        pytest.param(
            _image_manifest_with(mediaType=None),
            DOCKER_MANIFEST,
            "must declare its mediaType",
            id="docker-without-media-type",
        ),
        pytest.param(
            json.dumps({"schemaVersion": 2, "manifests": "none"}).encode(),
            OCI_INDEX,
            "manifests",
            id="index-manifests-not-list",
        ),
    ],
)
async def test_malformed_manifests_are_manifest_invalid(
    client: httpx.AsyncClient, repo: str, body: bytes, content_type: str | None, complaint: str
) -> None:
    response = await put_manifest(client, repo, "v1", body, content_type)

    assert response.status_code == 400, response.text
    error = error_of(response)
    assert error["code"] == "MANIFEST_INVALID"
    assert complaint in str(error["message"])


async def test_media_type_comes_from_the_body_without_content_type(
    client: httpx.AsyncClient, repo: str
) -> None:
    image = random_image()
    await push_image_blobs(client, repo, image)
    index = index_of(image)

    assert (await put_manifest(client, repo, "image", image.manifest, None)).status_code == 201

    assert (await put_manifest(client, repo, "index", index, "application/json")).status_code == 201
    assert (await client.get(f"/v2/{repo}/manifests/image")).headers["content-type"] == OCI_MANIFEST
    assert (await client.get(f"/v2/{repo}/manifests/index")).headers["content-type"] == OCI_INDEX


async def test_index_children_must_be_manifests_of_the_repository(
    registry: Registry, client: httpx.AsyncClient, repo: str
) -> None:
    amd64, arm64 = random_image(), random_image()
    index = index_of(amd64, arm64)
    await push_image(client, repo, amd64, amd64.digest)

    refused = await put_manifest(client, repo, "multi", index, OCI_INDEX)
    assert refused.status_code == 400
    assert error_of(refused)["code"] == "MANIFEST_BLOB_UNKNOWN"
    assert error_of(refused)["detail"]["digest"] == arm64.digest  # type: ignore[index]

    await push_image(client, repo, arm64, arm64.digest)
    accepted = await put_manifest(client, repo, "multi", index, OCI_INDEX)
    assert accepted.status_code == 201, accepted.text
    fetched = await client.get(f"/v2/{repo}/manifests/multi")
    assert fetched.content == index
    assert fetched.headers["content-type"] == OCI_INDEX
    children = await registry.context.pool.fetch(
        "SELECT c.child_digest FROM manifest_child c JOIN manifest m ON m.id = c.manifest_id"
        " WHERE m.digest = $1",
        digest_bytes(index),
    )
    assert {row[0] for row in children} == {amd64.digest, arm64.digest}


async def test_docker_schema2_manifest_and_manifest_list(
    registry: Registry, client: httpx.AsyncClient, repo: str
) -> None:
    images = [random_image(), random_image()]
    manifests = [docker_manifest(image) for image in images]
    for image, manifest in zip(images, manifests, strict=True):
        await push_image_blobs(client, repo, image)
        pushed = await put_manifest(client, repo, digest_bytes(manifest), manifest, DOCKER_MANIFEST)
        assert pushed.status_code == 201, pushed.text
    manifest_list = docker_manifest_list(*manifests)

    pushed = await put_manifest(client, repo, "latest", manifest_list, DOCKER_MANIFEST_LIST)

    assert pushed.status_code == 201, pushed.text
    fetched = await client.get(f"/v2/{repo}/manifests/latest")
    assert fetched.content == manifest_list
    assert fetched.headers["content-type"] == DOCKER_MANIFEST_LIST
    child = await client.get(f"/v2/{repo}/manifests/{digest_bytes(manifests[0])}")
    assert child.headers["content-type"] == DOCKER_MANIFEST
    row = await registry.context.pool.fetchrow(
        "SELECT config_digest, artifact_type FROM manifest WHERE digest = $1", digest_bytes(manifests[0])
    )
    assert dict(row) == {"config_digest": digest_bytes(images[0].config), "artifact_type": None}
    linked = await registry.context.pool.fetch(
        "SELECT b.digest FROM manifest_blob b JOIN manifest m ON m.id = b.manifest_id WHERE m.digest = $1",
        digest_bytes(manifests[0]),
    )
    assert {r[0] for r in linked} == {digest_bytes(blob) for blob in (images[0].config, *images[0].layers)}


async def test_moving_a_tag_ends_its_previous_row(
    registry: Registry, client: httpx.AsyncClient, repo: str
) -> None:
    first, second = random_image(), random_image()
    await push_image(client, repo, first, "latest")
    await push_image(client, repo, second, "latest")
    await push_image(client, repo, second, "latest")

    assert (await client.get(f"/v2/{repo}/manifests/latest")).content == second.manifest
    rows = await registry.context.pool.fetch(
        "SELECT m.digest, t.lifetime_start, t.lifetime_end FROM tag t JOIN manifest m ON m.id = t.manifest_id"
        " WHERE t.name = 'latest' ORDER BY t.id"
    )
    assert [(row["digest"], row["lifetime_end"] is None) for row in rows] == [
        (first.digest, False),
        (second.digest, True),
    ]
    assert rows[0]["lifetime_end"] == rows[1]["lifetime_start"]
    assert (await client.get(f"/v2/{repo}/manifests/{first.digest}")).status_code == 200


async def test_concurrent_pushes_of_one_tag_leave_one_live_row(
    registry: Registry, client: httpx.AsyncClient, repo: str
) -> None:
    images = [random_image(layer_count=1) for _ in range(6)]
    for image in images:
        await push_image(client, repo, image, image.digest)

    responses = await asyncio.gather(
        *(put_manifest(client, repo, "race", image.manifest) for image in images)
    )

    assert [response.status_code for response in responses] == [201] * len(images)
    live = await registry.context.pool.fetch(
        "SELECT m.digest FROM tag t JOIN manifest m ON m.id = t.manifest_id"
        " WHERE t.name = 'race' AND t.lifetime_end IS NULL"
    )
    assert len(live) == 1
    assert (await client.get(f"/v2/{repo}/manifests/race")).headers["docker-content-digest"] == live[0][0]
    assert await registry.context.pool.fetchval("SELECT count(*) FROM tag WHERE name = 'race'") == len(images)


async def test_push_records_a_manifest_pushed_event_with_its_tags(
    registry: Registry, client: httpx.AsyncClient, repo: str, owner: Account
) -> None:
    image = random_image()
    await push_image(client, repo, image, "v1")

    rows = await registry.context.pool.fetch(
        "SELECT payload FROM event_outbox WHERE routing_key = 'manifest.pushed'"
    )

    assert len(rows) == 1
    payload = rows[0]["payload"]
    assert payload["namespace"] == owner.username
    assert payload["repository"] == "app"
    assert payload["digest"] == image.digest
    assert payload["media_type"] == OCI_MANIFEST
    assert payload["size"] == len(image.manifest)
    assert payload["tags"] == ["v1"]
    assert payload["pusher"] == owner.username


async def test_refused_push_records_nothing(registry: Registry, client: httpx.AsyncClient, repo: str) -> None:
    await put_manifest(client, repo, "v1", b"{")

    assert await registry.context.pool.fetchval("SELECT count(*) FROM event_outbox") == 0


async def test_delete_by_tag_ends_the_tag_and_keeps_the_manifest(
    registry: Registry, client: httpx.AsyncClient, repo: str
) -> None:
    image = random_image()
    await push_image(client, repo, image, "v1")

    deleted = await client.delete(f"/v2/{repo}/manifests/v1")

    assert deleted.status_code == 202
    assert (await client.get(f"/v2/{repo}/manifests/v1")).status_code == 404
    assert (await client.get(f"/v2/{repo}/manifests/{image.digest}")).status_code == 200
    ended = await registry.context.pool.fetchval("SELECT lifetime_end FROM tag WHERE name = 'v1'")
    assert ended is not None
    again = await client.delete(f"/v2/{repo}/manifests/v1")
    assert again.status_code == 404
    assert error_of(again)["code"] == "MANIFEST_UNKNOWN"


async def test_delete_by_digest_removes_the_manifest_and_its_tags(
    registry: Registry, client: httpx.AsyncClient, repo: str
) -> None:
    image = random_image()
    await push_image(client, repo, image, "v1")

    assert (await client.delete(f"/v2/{repo}/manifests/{image.digest}")).status_code == 202

    for reference in ("v1", image.digest):
        assert (await client.get(f"/v2/{repo}/manifests/{reference}")).status_code == 404
    assert await registry.context.pool.fetchval("SELECT count(*) FROM tag") == 0
    again = await client.delete(f"/v2/{repo}/manifests/{image.digest}")
    assert again.status_code == 404
    assert error_of(again)["code"] == "MANIFEST_UNKNOWN"


async def test_delete_in_an_unknown_repository_is_name_unknown(client: httpx.AsyncClient, repo: str) -> None:
    response = await client.delete(f"/v2/{repo}/manifests/{digest_bytes(b'x')}")

    assert response.status_code == 404
    assert error_of(response)["code"] == "NAME_UNKNOWN"


async def test_readers_may_not_push_or_delete(
    registry: Registry, client: httpx.AsyncClient, repo: str
) -> None:
    image = random_image()
    await push_image(client, repo, image, "v1")
    stranger = await registry.user()
    await registry.context.pool.execute("UPDATE repository SET visibility = 'public'")
    async with registry.client(stranger) as other:
        assert (await other.get(f"/v2/{repo}/manifests/v1")).status_code == 200
        pushed = await put_manifest(other, repo, "v2", image.manifest)
        deleted = await other.delete(f"/v2/{repo}/manifests/v1")
    for response in (pushed, deleted):
        assert response.status_code == 403
        assert error_of(response)["code"] == "DENIED"


@pytest.mark.parametrize("name", INVALID_REPOSITORY_NAMES)
@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "DELETE"])
async def test_invalid_repository_names_are_name_invalid(
    client: httpx.AsyncClient, name: str, method: str
) -> None:
    response = await client.request(
        method, f"/v2/{name}/manifests/latest", content=b"{}", headers={"Content-Type": OCI_MANIFEST}
    )

    assert response.status_code == 400
    if method != "HEAD":
        assert error_of(response)["code"] == "NAME_INVALID"
