"""The time machine: a deleted tag stays restorable for its namespace's window, and is pulled again
over /v2 once restored; after the window (or with a 0s window) it can no longer be restored."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.fixtures.registry import Account, Registry
from tests.support.oci import Image, push_image, random_image


@pytest.fixture
async def org_owner(registry: Registry) -> Account:
    return await registry.user()


@pytest.fixture
async def organization(registry: Registry, org_owner: Account) -> str:
    return await registry.organization(org_owner)


@pytest.fixture
async def owner_client(registry: Registry, org_owner: Account) -> Any:
    async with registry.client(org_owner) as client:
        yield client


def tag_path(repository: str, tag: str) -> str:
    return f"/api/v1/repository/{repository}/tag/{tag}"


async def restore(client: httpx.AsyncClient, repository: str, tag: str, digest: str | None) -> httpx.Response:
    body = {} if digest is None else {"manifest_digest": digest}
    return await client.post(f"{tag_path(repository, tag)}/restore", json=body)


async def pulled_digest(client: httpx.AsyncClient, repository: str, tag: str) -> str | None:
    response = await client.get(f"/v2/{repository}/manifests/{tag}")
    return response.headers["docker-content-digest"] if response.status_code == 200 else None


async def set_window(client: httpx.AsyncClient, organization: str, seconds: int) -> None:
    response = await client.put(f"/api/v1/organization/{organization}", json={"tag_expiration_s": seconds})
    assert response.status_code == 200, response.text


async def test_a_deleted_tag_is_restored_and_pulled_again(
    registry: Registry, owner_client: httpx.AsyncClient, organization: str
) -> None:
    repository = f"{organization}/app"
    image = random_image(layer_count=2)
    digest = await push_image(owner_client, repository, image, "latest")
    deleted = await owner_client.delete(tag_path(repository, "latest"))
    gone = await pulled_digest(owner_client, repository, "latest")
    restored = await restore(owner_client, repository, "latest", digest)
    pulled = await owner_client.get(f"/v2/{repository}/manifests/latest")
    history = (await owner_client.get(f"/api/v1/repository/{repository}/tag/")).json()["tags"]
    assert deleted.status_code == 204 and gone is None
    assert restored.status_code == 200, restored.text
    assert restored.json() == {}
    assert pulled.status_code == 200 and pulled.content == image.manifest
    assert [(tag["reversion"], "end_ts" in tag) for tag in history] == [(True, False), (False, True)]
    async with registry.context.pool.acquire() as conn:
        logged = await conn.fetchval("SELECT count(*) FROM log_entry WHERE kind = 'revert_tag'")
    assert logged == 1


async def test_a_moved_tag_is_restored_to_its_former_manifest(
    owner_client: httpx.AsyncClient, organization: str
) -> None:
    repository = f"{organization}/app"
    former, current = random_image(), random_image()
    former_digest = await push_image(owner_client, repository, former, "stable")
    await push_image(owner_client, repository, current, "stable")
    restored = await restore(owner_client, repository, "stable", former_digest)
    assert restored.status_code == 200
    assert await pulled_digest(owner_client, repository, "stable") == former_digest
    again = await restore(owner_client, repository, "stable", former_digest)
    assert again.status_code == 200


async def test_with_a_0s_window_a_deleted_tag_cannot_be_restored(
    owner_client: httpx.AsyncClient, organization: str
) -> None:
    repository = f"{organization}/app"
    await set_window(owner_client, organization, 0)
    digest = await push_image(owner_client, repository, random_image(), "latest")
    await owner_client.delete(tag_path(repository, "latest"))
    refused = await restore(owner_client, repository, "latest", digest)
    assert refused.status_code == 400
    assert "can no longer be restored" in refused.json()["detail"]
    assert "0 seconds" in refused.json()["detail"]
    assert await pulled_digest(owner_client, repository, "latest") is None


async def test_once_the_window_has_passed_a_deleted_tag_cannot_be_restored(
    registry: Registry, owner_client: httpx.AsyncClient, organization: str
) -> None:
    repository = f"{organization}/app"
    await set_window(owner_client, organization, 86_400)
    kept, expired = random_image(), random_image()
    kept_digest = await push_image(owner_client, repository, kept, "kept")
    expired_digest = await push_image(owner_client, repository, expired, "old")
    await owner_client.delete(tag_path(repository, "kept"))
    await owner_client.delete(tag_path(repository, "old"))
    async with registry.context.pool.acquire() as conn:
        # A day and a second have passed since 'old' was deleted.
        await conn.execute(
            "UPDATE tag SET lifetime_start = lifetime_start - interval '1 day 1 second',"
            " lifetime_end = lifetime_end - interval '1 day 1 second' WHERE name = 'old'"
        )
    refused = await restore(owner_client, repository, "old", expired_digest)
    allowed = await restore(owner_client, repository, "kept", kept_digest)
    assert refused.status_code == 400 and "86400 seconds" in refused.json()["detail"]
    assert allowed.status_code == 200
    assert await pulled_digest(owner_client, repository, "kept") == kept_digest


async def test_restores_need_a_manifest_the_tag_pointed_at(
    owner_client: httpx.AsyncClient, organization: str
) -> None:
    repository = f"{organization}/app"
    tagged: Image = random_image()
    digest = await push_image(owner_client, repository, tagged, "v1")
    other = await push_image(owner_client, repository, random_image(), "v2")
    await owner_client.delete(tag_path(repository, "v1"))
    missing_digest = await restore(owner_client, repository, "v1", None)
    never_there = await restore(owner_client, repository, "v1", other)
    unknown = await restore(owner_client, repository, "v1", "sha256:" + "2" * 64)
    malformed = await restore(owner_client, repository, "v1", "v2")
    bad_tag = await restore(owner_client, repository, ".v1", digest)
    assert missing_digest.status_code == 400 and missing_digest.json()["detail"] == "Missing manifest_digest"
    assert never_there.status_code == 404 and unknown.status_code == 404
    assert malformed.status_code == 400 and bad_tag.status_code == 400
    assert await pulled_digest(owner_client, repository, "v1") is None
