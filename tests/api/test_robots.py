"""Robot accounts of organizations and of users: create, list, view, delete, regenerate, permissions."""

from __future__ import annotations

import pytest

from shared.auth.accounts import authenticate
from tests.api.conftest import Organization
from tests.fixtures.registry import Account, Registry


def _robots(organization: Organization) -> str:
    return f"/api/v1/organization/{organization.name}/robots"


async def test_admins_create_robots_whose_token_logs_in(
    registry: Registry, organization: Organization
) -> None:
    async with registry.client(organization.owner) as client:
        created = await client.put(f"{_robots(organization)}/ci", json={"description": "CI pushes"})
        without_body = await client.put(f"{_robots(organization)}/deploy")
        again = await client.put(f"{_robots(organization)}/ci")
        fetched = (await client.get(f"{_robots(organization)}/ci")).json()
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["name"] == f"{organization.name}+ci" and body["description"] == "CI pushes"
    assert body["token"] and body["created"]
    assert without_body.status_code == 201 and without_body.json()["description"] == ""
    assert again.status_code == 400 and "already exists" in again.json()["detail"]
    assert fetched == {"name": body["name"], "created": body["created"], "description": "CI pushes"}
    async with registry.client(Account(body["name"], body["token"])) as client:
        assert (await client.get("/v2/")).status_code == 200


@pytest.mark.parametrize("shortname", ["CI", "1bot", "a-b", "a.b"])
async def test_invalid_robot_names_are_refused(
    registry: Registry, organization: Organization, shortname: str
) -> None:
    async with registry.client(organization.owner) as client:
        response = await client.put(f"{_robots(organization)}/{shortname}")
    assert response.status_code == 400 and "invalid robot name" in response.json()["detail"]


async def test_robot_bodies_are_checked(registry: Registry, organization: Organization) -> None:
    async with registry.client(organization.owner) as client:
        wrong_type = await client.put(f"{_robots(organization)}/ci", json={"description": 3})
        too_long = await client.put(f"{_robots(organization)}/ci", json={"description": "x" * 256})
        listed = (await client.get(_robots(organization))).json()
    assert wrong_type.status_code == 400 and too_long.status_code == 400
    assert listed == {"robots": []}


async def test_members_list_robots_admins_also_see_their_teams_and_repositories(
    registry: Registry, organization: Organization
) -> None:
    member, outsider = await registry.user(), await registry.user()
    robot = await registry.robot(organization.name, "ci")
    async with registry.client(organization.owner) as client:
        await client.put(f"/api/v1/organization/{organization.name}/team/devs", json={"role": "member"})
        await client.put(f"/api/v1/organization/{organization.name}/team/devs/members/{member.username}")
        await client.put(f"/api/v1/organization/{organization.name}/team/devs/members/{robot.username}")
        await client.post(f"/v2/{organization.name}/app/blobs/uploads/")
        await _grant(registry, robot.username, f"{organization.name}/app", "write")
        as_admin = (await client.get(_robots(organization), params={"permissions": "true"})).json()
    async with registry.client(member) as client:
        as_member = (await client.get(_robots(organization), params={"permissions": "true"})).json()
        view_one = await client.get(f"{_robots(organization)}/ci")
        create = await client.put(f"{_robots(organization)}/other")
    async with registry.client(outsider) as client:
        hidden = await client.get(_robots(organization))
    [admin_entry] = as_admin["robots"]
    assert admin_entry["name"] == robot.username
    assert admin_entry["teams"] == [{"name": "devs"}] and admin_entry["repositories"] == ["app"]
    assert "token" not in admin_entry
    assert as_member["robots"] == [{key: admin_entry[key] for key in ("name", "created", "description")}]
    assert view_one.status_code == 403 and create.status_code == 403 and hidden.status_code == 403


async def _grant(registry: Registry, robot: str, repository: str, role: str) -> None:
    namespace, _, shortname = robot.partition("+")
    async with registry.context.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO repository_permission (repository_id, robot_id, role)"
            " SELECT rp.id, r.id, $4 FROM repository rp, robot r JOIN namespace n ON n.id = r.namespace_id"
            " WHERE n.name = $1 AND r.shortname = $2 AND rp.name = $3",
            namespace,
            shortname,
            repository.partition("/")[2],
            role,
        )


async def test_robot_permissions_list_the_repositories_granted(
    registry: Registry, organization: Organization
) -> None:
    robot = await registry.robot(organization.name, "ci")
    async with registry.client(organization.owner) as client:
        await client.post(f"/v2/{organization.name}/app/blobs/uploads/")
        await client.post(f"/v2/{organization.name}/web/blobs/uploads/")
        await _grant(registry, robot.username, f"{organization.name}/app", "read")
        await _grant(registry, robot.username, f"{organization.name}/web", "admin")
        permissions = (await client.get(f"{_robots(organization)}/ci/permissions")).json()
        unknown = await client.get(f"{_robots(organization)}/nobot/permissions")
    assert permissions == {
        "permissions": [
            {"repository": {"name": "app", "is_public": False}, "role": "read"},
            {"repository": {"name": "web", "is_public": False}, "role": "admin"},
        ]
    }
    assert unknown.status_code == 404


async def test_regenerating_a_token_replaces_it(registry: Registry, organization: Organization) -> None:
    async with registry.client(organization.owner) as client:
        first = (await client.put(f"{_robots(organization)}/ci")).json()
        async with registry.client() as v2:  # the old token is remembered as verified...
            assert (await v2.get("/v2/", auth=(first["name"], first["token"]))).status_code == 200
        regenerated = await client.post(f"{_robots(organization)}/ci/regenerate")
        unknown = await client.post(f"{_robots(organization)}/nobot/regenerate")
    assert regenerated.status_code == 200 and unknown.status_code == 404
    second = regenerated.json()
    assert second["name"] == first["name"] and second["token"] != first["token"]
    async with registry.context.pool.acquire() as conn:
        assert await authenticate(conn, first["name"], first["token"]) is None
        assert await authenticate(conn, second["name"], second["token"]) is not None
    async with registry.client() as v2:  # ...and forgotten at once
        assert (await v2.get("/v2/", auth=(first["name"], first["token"]))).status_code == 401
        assert (await v2.get("/v2/", auth=(second["name"], second["token"]))).status_code == 200


async def test_deleting_a_robot_removes_its_memberships_and_permissions(
    registry: Registry, organization: Organization
) -> None:
    robot = await registry.robot(organization.name, "ci")
    async with registry.client(organization.owner) as client:
        await client.put(f"/api/v1/organization/{organization.name}/team/devs", json={"role": "member"})
        await client.put(f"/api/v1/organization/{organization.name}/team/devs/members/{robot.username}")
        deleted = await client.delete(f"{_robots(organization)}/ci")
        again = await client.delete(f"{_robots(organization)}/ci")
        members = (await client.get(f"/api/v1/organization/{organization.name}/team/devs/members")).json()
        fetched = await client.get(f"{_robots(organization)}/ci")
    assert deleted.status_code == 204 and again.status_code == 404 and fetched.status_code == 404
    assert members["members"] == []
    async with registry.client(robot) as client:
        assert (await client.get("/v2/")).status_code == 401


async def test_users_manage_their_own_robots(registry: Registry) -> None:
    alice, bob = await registry.user(), await registry.user()
    async with registry.client(alice) as client:
        created = await client.put("/api/v1/user/robots/builder", json={"description": "mine"})
        listed = (await client.get("/api/v1/user/robots")).json()
        fetched = await client.get("/api/v1/user/robots/builder")
        permissions = (await client.get("/api/v1/user/robots/builder/permissions")).json()
        regenerated = await client.post("/api/v1/user/robots/builder/regenerate")
    async with registry.client(bob) as client:
        bobs = (await client.get("/api/v1/user/robots")).json()
        not_bobs = await client.get("/api/v1/user/robots/builder")
    assert created.status_code == 201 and created.json()["name"] == f"{alice.username}+builder"
    assert [robot["name"] for robot in listed["robots"]] == [f"{alice.username}+builder"]
    assert fetched.status_code == 200 and permissions == {"permissions": []}
    assert regenerated.status_code == 200 and regenerated.json()["token"] != created.json()["token"]
    assert bobs == {"robots": []} and not_bobs.status_code == 404
    async with registry.client(alice) as client:
        assert (await client.delete("/api/v1/user/robots/builder")).status_code == 204
        assert (await client.get("/api/v1/user/robots")).json() == {"robots": []}
