"""/api/v1 as Quay's clients expect it: errors in Quay's JSON (``detail`` always a string), unknown
request fields ignored, unknown paths below a repository answered 404."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.conftest import Organization
from tests.api.test_repositories import create, grant
from tests.fixtures.registry import Registry

QUAY_ERROR_FIELDS = {"detail", "error_message", "error_type", "status", "title", "type"}


def assert_quay_error(response: httpx.Response, status: int, detail: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) >= QUAY_ERROR_FIELDS
    assert isinstance(body["detail"], str) and body["detail"] == body["error_message"]
    assert body["status"] == status and body["type"] == f"/api/v1/error/{body['error_type']}"
    if detail is not None:
        assert body["detail"] == detail
    return body


async def test_validation_errors_name_the_wrong_fields(
    registry: Registry, organization: Organization
) -> None:
    async with registry.client(organization.owner) as client:
        await create(client, organization.name, "app")
        wrong_type = await client.post("/api/v1/organization/", json={"name": 3})
        missing = await client.post("/api/v1/organization/", json={})
        not_json = await client.post(
            "/api/v1/organization/", content=b"{nope", headers={"Content-Type": "application/json"}
        )
        bad_query = await client.get(
            f"/api/v1/repository/{organization.name}/app/tag/", params={"limit": "x"}
        )
        two = await client.put(
            f"/api/v1/organization/{organization.name}/team/devs", json={"role": 3, "description": 4}
        )
    assert_quay_error(wrong_type, 400, "body.name: Input should be a valid string")
    assert_quay_error(missing, 400, "body.name: Field required")
    assert "JSON decode error" in assert_quay_error(not_json, 400)["detail"]
    assert_quay_error(
        bad_query, 400, "query.limit: Input should be a valid integer, unable to parse string as an integer"
    )
    detail = assert_quay_error(two, 400)["detail"]
    assert "body.role:" in detail and "body.description: Input should be a valid string" in detail


async def test_endpoint_refusals_keep_their_text_and_headers(
    registry: Registry, organization: Organization
) -> None:
    async with registry.client() as anonymous:
        unauthorized = await anonymous.get("/api/v1/user/")
    async with registry.client(organization.owner) as client:
        missing = await client.get("/api/v1/organization/nosuchorg")
        taken = await client.post("/api/v1/organization/", json={"name": organization.name})
    assert_quay_error(unauthorized, 401, "authentication required")
    assert unauthorized.headers["WWW-Authenticate"].startswith("Bearer")
    assert_quay_error(missing, 404, "no organization 'nosuchorg'")
    assert assert_quay_error(taken, 400)["error_type"] == "invalid_request"


async def test_unknown_paths_and_methods(registry: Registry, organization: Organization) -> None:
    async with registry.client(organization.owner) as client:
        unknown = await client.get("/api/v1/no/such/endpoint")
        wrong_method = await client.patch(f"/api/v1/organization/{organization.name}")
        v2_unknown = await client.get("/v2/no/such/thing/at/all")
    assert_quay_error(unknown, 404, "Not Found")
    assert assert_quay_error(wrong_method, 405)["error_type"] == "method_not_allowed"
    assert wrong_method.headers["Allow"] == "DELETE, GET, PUT"
    assert "errors" in v2_unknown.json()  # /v2 keeps the OCI error format


async def test_unknown_fields_are_ignored_and_wrong_types_refused(
    registry: Registry, organization: Organization
) -> None:
    org = organization.name
    team = f"/api/v1/organization/{org}/team/devs"
    async with registry.client(organization.owner) as client:
        await create(client, org, "app")
        team_put = await client.put(team, json={"name": "renamed", "role": "member", "description": "d"})
        team_view = await client.get(f"/api/v1/organization/{org}")
        wrong_type = await client.put(team, json={"name": "renamed", "role": ["member"]})
        notification = await client.post(
            f"/api/v1/repository/{org}/app/notification/",
            json={
                "event": "repo_push",
                "method": "webhook",
                "config": {"url": "http://hooks.example.com/push"},
                "eventConfig": {},
                "event_config": {},
                "title": "pushes",
            },
        )
        described = await client.put(f"/api/v1/repository/{org}/app", json={"description": "x", "name": "y"})
    assert team_put.status_code == 200, team_put.text
    assert "devs" in team_view.json()["teams"] and "renamed" not in team_view.json()["teams"]
    assert_quay_error(wrong_type, 400)
    assert notification.status_code == 201, notification.text
    assert described.status_code == 200, described.text


@pytest.mark.parametrize(
    "subpath",
    ["nonexistent-subresource", "tag", "tag/latest/images", "build/", "Some_Thing", "a/b/c"],
)
async def test_unknown_paths_below_a_repository_are_not_found(
    registry: Registry, organization: Organization, subpath: str
) -> None:
    reader = await registry.user()
    org = organization.name
    async with registry.client(organization.owner) as client:
        await create(client, org, "app")
    await grant(registry, f"{org}/app", reader.username, "read", organization.owner)
    path = f"/api/v1/repository/{org}/app/{subpath}"
    async with registry.client(organization.owner) as owner:
        as_owner = [
            await owner.get(path),
            await owner.put(path, json={"description": "x"}),
            await owner.delete(path),
        ]
    async with registry.client(reader) as client:
        as_reader = await client.get(path)
    async with registry.client() as anonymous:
        as_anonymous = await anonymous.get(path)
    for response in (*as_owner, as_reader, as_anonymous):
        assert_quay_error(response, 404, "Not Found")


async def test_nested_repository_names_keep_working(registry: Registry, organization: Organization) -> None:
    org = organization.name
    reader, outsider = await registry.user(), await registry.user()
    async with registry.client(organization.owner) as client:
        created = await create(client, org, "team/app")
        await grant(registry, f"{org}/team/app", reader.username, "read", organization.owner)
        viewed = await client.get(f"/api/v1/repository/{org}/team/app")
        described = await client.put(f"/api/v1/repository/{org}/team/app", json={"description": "nested"})
        tags = await client.get(f"/api/v1/repository/{org}/team/app/tag/")
    async with registry.client(reader) as client:
        read = await client.get(f"/api/v1/repository/{org}/team/app")
        not_written = await client.put(f"/api/v1/repository/{org}/team/app", json={"description": "mine"})
    async with registry.client(outsider) as client:
        hidden = await client.get(f"/api/v1/repository/{org}/team/app")
        missing = await client.get(f"/api/v1/repository/{org}/team/none")
    async with registry.client() as anonymous:
        hidden_from_anonymous = await anonymous.get(f"/api/v1/repository/{org}/team/app")
    assert created.status_code == 201, created.text
    assert viewed.status_code == 200 and viewed.json()["name"] == "team/app"
    assert described.status_code == 200 and tags.status_code == 200
    assert read.json()["description"] == "nested"
    assert_quay_error(not_written, 403)
    # Whether a nested repository exists is not told to those who cannot see it.
    assert hidden.json() == missing.json() == hidden_from_anonymous.json()
    assert_quay_error(hidden, 404, "Not Found")


async def test_flat_repository_names_keep_their_answers(
    registry: Registry, organization: Organization
) -> None:
    outsider = await registry.user()
    async with registry.client(organization.owner) as client:
        invalid = await client.get(f"/api/v1/repository/{organization.name}/Bad..Name")
        missing = await client.get(f"/api/v1/repository/{organization.name}/missing")
    async with registry.client(outsider) as client:
        hidden = await client.get(f"/api/v1/repository/{organization.name}/missing")
    assert_quay_error(invalid, 400, "Invalid repository name")
    assert_quay_error(missing, 404)
    assert_quay_error(hidden, 403)
