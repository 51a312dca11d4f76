"""Repositories through /api/v1/repository: create, list, view, describe, visibility, state, delete."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from services.registry.api.repositories import REPOSITORIES_PER_PAGE
from tests.api.conftest import Organization, Tokens
from tests.fixtures.registry import Account, Registry
from tests.support.gc import collect_garbage
from tests.support.oci import push_image, random_image

API = "/api/v1/repository"


async def create(client: httpx.AsyncClient, namespace: str, name: str, **extra: Any) -> httpx.Response:
    body: dict[str, Any] = {
        "namespace": namespace,
        "repository": name,
        "visibility": "private",
        "description": "",
        **extra,
    }
    return await client.post(API, json=body)


async def grant(registry: Registry, repository: str, username: str, role: str, admin: Account) -> None:
    async with registry.client(admin) as client:
        response = await client.put(f"{API}/{repository}/permissions/user/{username}", json={"role": role})
    assert response.status_code == 200, response.text


async def log_kinds(registry: Registry, repository: str) -> list[str]:
    namespace, _, name = repository.partition("/")
    async with registry.context.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT l.kind FROM log_entry l JOIN namespace n ON n.id = l.namespace_id"
            " WHERE n.name = $1 AND l.repository = $2 ORDER BY l.id",
            namespace,
            name,
        )
    return [row["kind"] for row in rows]


async def test_creating_a_repository_answers_quays_shape_and_grants_default_permissions(
    registry: Registry, organization: Organization
) -> None:
    reader = await registry.user()
    async with registry.client(organization.owner) as client:
        await client.post(
            f"/api/v1/organization/{organization.name}/prototypes",
            json={"role": "read", "delegate": {"kind": "user", "name": reader.username}},
        )
        created = await create(
            client,
            organization.name,
            "team/app",
            visibility="public",
            description="**docs**",
            repo_kind="image",
        )
        again = await create(client, organization.name, "team/app")
        fetched = (await client.get(f"{API}/{organization.name}/team/app")).json()
        permissions = (await client.get(f"{API}/{organization.name}/team/app/permissions/user/")).json()
    assert created.status_code == 201, created.text
    assert created.json() == {"namespace": organization.name, "name": "team/app", "kind": "image"}
    assert again.status_code == 400 and again.json()["detail"] == "Repository already exists"
    assert fetched["description"] == "**docs**" and fetched["is_public"] is True
    assert fetched["is_organization"] is True and fetched["state"] == "NORMAL" and fetched["tags"] == {}
    assert permissions["permissions"][reader.username]["role"] == "read"
    assert await log_kinds(registry, f"{organization.name}/team/app") == ["create_repo"]


async def test_a_user_creates_in_its_own_namespace_by_default(registry: Registry) -> None:
    alice = await registry.user()
    async with registry.client(alice) as client:
        created = await client.post(API, json={"repository": "app", "visibility": "private"})
        fetched = await client.get(f"{API}/{alice.username}/app")
    assert created.status_code == 201 and created.json()["namespace"] == alice.username
    assert fetched.json()["can_admin"] is True and fetched.json()["is_organization"] is False


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"repository": "app", "visibility": "secret"}, 400),
        ({"repository": "app", "visibility": 1}, 400),
        ({"repository": ["app"], "visibility": "private"}, 400),
        ({"repository": "App", "visibility": "private"}, 400),
        ({"repository": "a/../b", "visibility": "private"}, 400),
        ({"repository": "a b", "visibility": "private"}, 400),
        ({"repository": "a//b", "visibility": "private"}, 400),
        ({"repository": "app/tag/x", "visibility": "private"}, 400),
        ({"repository": "app", "visibility": "private", "repo_kind": "application"}, 400),
        ({"visibility": "private"}, 400),
        ({"repository": "app", "visibility": "private", "namespace": "nobody-here"}, 404),
    ],
)
async def test_bad_creations_are_refused_with_a_detail(
    registry: Registry, organization: Organization, body: dict[str, Any], status: int
) -> None:
    async with registry.client(organization.owner) as client:
        response = await client.post(API, json={"namespace": organization.name, **body})
        listed = (await client.get(API, params={"namespace": organization.name})).json()
    assert response.status_code == status, response.text
    assert response.json()["detail"]
    assert listed["repositories"] == []


async def test_only_creators_of_a_namespace_create_there(
    registry: Registry, organization: Organization
) -> None:
    member, outsider = await registry.user(), await registry.user()
    async with registry.client(organization.owner) as client:
        await client.put(f"/api/v1/organization/{organization.name}/team/devs", json={"role": "member"})
        await client.put(f"/api/v1/organization/{organization.name}/team/devs/members/{member.username}")
    async with registry.client(member) as client:
        by_member = await create(client, organization.name, "app")
    async with registry.client(outsider) as client:
        by_outsider = await create(client, organization.name, "app")
    async with registry.client() as client:
        anonymous = await create(client, organization.name, "app")
    assert by_member.status_code == 403 and by_outsider.status_code == 403
    assert anonymous.status_code == 401


async def test_tokens_need_the_repo_create_scope(
    registry: Registry, organization: Organization, tokens: Tokens
) -> None:
    async with tokens.with_scopes(organization.owner, ["repo:read"]) as client:
        refused = await create(client, organization.name, "app")
    async with tokens.with_scopes(organization.owner, ["repo:create"]) as client:
        allowed = await create(client, organization.name, "app")
    assert refused.status_code == 403 and "repo:create" in refused.json()["detail"]
    assert allowed.status_code == 201


async def test_listing_shows_only_what_the_caller_may_read(
    registry: Registry, organization: Organization
) -> None:
    reader, outsider = await registry.user(), await registry.user()
    async with registry.client(organization.owner) as client:
        for name, visibility in (("granted", "private"), ("hidden", "private"), ("open", "public")):
            assert (await create(client, organization.name, name, visibility=visibility)).status_code == 201
        await push_image(client, f"{organization.name}/open", random_image(layer_count=1), "latest")
        as_owner = (
            await client.get(API, params={"namespace": organization.name, "last_modified": "true"})
        ).json()
    await grant(registry, f"{organization.name}/granted", reader.username, "read", organization.owner)

    async def names(account: Account | None, **params: str) -> list[str]:
        async with registry.client(account) as client:
            answer = (await client.get(API, params=params)).json()
        return [entry["name"] for entry in answer["repositories"]]

    assert [entry["name"] for entry in as_owner["repositories"]] == ["granted", "hidden", "open"]
    assert as_owner["repositories"][2]["last_modified"] > 0
    assert as_owner["repositories"][0]["last_modified"] is None
    assert await names(reader, namespace=organization.name) == ["granted", "open"]
    assert await names(outsider, namespace=organization.name) == ["open"]
    assert await names(None, namespace=organization.name) == ["open"]
    assert await names(None, public="true") == ["open"]
    assert await names(reader, starred="true") == []


async def test_listing_needs_a_namespace_public_or_starred(registry: Registry) -> None:
    async with registry.client(await registry.user()) as client:
        response = await client.get(API)
    assert response.status_code == 400
    assert response.json()["detail"] == "namespace, starred or public are required for this API call"


async def test_listing_is_paginated_with_next_page(registry: Registry, organization: Organization) -> None:
    async with registry.context.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO repository (namespace_id, name)"
            " SELECT n.id, 'repo' || lpad(i::text, 3, '0') FROM namespace n, generate_series(1, $2) i"
            " WHERE n.name = $1",
            organization.name,
            REPOSITORIES_PER_PAGE + 5,
        )
    async with registry.client(organization.owner) as client:
        first = (await client.get(API, params={"namespace": organization.name})).json()
        second = (
            await client.get(API, params={"namespace": organization.name, "next_page": first["next_page"]})
        ).json()
    assert len(first["repositories"]) == REPOSITORIES_PER_PAGE
    assert [entry["name"] for entry in second["repositories"]] == [
        f"repo{index:03d}" for index in range(REPOSITORIES_PER_PAGE + 1, REPOSITORIES_PER_PAGE + 6)
    ]
    assert "next_page" not in second


async def test_a_repository_shows_its_live_tags_and_what_the_caller_may_do(
    registry: Registry, organization: Organization
) -> None:
    reader = await registry.user()
    repository = f"{organization.name}/app"
    image = random_image(layer_count=2, layer_size=100)
    async with registry.client(organization.owner) as client:
        digest = await push_image(client, repository, image, "v1")
        await push_image(client, repository, image, "v2")
        await client.delete(f"/v2/{repository}/manifests/v2")
        as_owner = (await client.get(f"{API}/{repository}")).json()
        without_tags = (await client.get(f"{API}/{repository}", params={"includeTags": "false"})).json()
    await grant(registry, repository, reader.username, "read", organization.owner)
    async with registry.client(reader) as client:
        as_reader = (await client.get(f"{API}/{repository}")).json()
    assert list(as_owner["tags"]) == ["v1"]
    tag = as_owner["tags"]["v1"]
    assert tag["manifest_digest"] == digest and tag["size"] == 200 and tag["last_modified"]
    assert "expiration" not in tag and "tags" not in without_tags
    assert (as_owner["can_write"], as_owner["can_admin"]) == (True, True)
    assert (as_reader["can_write"], as_reader["can_admin"]) == (False, False)
    assert as_owner["tag_expiration_s"] == 1_209_600


async def test_private_repositories_reveal_nothing_to_those_who_cannot_read_them(
    registry: Registry, organization: Organization
) -> None:
    outsider = await registry.user()
    async with registry.client(organization.owner) as client:
        await create(client, organization.name, "secret")
        missing_for_admin = await client.get(f"{API}/{organization.name}/missing")
        invalid = await client.get(f"{API}/{organization.name}/Bad..Name")
    async with registry.client(outsider) as client:
        existing = await client.get(f"{API}/{organization.name}/secret")
        missing = await client.get(f"{API}/{organization.name}/missing")
    async with registry.client() as client:
        anonymous = await client.get(f"{API}/{organization.name}/secret")
    assert missing_for_admin.status_code == 404
    assert invalid.status_code == 400 and invalid.json()["detail"] == "Invalid repository name"
    assert existing.status_code == missing.status_code == 403
    assert existing.json() == missing.json()
    assert anonymous.status_code == 401


async def test_writers_change_the_description(registry: Registry, organization: Organization) -> None:
    writer, reader = await registry.user(), await registry.user()
    repository = f"{organization.name}/app"
    async with registry.client(organization.owner) as client:
        await create(client, organization.name, "app")
    await grant(registry, repository, writer.username, "write", organization.owner)
    await grant(registry, repository, reader.username, "read", organization.owner)
    async with registry.client(writer) as client:
        changed = await client.put(f"{API}/{repository}", json={"description": "new"})
        unknown_field = await client.put(f"{API}/{repository}", json={"description": "x", "name": "y"})
        wrong_type = await client.put(f"{API}/{repository}", json={"description": 3})
        described = (await client.get(f"{API}/{repository}")).json()["description"]
    async with registry.client(reader) as client:
        refused = await client.put(f"{API}/{repository}", json={"description": "mine"})
    assert changed.status_code == 200 and changed.json() == {"success": True}
    assert unknown_field.status_code == 200 and wrong_type.status_code == 400  # unknown fields: ignored
    assert described == "x" and refused.status_code == 403
    assert (await log_kinds(registry, repository))[-1] == "set_repo_description"


async def test_admins_make_a_repository_public(registry: Registry, organization: Organization) -> None:
    writer = await registry.user()
    repository = f"{organization.name}/app"
    async with registry.client(organization.owner) as client:
        await push_image(client, repository, random_image(layer_count=1), "latest")
    await grant(registry, repository, writer.username, "write", organization.owner)
    async with registry.client() as anonymous:
        before = await anonymous.get(f"/v2/{repository}/manifests/latest")
    async with registry.client(writer) as client:
        by_writer = await client.post(f"{API}/{repository}/changevisibility", json={"visibility": "public"})
    async with registry.client(organization.owner) as client:
        bad = await client.post(f"{API}/{repository}/changevisibility", json={"visibility": "everyone"})
        changed = await client.post(f"{API}/{repository}/changevisibility", json={"visibility": "public"})
    async with registry.client() as anonymous:
        after = await anonymous.get(f"/v2/{repository}/manifests/latest")
        viewed = await anonymous.get(f"{API}/{repository}")
    assert before.status_code == 401 and by_writer.status_code == 403 and bad.status_code == 400
    assert changed.json() == {"success": True}
    assert after.status_code == 200 and viewed.json()["is_public"] is True
    assert "change_repo_visibility" in await log_kinds(registry, repository)


async def test_changing_the_state_gates_writes(registry: Registry, organization: Organization) -> None:
    repository = f"{organization.name}/app"
    path = f"{API}/{repository}/changestate"
    async with registry.client(organization.owner) as client:
        await push_image(client, repository, random_image(layer_count=1), "latest")
        read_only = await client.put(path, json={"state": "READ_ONLY"})
        push = await client.post(f"/v2/{repository}/blobs/uploads/")
        delete_tag = await client.delete(f"{API}/{repository}/tag/latest")
        pulled = await client.get(f"/v2/{repository}/manifests/latest")
        viewed = (await client.get(f"{API}/{repository}")).json()
        mirror = await client.put(path, json={"state": "MIRROR"})
        bogus = await client.put(path, json={"state": "BOGUS"})
        deleting = await client.put(path, json={"state": "MARKED_FOR_DELETION"})
        wrong_type = await client.put(path, json={"state": ["NORMAL"]})
        normal = await client.put(path, json={"state": "NORMAL"})
        push_again = await client.post(f"/v2/{repository}/blobs/uploads/")
    assert read_only.json() == {"success": True}
    assert push.status_code == 403 and push.json()["errors"][0]["code"] == "DENIED"
    assert delete_tag.status_code == 503
    assert delete_tag.json()["detail"] == "Repository is in read only or mirror mode: READ_ONLY"
    assert pulled.status_code == 200
    assert viewed["state"] == "READ_ONLY" and viewed["can_write"] is False
    assert mirror.status_code == 200
    assert bogus.status_code == 400 and bogus.json()["detail"] == "BOGUS is not a valid Repository state."
    assert deleting.status_code == 400 and wrong_type.status_code == 400
    assert normal.status_code == 200 and push_again.status_code == 202
    assert (await log_kinds(registry, repository)).count("change_repo_state") == 3


async def test_only_admins_change_the_state(registry: Registry, organization: Organization) -> None:
    writer = await registry.user()
    repository = f"{organization.name}/app"
    async with registry.client(organization.owner) as client:
        await create(client, organization.name, "app")
    await grant(registry, repository, writer.username, "write", organization.owner)
    async with registry.client(writer) as client:
        response = await client.put(f"{API}/{repository}/changestate", json={"state": "READ_ONLY"})
    assert response.status_code == 403


async def test_deleting_a_repository_removes_it_at_once_and_frees_its_name(
    registry: Registry, organization: Organization
) -> None:
    repository = f"{organization.name}/app"
    async with registry.client(organization.owner) as client:
        await push_image(client, repository, random_image(layer_count=1), "latest")
        await client.post(f"{API}/{repository}/changevisibility", json={"visibility": "public"})
        deleted = await client.delete(f"{API}/{repository}")
        viewed = await client.get(f"{API}/{repository}")
        pulled = await client.get(f"/v2/{repository}/manifests/latest")
        listed = (await client.get(API, params={"namespace": organization.name})).json()
        catalog = (await client.get("/v2/_catalog")).json()
        recreated = await create(client, organization.name, "app")
        fresh = (await client.get(f"{API}/{repository}")).json()
    assert deleted.status_code == 204
    assert viewed.status_code == 404
    assert pulled.json()["errors"][0]["code"] == "NAME_UNKNOWN"
    assert listed["repositories"] == [] and catalog["repositories"] == []
    assert recreated.status_code == 201 and fresh["tags"] == {} and fresh["is_public"] is False
    await collect_garbage(registry)
    async with registry.context.pool.acquire() as conn:
        remaining = await conn.fetchval("SELECT count(*) FROM repository WHERE state = 'MARKED_FOR_DELETION'")
        events = await conn.fetch("SELECT payload FROM event_outbox WHERE routing_key = 'repository.deleted'")
    assert remaining == 0
    assert [event["payload"]["repository"] for event in events] == ["app"]
    assert "delete_repo" in await log_kinds(registry, repository)


async def test_only_admins_delete_repositories(registry: Registry, organization: Organization) -> None:
    writer = await registry.user()
    repository = f"{organization.name}/app"
    async with registry.client(organization.owner) as client:
        await create(client, organization.name, "app")
    await grant(registry, repository, writer.username, "write", organization.owner)
    async with registry.client(writer) as client:
        refused = await client.delete(f"{API}/{repository}")
    async with registry.client(organization.owner) as client:
        still_there = await client.get(f"{API}/{repository}")
    assert refused.status_code == 403 and still_there.status_code == 200
