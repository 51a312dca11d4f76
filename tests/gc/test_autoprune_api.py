"""Quay's autoprunepolicy API for organizations, repositories and the calling user: the round trip
in Quay's shapes, refused input (Quay's 400, nothing stored), permissions and the usage logs."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.fixtures.registry import Account, Registry


@pytest.fixture
async def owner(registry: Registry) -> Account:
    return await registry.user()


@pytest.fixture
async def org(registry: Registry, owner: Account) -> str:
    return await registry.organization(owner)


@pytest.fixture
async def owner_client(registry: Registry, owner: Account) -> AsyncIterator[httpx.AsyncClient]:
    async with registry.client(owner) as client:
        yield client


async def _log_entries(registry: Registry) -> list[dict[str, Any]]:
    async with registry.context.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT kind, repository, metadata FROM log_entry WHERE kind LIKE '%autoprune_policy' ORDER BY id"
        )
    return [dict(row) for row in rows]


def _quay_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body["detail"], str) and body["detail"] == body["error_message"]
    assert body["status"] == status
    detail: str = body["detail"]
    return detail


async def _round_trip(client: httpx.AsyncClient, policies: str) -> None:
    created = await client.post(policies, json={"method": "number_of_tags", "value": 10})
    assert created.status_code == 201, created.text
    first = created.json()["uuid"]
    assert set(created.json()) == {"uuid"}
    body = {"method": "creation_date", "value": "7d", "tagPattern": "v1.*", "tagPatternMatches": False}
    second = (await client.post(policies, json=body)).json()["uuid"]

    listed = await client.get(policies)
    assert listed.status_code == 200
    assert listed.json() == {
        "policies": [
            {
                "uuid": first,
                "method": "number_of_tags",
                "value": 10,
                "tagPattern": None,
                "tagPatternMatches": True,
            },
            {"uuid": second, **body},
        ]
    }
    update = {"method": "number_of_tags", "value": 3, "tagPattern": "rc-.*"}
    assert (await client.put(f"{policies}{first}", json=update)).status_code == 204
    fetched = await client.get(f"{policies}{first}")
    assert fetched.json() == {"uuid": first, **update, "tagPatternMatches": True}

    deleted = await client.delete(f"{policies}{second}")
    assert deleted.status_code == 200 and deleted.json() == {"uuid": second}
    assert (await client.get(f"{policies}{second}")).status_code == 404
    assert [policy["uuid"] for policy in (await client.get(policies)).json()["policies"]] == [first]


async def test_organization_repository_and_user_policies_round_trip_in_quay_shapes(
    registry: Registry, org: str, owner: Account, owner_client: httpx.AsyncClient
) -> None:
    created = await owner_client.post(
        "/api/v1/repository", json={"namespace": org, "repository": "app", "visibility": "private"}
    )
    assert created.status_code == 201, created.text

    await _round_trip(owner_client, f"/api/v1/organization/{org}/autoprunepolicy/")
    await _round_trip(owner_client, f"/api/v1/repository/{org}/app/autoprunepolicy/")
    await _round_trip(owner_client, "/api/v1/user/autoprunepolicy/")

    entries = await _log_entries(registry)
    kinds = [entry["kind"] for entry in entries]
    per_owner = [
        "create_{0}_autoprune_policy",
        "create_{0}_autoprune_policy",
        "update_{0}_autoprune_policy",
        "delete_{0}_autoprune_policy",
    ]
    expected = [
        kind.format(scope) for scope in ("namespace", "repository", "namespace") for kind in per_owner
    ]
    assert kinds == expected
    assert entries[0]["metadata"]["method"] == "number_of_tags" and entries[0]["metadata"]["value"] == 10
    assert entries[0]["metadata"]["namespace"] == org
    assert {entry["repository"] for entry in entries[4:8]} == {"app"}
    assert entries[8]["metadata"]["namespace"] == owner.username
    # Each owner's policies are its own: the organization's are not the user's.
    async with registry.context.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM autoprune_policy") == 3


BAD_BODIES = [
    ({"method": "keep_some", "value": 10}, "Invalid method provided"),
    ({"value": 10}, None),
    ({"method": "number_of_tags"}, None),
    ({"method": "number_of_tags", "value": 0}, "Invalid value given for method type"),
    ({"method": "number_of_tags", "value": -3}, "Invalid value given for method type"),
    ({"method": "number_of_tags", "value": 10**30}, None),
    ({"method": "number_of_tags", "value": 100_001}, "Invalid value given for method type"),
    ({"method": "number_of_tags", "value": "10"}, "Invalid value given for method type"),
    ({"method": "number_of_tags", "value": True}, None),
    ({"method": "creation_date", "value": 7}, "Invalid value given for method type"),
    ({"method": "creation_date", "value": "7 days"}, "Invalid value given for method type"),
    ({"method": "creation_date", "value": "0d"}, "Invalid value given for method type"),
    ({"method": "creation_date", "value": "3x"}, "Invalid value given for method type"),
    ({"method": "creation_date", "value": "7d", "tagPattern": "v1.[0-"}, "Invalid regex pattern"),
    ({"method": "creation_date", "value": "7d", "tagPattern": "a" * 300}, "256 characters or less"),
    ({"method": "creation_date", "value": "7d", "tagPattern": "v\x00"}, "NUL"),
    ({"method": "creation_date", "value": "7d", "tagPatternMatches": "yes"}, None),
]


async def test_bad_policies_answer_quay_400_and_store_nothing(
    registry: Registry, org: str, owner_client: httpx.AsyncClient
) -> None:
    policies = f"/api/v1/organization/{org}/autoprunepolicy/"
    kept = await owner_client.post(policies, json={"method": "number_of_tags", "value": 4})
    kept_uuid = kept.json()["uuid"]

    for body, detail in BAD_BODIES:
        message = _quay_error(await owner_client.post(policies, json=body), 400)
        if detail is not None:
            assert detail in message, (body, message)
        _quay_error(await owner_client.put(f"{policies}{kept_uuid}", json=body), 400)

    listed = (await owner_client.get(policies)).json()["policies"]
    assert [(policy["method"], policy["value"]) for policy in listed] == [("number_of_tags", 4)]
    assert [entry["kind"] for entry in await _log_entries(registry)] == ["create_namespace_autoprune_policy"]


async def test_duplicate_policies_are_refused_as_quay_does(org: str, owner_client: httpx.AsyncClient) -> None:
    policies = f"/api/v1/organization/{org}/autoprunepolicy/"
    body = {"method": "creation_date", "value": "2w", "tagPattern": "nightly-.*"}
    assert (await owner_client.post(policies, json=body)).status_code == 201
    detail = _quay_error(await owner_client.post(policies, json=body), 400)
    assert "duplicate policies are not permitted" in detail
    # The same rules with another sense, or another value, are another policy.
    other = (await owner_client.post(policies, json={**body, "tagPatternMatches": False})).json()["uuid"]
    assert (await owner_client.post(policies, json={**body, "value": "3w"})).status_code == 201
    # An update may not turn a policy into a copy of another.
    _quay_error(await owner_client.put(f"{policies}{other}", json=body), 400)
    assert len((await owner_client.get(policies)).json()["policies"]) == 3


async def test_only_administrators_manage_policies(
    registry: Registry, org: str, owner_client: httpx.AsyncClient
) -> None:
    stranger = await registry.user()
    policies = f"/api/v1/organization/{org}/autoprunepolicy/"
    policy_uuid = (await owner_client.post(policies, json={"method": "number_of_tags", "value": 2})).json()[
        "uuid"
    ]
    async with registry.client(stranger) as client:
        _quay_error(await client.get(policies), 403)
        _quay_error(await client.post(policies, json={"method": "number_of_tags", "value": 1}), 403)
        _quay_error(await client.delete(f"{policies}{policy_uuid}"), 403)
        # A user's own policies are only theirs: the owner's organization policy is not found there.
        _quay_error(await client.get(f"/api/v1/user/autoprunepolicy/{policy_uuid}"), 404)
    async with registry.client() as anonymous:
        _quay_error(await anonymous.get("/api/v1/user/autoprunepolicy/"), 401)
    _quay_error(await owner_client.get(f"{policies}{uuid.uuid4()}"), 404)
    assert len((await owner_client.get(policies)).json()["policies"]) == 1
