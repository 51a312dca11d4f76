"""Default permissions (prototypes): managing them, and what a new repository is granted."""

from __future__ import annotations

import asyncpg

from tests.api.conftest import Organization
from tests.fixtures.registry import Registry


def _prototypes(organization: Organization) -> str:
    return f"/api/v1/organization/{organization.name}/prototypes"


async def test_admins_create_list_change_and_delete_default_permissions(
    registry: Registry, organization: Organization
) -> None:
    alice = await registry.user()
    robot = await registry.robot(organization.name, "ci")
    async with registry.client(organization.owner) as client:
        await client.put(f"/api/v1/organization/{organization.name}/team/readers", json={"role": "member"})
        for_team = await client.post(
            _prototypes(organization), json={"role": "read", "delegate": {"kind": "team", "name": "readers"}}
        )
        for_robot = await client.post(
            _prototypes(organization),
            json={
                "role": "write",
                "delegate": {"kind": "user", "name": robot.username},
                "activating_user": {"name": alice.username},
            },
        )
        listed = (await client.get(_prototypes(organization))).json()
        team_id = for_team.json()["id"]
        changed = await client.put(f"{_prototypes(organization)}/{team_id}", json={"role": "admin"})
        deleted = await client.delete(f"{_prototypes(organization)}/{team_id}")
        deleted_again = await client.delete(f"{_prototypes(organization)}/{team_id}")
        after = (await client.get(_prototypes(organization))).json()
    assert for_team.status_code == 200, for_team.text
    assert for_team.json() == {
        "id": team_id,
        "role": "read",
        "delegate": {"name": "readers", "kind": "team"},
        "activating_user": None,
    }
    assert for_robot.json()["delegate"] == {
        "name": robot.username,
        "kind": "user",
        "is_robot": True,
        "is_org_member": True,
    }
    assert for_robot.json()["activating_user"] == {
        "name": alice.username,
        "kind": "user",
        "is_robot": False,
        "is_org_member": False,
    }
    assert listed == {"prototypes": [for_team.json(), for_robot.json()]}
    assert changed.status_code == 200 and changed.json()["role"] == "admin"
    assert deleted.status_code == 204 and deleted_again.status_code == 404
    assert after == {"prototypes": [for_robot.json()]}


async def test_bad_default_permissions_are_refused(registry: Registry, organization: Organization) -> None:
    elsewhere = await registry.organization(await registry.user())
    foreign_robot = await registry.robot(elsewhere, "ci")
    team = {"kind": "team", "name": "owners"}
    cases = [
        ({"role": "read", "delegate": {"kind": "team", "name": "ghosts"}}, "unknown delegate team 'ghosts'"),
        ({"role": "read", "delegate": {"kind": "user", "name": "nobody"}}, "unknown delegate 'nobody'"),
        ({"role": "read", "delegate": {"kind": "user", "name": foreign_robot.username}}, "unknown delegate"),
        (
            {"role": "read", "delegate": team, "activating_user": {"name": "nobody"}},
            "unknown activating user",
        ),
        ({"role": "owner", "delegate": team}, None),
        ({"role": "read", "delegate": {"kind": "robot", "name": "x"}}, None),
        ({"role": "read"}, None),
    ]
    async with registry.client(organization.owner) as client:
        for body, detail in cases:
            response = await client.post(_prototypes(organization), json=body)
            assert response.status_code == 400, body
            assert response.json()["detail"]
            if detail is not None:
                assert detail in response.json()["detail"]
        first = await client.post(_prototypes(organization), json={"role": "read", "delegate": team})
        duplicate = await client.post(_prototypes(organization), json={"role": "write", "delegate": team})
        bad_id = await client.put(f"{_prototypes(organization)}/not-a-uuid", json={"role": "read"})
        unknown_id = await client.put(
            f"{_prototypes(organization)}/00000000-0000-0000-0000-000000000000", json={"role": "read"}
        )
        listed = (await client.get(_prototypes(organization))).json()["prototypes"]
    assert first.status_code == 200 and duplicate.status_code == 400
    assert bad_id.status_code == 400 and unknown_id.status_code == 404
    assert len(listed) == 1


async def test_only_admins_manage_default_permissions(registry: Registry, organization: Organization) -> None:
    member = await registry.user()
    async with registry.client(organization.owner) as client:
        await client.put(f"/api/v1/organization/{organization.name}/team/devs", json={"role": "creator"})
        await client.put(f"/api/v1/organization/{organization.name}/team/devs/members/{member.username}")
    async with registry.client(member) as client:
        listed = await client.get(_prototypes(organization))
        created = await client.post(
            _prototypes(organization), json={"role": "read", "delegate": {"kind": "team", "name": "devs"}}
        )
    assert listed.status_code == 403 and created.status_code == 403


async def _roles(conn: asyncpg.Connection, repository: str) -> dict[str, str]:
    rows = await conn.fetch(
        "SELECT COALESCE(u.username, t.name, n.name || '+' || r.shortname) AS grantee, p.role"
        " FROM repository_permission p JOIN repository rp ON rp.id = p.repository_id"
        " LEFT JOIN app_user u ON u.id = p.user_id LEFT JOIN team t ON t.id = p.team_id"
        " LEFT JOIN robot r ON r.id = p.robot_id LEFT JOIN namespace n ON n.id = r.namespace_id"
        " WHERE rp.name = $1",
        repository,
    )
    return {row["grantee"]: row["role"] for row in rows}


async def test_a_new_repository_gets_its_creator_and_default_permissions(
    registry: Registry, organization: Organization
) -> None:
    creator, other_creator, reader = await registry.user(), await registry.user(), await registry.user()
    robot = await registry.robot(organization.name, "deployer")
    org = organization.name
    async with registry.client(organization.owner) as client:
        await client.put(f"/api/v1/organization/{org}/team/builders", json={"role": "creator"})
        for user in (creator, other_creator):
            await client.put(f"/api/v1/organization/{org}/team/builders/members/{user.username}")
        await client.put(f"/api/v1/organization/{org}/team/readers", json={"role": "member"})
        await client.put(f"/api/v1/organization/{org}/team/readers/members/{reader.username}")
        for body in (
            {"role": "read", "delegate": {"kind": "team", "name": "readers"}},
            {"role": "read", "delegate": {"kind": "user", "name": robot.username}},
            {
                "role": "write",
                "delegate": {"kind": "user", "name": robot.username},
                "activating_user": {"name": creator.username},
            },
        ):
            assert (await client.post(_prototypes(organization), json=body)).status_code == 200
    async with registry.client(creator) as client:
        assert (await client.post(f"/v2/{org}/app/blobs/uploads/")).status_code == 202
        assert (await client.get(f"/v2/{org}/app/tags/list")).status_code == 200
    async with registry.client(other_creator) as client:
        assert (await client.post(f"/v2/{org}/web/blobs/uploads/")).status_code == 202
    async with registry.context.pool.acquire() as conn:
        assert await _roles(conn, "app") == {
            creator.username: "admin",
            "readers": "read",
            robot.username: "write",  # the default for this creator wins over the one for anyone
        }
        assert await _roles(conn, "web") == {
            other_creator.username: "admin",
            "readers": "read",
            robot.username: "read",
        }
    async with registry.client(reader) as client:
        assert (await client.get(f"/v2/{org}/app/tags/list")).status_code == 200
        assert (await client.post(f"/v2/{org}/app/blobs/uploads/")).status_code == 403


async def test_a_repository_in_a_users_own_namespace_needs_no_grants(registry: Registry) -> None:
    alice = await registry.user()
    async with registry.client(alice) as client:
        assert (await client.post(f"/v2/{alice.username}/app/blobs/uploads/")).status_code == 202
    async with registry.context.pool.acquire() as conn:
        assert await _roles(conn, "app") == {}
