"""Manifest labels: the API's labels, the pushed manifest's own, and quay.expires-after on push."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from typing import Any

import httpx
import pytest

from services.registry.domain.manifest_labels import INVALID_KEY_MESSAGE, RESERVED_PREFIX_MESSAGE
from tests.api.conftest import Organization
from tests.fixtures.registry import Registry
from tests.support.oci import Image, push_image, random_image


@pytest.fixture
def repository(organization: Organization) -> str:
    return f"{organization.name}/app"


@pytest.fixture
async def owner_client(registry: Registry, organization: Organization) -> Any:
    async with registry.client(organization.owner) as client:
        yield client


def labels_path(repository: str, digest: str, label_id: str | None = None) -> str:
    base = f"/api/v1/repository/{repository}/manifest/{digest}/labels"
    return base if label_id is None else f"{base}/{label_id}"


def labelled_image(labels: dict[str, str], **extra: object) -> Image:
    """An image whose config carries ``labels`` as docker build writes them (config.Labels)."""
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Labels": labels},
        "nonce": os.urandom(8).hex(),
    }
    return Image(config=json.dumps(config).encode(), layers=[os.urandom(64)], extra=extra)


async def tag_row(registry: Registry, repository: str, tag: str) -> Any:
    """The live row of a tag: its start and end."""
    namespace, _, name = repository.partition("/")
    async with registry.context.pool.acquire() as conn:
        return await conn.fetchrow(
            "SELECT t.lifetime_start, t.lifetime_end, t.expiry_pending FROM tag t"
            " JOIN repository r ON r.id = t.repository_id JOIN namespace n ON n.id = r.namespace_id"
            " WHERE n.name = $1 AND r.name = $2 AND t.name = $3"
            " AND (t.lifetime_end IS NULL OR t.lifetime_end > now())",
            namespace,
            name,
            tag,
        )


async def test_labels_are_added_listed_fetched_and_deleted(
    registry: Registry, owner_client: httpx.AsyncClient, repository: str
) -> None:
    digest = await push_image(owner_client, repository, random_image(layer_count=1), "v1")
    added = await owner_client.post(
        labels_path(repository, digest),
        json={"key": "com.example.release", "value": "2023-11-14", "media_type": None},
    )
    as_json = await owner_client.post(
        labels_path(repository, digest), json={"key": "meta", "value": '{"a": 1}'}
    )
    label = added.json()["label"]
    listed = (await owner_client.get(labels_path(repository, digest))).json()
    filtered = (await owner_client.get(labels_path(repository, digest), params={"filter": "com."})).json()
    fetched = await owner_client.get(labels_path(repository, digest, label["id"]))
    deleted = await owner_client.delete(labels_path(repository, digest, label["id"]))
    after = await owner_client.get(labels_path(repository, digest, label["id"]))
    deleted_again = await owner_client.delete(labels_path(repository, digest, label["id"]))
    assert added.status_code == 201, added.text
    assert label == {
        "id": label["id"],
        "key": "com.example.release",
        "value": "2023-11-14",
        "source_type": "api",
        "media_type": "text/plain",
    }
    assert (
        added.headers["location"] == f"/api/v1/repository/{repository}/manifest/{digest}/labels/{label['id']}"
    )
    assert as_json.json()["label"]["media_type"] == "application/json"
    assert [entry["key"] for entry in listed["labels"]] == ["com.example.release", "meta"]
    assert [entry["key"] for entry in filtered["labels"]] == ["com.example.release"]
    assert fetched.json() == label
    assert deleted.status_code == 204 and after.status_code == 404 and deleted_again.status_code == 404
    async with registry.context.pool.acquire() as conn:
        kinds = await conn.fetch("SELECT kind FROM log_entry WHERE kind LIKE 'manifest_label_%' ORDER BY id")
    assert [row["kind"] for row in kinds] == [
        "manifest_label_add",
        "manifest_label_add",
        "manifest_label_delete",
    ]


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"key": "Release", "value": "x"}, INVALID_KEY_MESSAGE),
        ({"key": "-release", "value": "x"}, INVALID_KEY_MESSAGE),
        ({"key": "a..b", "value": "x"}, INVALID_KEY_MESSAGE),
        ({"key": "key=value", "value": "x"}, INVALID_KEY_MESSAGE),
        ({"key": "", "value": "x"}, INVALID_KEY_MESSAGE),
        ({"key": "a" * 256, "value": "x"}, INVALID_KEY_MESSAGE),
        ({"key": "quay.expires-after", "value": "1d"}, RESERVED_PREFIX_MESSAGE),
        ({"key": "com.docker.thing", "value": "x"}, RESERVED_PREFIX_MESSAGE),
        ({"key": "ok", "value": "x", "media_type": "text/html"}, None),
        ({"key": "ok", "value": 5}, None),
        ({"key": "ok"}, None),
    ],
)
async def test_bad_labels_are_refused_with_quays_messages(
    owner_client: httpx.AsyncClient, repository: str, body: dict[str, Any], detail: str | None
) -> None:
    digest = await push_image(owner_client, repository, random_image(layer_count=1), "v1")
    response = await owner_client.post(labels_path(repository, digest), json=body)
    listed = (await owner_client.get(labels_path(repository, digest))).json()
    assert response.status_code == 400
    if detail is None:
        assert response.json()["detail"]
    else:
        assert response.json()["detail"] == detail
    assert listed == {"labels": []}


async def test_unknown_manifests_and_labels_are_not_found(
    owner_client: httpx.AsyncClient, repository: str
) -> None:
    digest = await push_image(owner_client, repository, random_image(layer_count=1), "v1")
    missing = "sha256:" + "1" * 64
    unknown_manifest = await owner_client.get(labels_path(repository, missing))
    invalid_digest = await owner_client.get(labels_path(repository, "latest"))
    unknown_label = await owner_client.get(labels_path(repository, digest, "not-a-uuid"))
    add_to_missing = await owner_client.post(
        labels_path(repository, missing), json={"key": "a", "value": "b"}
    )
    assert unknown_manifest.status_code == 404 and add_to_missing.status_code == 404
    assert invalid_digest.status_code == 400 and unknown_label.status_code == 404


async def test_readers_list_labels_writers_change_them(
    registry: Registry, owner_client: httpx.AsyncClient, repository: str
) -> None:
    reader = await registry.user()
    digest = await push_image(owner_client, repository, random_image(layer_count=1), "v1")
    await owner_client.put(
        f"/api/v1/repository/{repository}/permissions/user/{reader.username}", json={"role": "read"}
    )
    label = (await owner_client.post(labels_path(repository, digest), json={"key": "a", "value": "b"})).json()
    async with registry.client(reader) as client:
        listed = await client.get(labels_path(repository, digest))
        added = await client.post(labels_path(repository, digest), json={"key": "c", "value": "d"})
        deleted = await client.delete(labels_path(repository, digest, label["label"]["id"]))
    assert listed.status_code == 200 and added.status_code == 403 and deleted.status_code == 403


async def test_a_pushed_image_brings_its_config_labels_and_annotations(
    owner_client: httpx.AsyncClient, repository: str
) -> None:
    image = labelled_image(
        {"org.opencontainers.image.version": "1.2", "maintainer": "ops"},
        annotations={"org.opencontainers.image.source": "https://example.com/app"},
    )
    digest = await push_image(owner_client, repository, image, "v1")
    await push_image(owner_client, repository, image, "v1-again")
    labels = (await owner_client.get(labels_path(repository, digest))).json()["labels"]
    own = labels[0]
    refused = await owner_client.delete(labels_path(repository, digest, own["id"]))
    assert sorted((entry["key"], entry["value"], entry["source_type"]) for entry in labels) == [
        ("maintainer", "ops", "manifest"),
        ("org.opencontainers.image.source", "https://example.com/app", "manifest"),
        ("org.opencontainers.image.version", "1.2", "manifest"),
    ]
    assert refused.status_code == 400 and refused.json()["detail"] == "Cannot delete immutable label"


@pytest.mark.parametrize(
    ("value", "duration"),
    [
        ("2w", timedelta(weeks=2)),
        ("1d", timedelta(days=1)),
        ("3h", timedelta(hours=3)),
        ("90m", timedelta(minutes=90)),
    ],
)
async def test_quay_expires_after_in_the_config_expires_the_pushed_tag(
    registry: Registry, owner_client: httpx.AsyncClient, repository: str, value: str, duration: timedelta
) -> None:
    await push_image(owner_client, repository, labelled_image({"quay.expires-after": value}), "nightly")
    row = await tag_row(registry, repository, "nightly")
    history = (await owner_client.get(f"/api/v1/repository/{repository}/tag/")).json()["tags"]
    assert row["lifetime_end"] - row["lifetime_start"] == duration and row["expiry_pending"]
    assert history[0]["end_ts"] == int(row["lifetime_end"].timestamp())
    assert (await owner_client.get(f"/v2/{repository}/manifests/nightly")).status_code == 200


async def test_quay_expires_after_as_an_annotation_expires_the_pushed_tag(
    registry: Registry, owner_client: httpx.AsyncClient, repository: str
) -> None:
    artifact = random_image(layer_count=1, annotations={"quay.expires-after": "30s"})
    await push_image(owner_client, repository, artifact, "scan")
    row = await tag_row(registry, repository, "scan")
    assert row["lifetime_end"] - row["lifetime_start"] == timedelta(seconds=30)


@pytest.mark.parametrize("value", ["soon", "2", "0d", "-1d", "1y", ""])
async def test_unreadable_expires_after_values_are_ignored(
    registry: Registry, owner_client: httpx.AsyncClient, repository: str, value: str
) -> None:
    await push_image(owner_client, repository, labelled_image({"quay.expires-after": value}), "v1")
    row = await tag_row(registry, repository, "v1")
    assert row["lifetime_end"] is None


async def test_expires_after_is_capped_and_a_repush_keeps_the_tag_as_it_is(
    registry: Registry, owner_client: httpx.AsyncClient, repository: str
) -> None:
    image = labelled_image({"quay.expires-after": "999999999w"})
    await push_image(owner_client, repository, image, "v1")
    capped = await tag_row(registry, repository, "v1")
    await owner_client.put(f"/api/v1/repository/{repository}/tag/v1", json={"expiration": None})
    await push_image(owner_client, repository, image, "v1")
    after_repush = await tag_row(registry, repository, "v1")
    assert capped["lifetime_end"] - capped["lifetime_start"] == timedelta(weeks=104)
    assert after_repush["lifetime_end"] is None
