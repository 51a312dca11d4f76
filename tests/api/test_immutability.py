"""Tag immutability policies: Quay's immutabilitypolicy API for organizations and repositories, and
their enforcement: /v2 pushes moving and deletes of an immutable tag answer DENIED, tag API changes
(move, expire, delete, restore, permanent expiry) answer Quay's 409; nothing changes either way."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.registry.domain.immutability import MAX_POLICIES_PER_OWNER
from tests.api.conftest import Organization
from tests.fixtures.registry import Registry
from tests.support.oci import Image, error_code, push_image, push_image_blobs, random_image

V1 = "v1"


@pytest.fixture
def repository(organization: Organization) -> str:
    return f"{organization.name}/app"


@pytest.fixture
async def owner_client(registry: Registry, organization: Organization) -> AsyncIterator[httpx.AsyncClient]:
    async with registry.client(organization.owner) as client:
        yield client


def organization_policies(organization: Organization) -> str:
    return f"/api/v1/organization/{organization.name}/immutabilitypolicy/"


def repository_policies(repository: str) -> str:
    return f"/api/v1/repository/{repository}/immutabilitypolicy/"


async def create_policy(
    client: httpx.AsyncClient, policies: str, pattern: str, *, matches: bool = True
) -> str:
    response = await client.post(policies, json={"tagPattern": pattern, "tagPatternMatches": matches})
    assert response.status_code == 201, response.text
    policy_uuid: str = response.json()["uuid"]
    return policy_uuid


async def policy_log_entries(registry: Registry) -> list[dict[str, Any]]:
    kinds = ["create_immutability_policy", "update_immutability_policy", "delete_immutability_policy"]
    async with registry.context.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT kind, repository, metadata FROM log_entry WHERE kind = ANY($1::text[]) ORDER BY id", kinds
        )
    return [dict(row) for row in rows]


async def pushed(client: httpx.AsyncClient, repository: str, tag: str) -> Image:
    image = random_image(layer_count=1, layer_size=64)
    await push_image(client, repository, image, tag)
    return image


async def served_digest(client: httpx.AsyncClient, repository: str, tag: str) -> str | None:
    response = await client.get(f"/v2/{repository}/manifests/{tag}")
    return response.headers["docker-content-digest"] if response.status_code == 200 else None


def assert_quay_conflict(response: httpx.Response, tag: str) -> None:
    assert response.status_code == 409, response.text
    body = response.json()
    assert isinstance(body["detail"], str)
    assert f"'{tag}' is immutable" in body["detail"]
    assert body["error_type"] == "tag_immutable"


def assert_denied(response: httpx.Response, tag: str) -> None:
    assert response.status_code == 403, response.text
    assert error_code(response) == "DENIED"
    assert response.json()["errors"][0]["detail"] == {"tag": tag}


# Managing policies


async def test_organization_admins_create_list_change_and_delete_policies(
    owner_client: httpx.AsyncClient, organization: Organization, registry: Registry
) -> None:
    policies = organization_policies(organization)

    policy_uuid = await create_policy(owner_client, policies, "  v[0-9]+\\..*  ")
    other_uuid = await create_policy(owner_client, policies, "dev-.*", matches=False)
    listed = (await owner_client.get(policies)).json()
    updated = await owner_client.put(f"{policies}{policy_uuid}", json={"tagPattern": "release-.*"})
    after_update = (await owner_client.get(f"{policies}{policy_uuid}")).json()
    deleted = await owner_client.delete(f"{policies}{other_uuid}")
    gone = await owner_client.get(f"{policies}{other_uuid}")

    assert listed == {
        "policies": [
            {"uuid": policy_uuid, "tagPattern": "v[0-9]+\\..*", "tagPatternMatches": True},
            {"uuid": other_uuid, "tagPattern": "dev-.*", "tagPatternMatches": False},
        ]
    }
    assert updated.status_code == 204
    assert after_update == {"uuid": policy_uuid, "tagPattern": "release-.*", "tagPatternMatches": True}
    assert deleted.status_code == 200
    assert deleted.json() == {"uuid": other_uuid}
    assert gone.status_code == 404
    changes = await policy_log_entries(registry)
    assert [entry["kind"] for entry in changes] == [
        "create_immutability_policy",
        "create_immutability_policy",
        "update_immutability_policy",
        "delete_immutability_policy",
    ]
    assert changes[2]["metadata"]["tag_pattern"] == "release-.*"
    assert changes[3]["metadata"]["policy_uuid"] == other_uuid
    assert all(entry["repository"] is None for entry in changes)


async def test_repository_admins_manage_the_repository_policies(
    owner_client: httpx.AsyncClient, organization: Organization, repository: str, registry: Registry
) -> None:
    await pushed(owner_client, repository, V1)
    org_policy = await create_policy(owner_client, organization_policies(organization), "prod")
    policies = repository_policies(repository)

    policy_uuid = await create_policy(owner_client, policies, "v.*")
    listed = (await owner_client.get(policies)).json()
    from_the_organization = await owner_client.get(f"{policies}{org_policy}")
    deleted = await owner_client.delete(f"{policies}{policy_uuid}")

    assert listed == {"policies": [{"uuid": policy_uuid, "tagPattern": "v.*", "tagPatternMatches": True}]}
    assert from_the_organization.status_code == 404  # an organization's policy is not the repository's
    assert deleted.status_code == 200
    entries = await policy_log_entries(registry)
    assert [(entry["kind"], entry["repository"]) for entry in entries[1:]] == [
        ("create_immutability_policy", "app"),
        ("delete_immutability_policy", "app"),
    ]


async def test_repository_policies_of_an_unknown_repository_answer_404(
    owner_client: httpx.AsyncClient, organization: Organization
) -> None:
    response = await owner_client.post(
        repository_policies(f"{organization.name}/nothing"), json={"tagPattern": "v1"}
    )

    assert response.status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"tagPattern": ""},
        {"tagPattern": "   "},
        {"tagPattern": "v1("},
        {"tagPattern": "a" * 257},
        {"tagPattern": 5},
        {"tagPattern": "v1", "tagPatternMatches": "yes"},
        {"tagPattern": "v1\u0000"},
        ["v1"],
    ],
    ids=[
        "missing",
        "empty",
        "blank",
        "not-a-regex",
        "too-long",
        "not-a-string",
        "bad-sense",
        "nul",
        "not-an-object",
    ],
)
async def test_invalid_policies_are_refused_and_nothing_is_stored(
    owner_client: httpx.AsyncClient, organization: Organization, body: Any
) -> None:
    policies = organization_policies(organization)

    response = await owner_client.post(policies, json=body)

    assert response.status_code == 400, response.text
    assert isinstance(response.json()["detail"], str)
    assert (await owner_client.get(policies)).json() == {"policies": []}


async def test_a_duplicate_pattern_is_refused(
    owner_client: httpx.AsyncClient, organization: Organization
) -> None:
    policies = organization_policies(organization)
    first = await create_policy(owner_client, policies, "v1")
    second = await create_policy(owner_client, policies, "v2")

    duplicate = await owner_client.post(policies, json={"tagPattern": "v1", "tagPatternMatches": False})
    renamed_onto_another = await owner_client.put(f"{policies}{second}", json={"tagPattern": "v1"})

    assert duplicate.status_code == 400
    assert "already exists" in duplicate.json()["detail"]
    assert renamed_onto_another.status_code == 400
    listed = (await owner_client.get(policies)).json()["policies"]
    assert [(policy["uuid"], policy["tagPattern"]) for policy in listed] == [(first, "v1"), (second, "v2")]


async def test_an_owner_holds_at_most_the_policy_limit(
    owner_client: httpx.AsyncClient, organization: Organization, repository: str
) -> None:
    policies = organization_policies(organization)
    for index in range(MAX_POLICIES_PER_OWNER):
        await create_policy(owner_client, policies, f"v{index}")

    one_more = await owner_client.post(policies, json={"tagPattern": "one-more"})
    await pushed(owner_client, repository, V1)
    for_a_repository = await owner_client.post(
        repository_policies(repository), json={"tagPattern": "one-more"}
    )

    assert one_more.status_code == 400
    assert f"at most {MAX_POLICIES_PER_OWNER}" in one_more.json()["detail"]
    assert len((await owner_client.get(policies)).json()["policies"]) == MAX_POLICIES_PER_OWNER
    assert for_a_repository.status_code == 201  # the limit is per organization, and per repository


async def test_unknown_policies_answer_404(
    owner_client: httpx.AsyncClient, organization: Organization
) -> None:
    unknown = f"{organization_policies(organization)}{uuid.uuid4()}"

    answers = [
        await owner_client.get(unknown),
        await owner_client.put(unknown, json={"tagPattern": "v1"}),
        await owner_client.delete(unknown),
    ]

    assert [answer.status_code for answer in answers] == [404, 404, 404]


async def test_an_organization_member_who_is_not_admin_may_not_manage_policies(
    registry: Registry, owner_client: httpx.AsyncClient, organization: Organization, repository: str
) -> None:
    await pushed(owner_client, repository, V1)
    writer = await registry.user()
    granted = await owner_client.put(
        f"/api/v1/repository/{repository}/permissions/user/{writer.username}", json={"role": "write"}
    )
    assert granted.status_code == 200, granted.text
    async with registry.client(writer) as client:
        repository_answer = await client.post(repository_policies(repository), json={"tagPattern": "v1"})
        organization_answer = await client.post(
            organization_policies(organization), json={"tagPattern": "v1"}
        )

    assert repository_answer.status_code == 403
    assert organization_answer.status_code == 403
    assert (await owner_client.get(repository_policies(repository))).json() == {"policies": []}


# Enforcement on /v2


async def test_a_push_moving_an_immutable_tag_is_denied_and_the_tag_stays(
    owner_client: httpx.AsyncClient, repository: str
) -> None:
    original = await pushed(owner_client, repository, V1)
    await create_policy(owner_client, repository_policies(repository), "v[0-9]+")
    replacement = random_image(layer_count=1, layer_size=64)
    await push_image_blobs(owner_client, repository, replacement)

    moved = await owner_client.put(
        f"/v2/{repository}/manifests/{V1}",
        content=replacement.manifest,
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
    )
    same_again = await owner_client.put(
        f"/v2/{repository}/manifests/{V1}",
        content=original.manifest,
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
    )

    assert_denied(moved, V1)
    assert same_again.status_code == 201, same_again.text
    assert await served_digest(owner_client, repository, V1) == original.digest
    # A new tag the pattern covers may be created; tags it does not cover move freely.
    await push_image(owner_client, repository, replacement, "v2")
    await push_image(owner_client, repository, replacement, "latest")
    await push_image(owner_client, repository, original, "latest")
    assert await served_digest(owner_client, repository, "v2") == replacement.digest
    assert await served_digest(owner_client, repository, "latest") == original.digest


async def test_patterns_match_whole_tag_names(owner_client: httpx.AsyncClient, repository: str) -> None:
    await pushed(owner_client, repository, "v1")
    await pushed(owner_client, repository, "v10")
    await pushed(owner_client, repository, "xv1")
    await create_policy(owner_client, repository_policies(repository), "v1")

    results = {
        tag: await owner_client.delete(f"/v2/{repository}/manifests/{tag}") for tag in ("v1", "v10", "xv1")
    }

    assert_denied(results["v1"], "v1")
    assert results["v10"].status_code == 202
    assert results["xv1"].status_code == 202


async def test_a_policy_that_does_not_match_protects_every_other_tag(
    owner_client: httpx.AsyncClient, repository: str
) -> None:
    await pushed(owner_client, repository, "release")
    await pushed(owner_client, repository, "dev-1")
    await create_policy(owner_client, repository_policies(repository), "dev-.*", matches=False)

    release = await owner_client.delete(f"/v2/{repository}/manifests/release")
    dev = await owner_client.delete(f"/v2/{repository}/manifests/dev-1")

    assert_denied(release, "release")
    assert dev.status_code == 202


async def test_an_organization_policy_protects_every_repository_of_it(
    owner_client: httpx.AsyncClient, organization: Organization
) -> None:
    repositories = [f"{organization.name}/first", f"{organization.name}/second"]
    for name in repositories:
        await pushed(owner_client, name, "stable")
    await create_policy(owner_client, organization_policies(organization), "stable")

    answers = [await owner_client.delete(f"/v2/{name}/manifests/stable") for name in repositories]

    for answer in answers:
        assert_denied(answer, "stable")


async def test_deleting_a_manifest_an_immutable_tag_points_at_is_denied(
    owner_client: httpx.AsyncClient, repository: str
) -> None:
    image = await pushed(owner_client, repository, "stable")
    await push_image(owner_client, repository, image, "scratch")
    await create_policy(owner_client, repository_policies(repository), "stable")

    response = await owner_client.delete(f"/v2/{repository}/manifests/{image.digest}")

    assert_denied(response, "stable")
    tags = (await owner_client.get(f"/v2/{repository}/tags/list")).json()["tags"]
    assert tags == ["scratch", "stable"]


async def test_deleting_the_policy_makes_the_tag_mutable_again(
    owner_client: httpx.AsyncClient, repository: str
) -> None:
    await pushed(owner_client, repository, V1)
    policies = repository_policies(repository)
    policy_uuid = await create_policy(owner_client, policies, V1)
    refused = await owner_client.delete(f"/v2/{repository}/manifests/{V1}")

    await owner_client.delete(f"{policies}{policy_uuid}")
    allowed = await owner_client.delete(f"/v2/{repository}/manifests/{V1}")

    assert_denied(refused, V1)
    assert allowed.status_code == 202


async def test_a_pathological_pattern_is_cut_short_and_protects_the_tag(
    owner_client: httpx.AsyncClient, repository: str
) -> None:
    tag = "x" * 120
    await pushed(owner_client, repository, tag)
    # Catastrophic backtracking on a run of x's: the match's time limit answers "immutable".
    await create_policy(owner_client, repository_policies(repository), "(x|xx)+y")

    async with asyncio.timeout(20):
        response = await owner_client.delete(f"/v2/{repository}/manifests/{tag}")

    assert_denied(response, tag)


# Enforcement on the tag API


@pytest.fixture
async def protected(owner_client: httpx.AsyncClient, repository: str) -> tuple[Image, Image]:
    """V1 pointed at a second image, then back at the first: history to restore, under a policy."""
    first = await pushed(owner_client, repository, V1)
    second = await pushed(owner_client, repository, V1)
    await push_image(owner_client, repository, first, V1)
    await create_policy(owner_client, repository_policies(repository), "v[0-9]+")
    return first, second


async def test_tag_api_changes_of_an_immutable_tag_answer_409_and_change_nothing(
    owner_client: httpx.AsyncClient, repository: str, protected: tuple[Image, Image]
) -> None:
    first, second = protected
    tag_path = f"/api/v1/repository/{repository}/tag/{V1}"
    expiration = (datetime.now(UTC) + timedelta(days=1)).timestamp()

    answers = {
        "move": await owner_client.put(tag_path, json={"manifest_digest": second.digest}),
        "expire": await owner_client.put(tag_path, json={"expiration": expiration}),
        "delete": await owner_client.delete(tag_path),
        "restore": await owner_client.post(f"{tag_path}/restore", json={"manifest_digest": second.digest}),
        "expire now": await owner_client.post(f"{tag_path}/expire", json={"is_alive": True}),
    }

    for answer in answers.values():
        assert_quay_conflict(answer, V1)
    history = (
        await owner_client.get(f"/api/v1/repository/{repository}/tag/", params={"onlyActiveTags": True})
    ).json()
    assert [(tag["name"], tag["manifest_digest"], tag.get("end_ts")) for tag in history["tags"]] == [
        (V1, first.digest, None)
    ]


async def test_harmless_tag_api_changes_of_an_immutable_tag_are_allowed(
    owner_client: httpx.AsyncClient, repository: str, protected: tuple[Image, Image]
) -> None:
    first, _ = protected
    tag_path = f"/api/v1/repository/{repository}/tag/{V1}"

    same_target = await owner_client.put(tag_path, json={"manifest_digest": first.digest})
    no_expiration = await owner_client.put(tag_path, json={"expiration": None})
    new_tag = await owner_client.put(
        f"/api/v1/repository/{repository}/tag/v2", json={"manifest_digest": first.digest}
    )

    assert same_target.status_code == 201, same_target.text
    assert no_expiration.status_code == 201, no_expiration.text
    assert new_tag.status_code == 201, new_tag.text
