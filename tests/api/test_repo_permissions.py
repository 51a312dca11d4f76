"""Repository permissions for users, robots and teams: what they grant over /v2, and the API's rules."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.conftest import Organization
from tests.fixtures.registry import Account, Registry
from tests.support.oci import push_image, random_image


@pytest.fixture
async def repository(registry: Registry, organization: Organization) -> str:
    """A repository of the organization, pushed by its owner (who is granted admin on it as its creator)."""
    name = f"{organization.name}/app"
    async with registry.client(organization.owner) as client:
        await push_image(client, name, random_image(layer_count=1), "latest")
    return name


def users_path(repository: str, username: str = "") -> str:
    return f"/api/v1/repository/{repository}/permissions/user/{username}"


def teams_path(repository: str, team: str = "") -> str:
    return f"/api/v1/repository/{repository}/permissions/team/{team}"


async def can_pull(registry: Registry, account: Account, repository: str) -> bool:
    async with registry.client(account) as client:
        response = await client.get(f"/v2/{repository}/manifests/latest")
    return response.status_code == 200


async def can_push(registry: Registry, account: Account, repository: str) -> bool:
    async with registry.client(account) as client:
        response = await client.post(f"/v2/{repository}/blobs/uploads/")
    return response.status_code == 202


async def test_user_permissions_grant_change_and_revoke_access(
    registry: Registry, organization: Organization, repository: str
) -> None:
    alice = await registry.user()
    assert not await can_pull(registry, alice, repository)
    async with registry.client(organization.owner) as client:
        granted = await client.put(users_path(repository, alice.username), json={"role": "read"})
        fetched = (await client.get(users_path(repository, alice.username))).json()
    assert granted.status_code == 200, granted.text
    assert granted.json() == {
        "role": "read",
        "name": alice.username,
        "is_robot": False,
        "is_org_member": False,
    }
    assert fetched == granted.json()
    assert await can_pull(registry, alice, repository) and not await can_push(registry, alice, repository)

    async with registry.client(organization.owner) as client:
        changed = await client.put(users_path(repository, alice.username), json={"role": "write"})
        listed = (await client.get(users_path(repository))).json()
    assert changed.json()["role"] == "write"
    assert listed["permissions"][alice.username]["role"] == "write"
    assert await can_push(registry, alice, repository)

    async with registry.client(organization.owner) as client:
        revoked = await client.delete(users_path(repository, alice.username))
        revoked_again = await client.delete(users_path(repository, alice.username))
        after = await client.get(users_path(repository, alice.username))
    assert revoked.status_code == 204 and revoked_again.status_code == 404 and after.status_code == 404
    assert not await can_pull(registry, alice, repository)
    async with registry.context.pool.acquire() as conn:
        kinds = await conn.fetch(
            "SELECT kind, metadata FROM log_entry WHERE kind LIKE '%repo_permission' ORDER BY id"
        )
    assert [row["kind"] for row in kinds] == [
        "change_repo_permission",
        "change_repo_permission",
        "delete_repo_permission",
    ]
    assert kinds[0]["metadata"]["role"] == "read" and kinds[0]["metadata"]["username"] == alice.username


async def test_robots_of_the_namespace_get_permissions_others_do_not(
    registry: Registry, organization: Organization, repository: str
) -> None:
    robot = await registry.robot(organization.name, "ci")
    other_owner = await registry.user()
    other_org = await registry.organization(other_owner)
    foreign = await registry.robot(other_org, "ci")
    async with registry.client(organization.owner) as client:
        granted = await client.put(users_path(repository, robot.username), json={"role": "write"})
        refused = await client.put(users_path(repository, foreign.username), json={"role": "read"})
        listed = (await client.get(users_path(repository))).json()
    assert granted.json() == {
        "role": "write",
        "name": robot.username,
        "is_robot": True,
        "is_org_member": True,
    }
    assert refused.status_code == 400 and refused.json()["detail"] == f"Invalid username: {foreign.username}"
    assert set(listed["permissions"]) == {organization.owner.username, robot.username}
    assert await can_push(registry, robot, repository)
    assert not await can_pull(registry, foreign, repository)


async def test_team_permissions_apply_to_their_members(
    registry: Registry, organization: Organization, repository: str
) -> None:
    member = await registry.user()
    org_api = f"/api/v1/organization/{organization.name}"
    async with registry.client(organization.owner) as client:
        await client.put(f"{org_api}/team/devs", json={"role": "member"})
        await client.put(f"{org_api}/team/devs/members/{member.username}")
        granted = await client.put(teams_path(repository, "devs"), json={"role": "read"})
        fetched = (await client.get(teams_path(repository, "devs"))).json()
        listed = (await client.get(teams_path(repository))).json()
        members_view = (await client.get(users_path(repository))).json()
    assert granted.json() == {"role": "read", "name": "devs"}
    assert fetched == {"role": "read"}
    assert listed == {"permissions": {"devs": {"role": "read", "name": "devs"}}}
    assert list(members_view["permissions"]) == [organization.owner.username]
    assert await can_pull(registry, member, repository)

    async with registry.client(organization.owner) as client:
        deleted = await client.delete(teams_path(repository, "devs"))
        missing = await client.get(teams_path(repository, "devs"))
        deleted_again = await client.delete(teams_path(repository, "devs"))
    assert deleted.status_code == 204 and missing.status_code == 404 and deleted_again.status_code == 404
    assert not await can_pull(registry, member, repository)


@pytest.mark.parametrize(
    ("body", "detail_part"),
    [
        ({"role": "owner"}, "role"),
        ({"role": "READ"}, "role"),
        ({"role": 2}, "role"),
        ({}, "role"),
    ],
)
async def test_bad_permission_bodies_are_refused(
    registry: Registry, organization: Organization, repository: str, body: dict[str, Any], detail_part: str
) -> None:
    alice = await registry.user()
    async with registry.client(organization.owner) as client:
        for_user = await client.put(users_path(repository, alice.username), json=body)
        for_team = await client.put(teams_path(repository, "owners"), json=body)
        listed = (await client.get(users_path(repository))).json()
    for response in (for_user, for_team):
        assert response.status_code == 400
        assert detail_part in str(response.json()["detail"])
    assert list(listed["permissions"]) == [organization.owner.username]


async def test_unknown_accounts_and_teams_are_refused(
    registry: Registry, organization: Organization, repository: str
) -> None:
    async with registry.client(organization.owner) as client:
        unknown_user = await client.put(users_path(repository, "nobody"), json={"role": "read"})
        unknown_team = await client.put(teams_path(repository, "ghosts"), json={"role": "read"})
        odd_name = await client.put(users_path(repository, "a%2Fb"), json={"role": "read"})
    assert unknown_user.status_code == 400 and unknown_user.json()["detail"] == "Invalid username: nobody"
    assert unknown_team.status_code == 400 and unknown_team.json()["detail"] == "Invalid team: ghosts"
    assert odd_name.status_code in (400, 404, 405) and odd_name.json()["detail"]


async def test_the_owner_of_a_user_namespace_stays_admin(registry: Registry) -> None:
    alice = await registry.user()
    repository = f"{alice.username}/app"
    async with registry.client(alice) as client:
        await push_image(client, repository, random_image(layer_count=1), "latest")
        response = await client.put(users_path(repository, alice.username), json={"role": "read"})
        listed = (await client.get(users_path(repository))).json()
    assert response.status_code == 400
    assert response.json()["detail"] == "Namespace owner must always be admin."
    assert listed == {"permissions": {}}


async def test_only_repository_admins_manage_permissions(
    registry: Registry, organization: Organization, repository: str
) -> None:
    writer, admin = await registry.user(), await registry.user()
    async with registry.client(organization.owner) as client:
        await client.put(users_path(repository, writer.username), json={"role": "write"})
        await client.put(users_path(repository, admin.username), json={"role": "admin"})

    async def attempts(client: httpx.AsyncClient) -> list[int]:
        return [
            (await client.get(users_path(repository))).status_code,
            (await client.put(users_path(repository, writer.username), json={"role": "admin"})).status_code,
            (await client.get(teams_path(repository))).status_code,
        ]

    async with registry.client(writer) as client:
        by_writer = await attempts(client)
    async with registry.client(admin) as client:
        by_admin = await attempts(client)
    async with registry.client() as client:
        anonymous = await attempts(client)
    assert by_writer == [403, 403, 403]
    assert by_admin == [200, 200, 200]
    assert anonymous == [401, 401, 401]
