"""Reject limits at push, against the in-process registry: refused at upload start (and mount) when the
namespace is already at its limit, at manifest PUT when the manifest's new blobs would take it over,
with Quay's 403 DENIED "Quota has been exceeded on namespace" and nothing new stored; shared blobs
count once per namespace; the system default; concurrent pushes never overshoot together; crossings
announced once each through the outbox."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from shared.oci.digest import digest_bytes
from shared.oci.mediatypes import OCI_MANIFEST
from tests.fixtures.registry import Account, Registry, registry_settings
from tests.support.oci import Image, error_code, push_blob, push_image, push_image_blobs, random_image
from tests.support.registry_app import running_registry

QUOTA_EXCEEDED = "Quota has been exceeded on namespace"


@pytest.fixture
async def owner(registry: Registry) -> Account:
    return await registry.user()


@pytest.fixture
async def org(registry: Registry, owner: Account) -> str:
    return await registry.organization(owner)


@pytest.fixture
async def client(registry: Registry, owner: Account) -> AsyncIterator[httpx.AsyncClient]:
    async with registry.client(owner) as opened:
        yield opened


def image_bytes(image: Image) -> int:
    """What the image adds to its namespace's usage: its config and layers (distinct blobs)."""
    return len(image.config) + sum(len(layer) for layer in image.layers)


def assert_quota_exceeded(response: httpx.Response) -> None:
    assert response.status_code == 403, response.text
    assert error_code(response) == "DENIED"
    assert response.json()["errors"][0]["message"] == QUOTA_EXCEEDED


async def set_quota(
    registry: Registry, namespace: str, limit_bytes: int, limits: list[tuple[str, int]]
) -> None:
    superuser = await registry.user(superuser=True)
    async with registry.client(superuser) as admin:
        assert (
            await admin.post(f"/api/v1/organization/{namespace}/quota", json={"limit_bytes": limit_bytes})
        ).is_success
        [quota] = (await admin.get(f"/api/v1/organization/{namespace}/quota")).json()
        for kind, percent in limits:
            body = {"type": kind, "threshold_percent": percent}
            response = await admin.post(
                f"/api/v1/organization/{namespace}/quota/{quota['id']}/limit", json=body
            )
            assert response.is_success, response.text


async def usage(registry: Registry, namespace: str) -> int:
    async with registry.context.pool.acquire() as conn:
        value = await conn.fetchval(
            "SELECT u.bytes FROM namespace_usage u JOIN namespace n ON n.id = u.namespace_id WHERE n.name = $1",
            namespace,
        )
    return int(value or 0)


async def stored_manifests(registry: Registry, namespace: str) -> set[str]:
    async with registry.context.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT m.digest FROM manifest m JOIN repository r ON r.id = m.repository_id"
            " JOIN namespace n ON n.id = r.namespace_id WHERE n.name = $1",
            namespace,
        )
    return {row[0] for row in rows}


async def announced(registry: Registry, namespace: str) -> list[tuple[str, int]]:
    async with registry.context.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT routing_key, payload FROM event_outbox WHERE routing_key LIKE 'quota.%' ORDER BY id"
        )
    events = [(row["routing_key"], row["payload"]) for row in rows]
    return [
        (key, payload["threshold_percent"]) for key, payload in events if payload["namespace"] == namespace
    ]


async def put_manifest(client: httpx.AsyncClient, name: str, image: Image, tag: str) -> httpx.Response:
    return await client.put(
        f"/v2/{name}/manifests/{tag}", content=image.manifest, headers={"Content-Type": OCI_MANIFEST}
    )


async def test_pushes_stop_at_the_reject_limit_and_nothing_new_is_stored(
    registry: Registry, org: str, client: httpx.AsyncClient
) -> None:
    first = random_image(layer_count=2, layer_size=3000)
    limit = 2 * image_bytes(first) - 100  # the first push crosses the Warning limit at 50 %
    await set_quota(registry, org, limit, [("Warning", 50), ("Reject", 100)])

    await push_image(client, f"{org}/app", first, "v1")
    assert await usage(registry, org) == image_bytes(first)
    # The same layers in another repository of the organization count once for it.
    shared = Image(config=first.config, layers=first.layers, extra={"annotations": {"copy": "yes"}})
    await push_image(client, f"{org}/other", shared, "v1")
    assert await usage(registry, org) == image_bytes(first)

    # Over the limit at manifest PUT: the upload starts (usage is under), the manifest is refused.
    big = random_image(layer_count=2, layer_size=4000)
    await push_image_blobs(client, f"{org}/app", big)
    before = await stored_manifests(registry, org)
    assert_quota_exceeded(await put_manifest(client, f"{org}/app", big, "big"))
    assert await stored_manifests(registry, org) == before
    assert await usage(registry, org) == image_bytes(first)
    tags = await client.get(f"/v2/{org}/app/tags/list")
    assert tags.json()["tags"] == ["v1"]

    # Exactly up to the limit is accepted: then every upload start and mount is refused.
    exact = random_image(layer_count=1, layer_size=1)
    exact.layers[0] = os.urandom(limit - image_bytes(first) - len(exact.config))
    await push_image(client, f"{org}/app", exact, "v2")
    assert await usage(registry, org) == limit
    assert_quota_exceeded(await client.post(f"/v2/{org}/app/blobs/uploads/"))
    mount = {"mount": digest_bytes(big.layers[0]), "from": f"{org}/app"}
    assert_quota_exceeded(await client.post(f"/v2/{org}/third/blobs/uploads/", params=mount))
    # A manifest of blobs already counted adds nothing: re-tagging still works at the limit.
    assert (await put_manifest(client, f"{org}/app", first, "again")).status_code == 201

    assert await announced(registry, org) == [("quota.warning", 50), ("quota.exceeded", 100)]

    # Raising the limit lets pushes through again (and re-arms the crossings); lowering it under
    # the usage announces them again at once, and holds pushes.
    superuser = await registry.user(superuser=True)
    async with registry.client(superuser) as admin:
        [quota] = (await admin.get(f"/api/v1/organization/{org}/quota")).json()
        path = f"/api/v1/organization/{org}/quota/{quota['id']}"
        assert (await admin.put(path, json={"limit_bytes": 10 * limit})).is_success
        assert (await put_manifest(client, f"{org}/app", big, "big")).status_code == 201
        assert (await admin.put(path, json={"limit_bytes": limit})).is_success
    assert await announced(registry, org) == [
        ("quota.warning", 50),
        ("quota.exceeded", 100),
        ("quota.exceeded", 100),
        ("quota.warning", 50),
    ]
    assert_quota_exceeded(await client.post(f"/v2/{org}/app/blobs/uploads/"))


async def test_namespaces_without_a_reject_limit_are_not_held(
    registry: Registry, org: str, client: httpx.AsyncClient
) -> None:
    await set_quota(registry, org, 1000, [("Warning", 80)])
    image = random_image(layer_count=1, layer_size=4000)
    await push_image(client, f"{org}/app", image, "v1")
    assert (await client.post(f"/v2/{org}/app/blobs/uploads/")).status_code == 202


async def test_a_users_quota_gets_its_reject_limit_on_the_quota_paths_as_in_quay(
    registry: Registry, owner: Account, client: httpx.AsyncClient
) -> None:
    """A superuser makes a user's quota on the superuser path, then adds its limits on the paths of
    an existing quota, which take a user's namespace name as in Quay; the user's pushes then stop
    at the limit, and the user reads the limits on /api/v1/user/quota."""
    first = random_image(layer_count=1, layer_size=3000)
    limit = image_bytes(first) + 500
    superuser = await registry.user(superuser=True)
    quotas = f"/api/v1/superuser/users/{owner.username}/quota"
    async with registry.client(superuser) as admin:
        assert (await admin.post(quotas, json={"limit_bytes": limit})).status_code == 201
        [quota] = (await admin.get(quotas)).json()
        limits = f"/api/v1/organization/{owner.username}/quota/{quota['id']}/limit"
        response = await admin.post(limits, json={"type": "Reject", "threshold_percent": 100})
        assert response.status_code == 201, response.text
        # An unknown namespace is a 404.
        unknown = await admin.post(
            f"/api/v1/organization/nobody-{owner.username}/quota/{quota['id']}/limit",
            json={"type": "Warning", "threshold_percent": 50},
        )
        assert unknown.status_code == 404
    [own] = (await client.get("/api/v1/user/quota")).json()
    assert [(item["type"], item["limit_percent"]) for item in own["limits"]] == [("Reject", 100)]
    # The user cannot change it.
    changed = await client.post(limits, json={"type": "Warning", "threshold_percent": 50})
    assert changed.status_code == 403

    await push_image(client, f"{owner.username}/app", first, "v1")
    second = random_image(layer_count=1, layer_size=3000)
    await push_image_blobs(client, f"{owner.username}/app", second)
    assert_quota_exceeded(await put_manifest(client, f"{owner.username}/app", second, "v2"))


async def test_the_system_default_rejects_every_namespace_without_a_quota(
    database_url: str, tmp_path: Path
) -> None:
    image = random_image(layer_count=1, layer_size=2000)
    settings = registry_settings(
        database_url, tmp_path / "storage", default_system_reject_quota_bytes=image_bytes(image) + 10
    )
    async with running_registry(settings) as registry:
        owner = await registry.user()
        org = await registry.organization(owner)
        async with registry.client(owner) as client:
            await push_image(client, f"{org}/app", image, "v1")
            second = random_image(layer_count=1, layer_size=2000)
            await push_image_blobs(client, f"{org}/app", second)
            assert_quota_exceeded(await put_manifest(client, f"{org}/app", second, "v2"))
            # The user's own namespace has the default as well.
            await push_image(client, f"{owner.username}/app", second, "v1")
            await push_image_blobs(client, f"{owner.username}/app", image)
            assert_quota_exceeded(await put_manifest(client, f"{owner.username}/app", image, "v2"))
        # A quota of its own replaces the default.
        await set_quota(registry, org, 100 * image_bytes(image), [])
        async with registry.client(owner) as client:
            assert (await put_manifest(client, f"{org}/app", second, "v2")).status_code == 201


async def test_concurrent_pushes_cannot_together_overshoot(
    registry: Registry, org: str, client: httpx.AsyncClient
) -> None:
    images = [random_image(layer_count=1, layer_size=3000) for _ in range(8)]
    limit = 3 * image_bytes(images[0]) + 500
    await set_quota(registry, org, limit, [("Reject", 100)])
    for image in images:
        await push_blob(client, f"{org}/app", image.config)
        await push_blob(client, f"{org}/app", image.layers[0])

    answers = await asyncio.gather(
        *(put_manifest(client, f"{org}/app", image, f"t{index}") for index, image in enumerate(images))
    )

    accepted = [image for image, answer in zip(images, answers, strict=True) if answer.status_code == 201]
    for answer in answers:
        if answer.status_code != 201:
            assert_quota_exceeded(answer)
    assert len(accepted) == 3
    assert await usage(registry, org) == sum(image_bytes(image) for image in accepted) <= limit


async def test_a_manifest_deleted_by_digest_is_released_at_once(
    registry: Registry, org: str, client: httpx.AsyncClient
) -> None:
    await set_quota(registry, org, 10**9, [("Reject", 100)])
    kept = random_image(layer_count=1, layer_size=2000)
    await push_image(client, f"{org}/app", kept, "v1")
    # An untagged manifest (pushed by digest) sharing the kept image's layer, and a tagged one.
    untagged = Image(config=kept.config, layers=[kept.layers[0], os.urandom(3000)])
    digest = digest_bytes(untagged.manifest)
    await push_image_blobs(client, f"{org}/app", untagged)
    assert (await put_manifest(client, f"{org}/app", untagged, digest)).status_code == 201
    tagged = random_image(layer_count=1, layer_size=2500)
    await push_image(client, f"{org}/app", tagged, "v2")
    assert await usage(registry, org) == image_bytes(kept) + 3000 + image_bytes(tagged)

    assert (await client.delete(f"/v2/{org}/app/manifests/{digest}")).status_code == 202
    assert await usage(registry, org) == image_bytes(kept) + image_bytes(tagged)
    tagged_digest = digest_bytes(tagged.manifest)
    assert (await client.delete(f"/v2/{org}/app/manifests/{tagged_digest}")).status_code == 202
    assert await usage(registry, org) == image_bytes(kept)
    assert (await client.delete(f"/v2/{org}/app/manifests/{tagged_digest}")).status_code == 404
