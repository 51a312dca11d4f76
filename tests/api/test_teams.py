"""Teams of an organization: create and change, members (users and the organization's robots), and
the rules of the 'owners' team."""

from __future__ import annotations

from tests.api.conftest import Organization
from tests.fixtures.registry import Registry


def _team(organization: Organization, team: str = "devs") -> str:
    return f"/api/v1/organization/{organization.name}/team/{team}"


async def test_admins_create_and_change_teams(registry: Registry, organization: Organization) -> None:
    async with registry.client(organization.owner) as client:
        created = await client.put(_team(organization), json={"role": "member", "description": "Developers"})
        changed = await client.put(_team(organization), json={"role": "creator"})
        view = (await client.get(f"/api/v1/organization/{organization.name}")).json()
    assert created.status_code == 200
    assert created.json() == {
        "name": "devs",
        "description": "Developers",
        "role": "member",
        "can_view": True,
        "new_team": True,
    }
    assert changed.json() == {
        "name": "devs",
        "description": "Developers",
        "role": "creator",
        "can_view": True,
        "new_team": False,
    }
    assert view["teams"]["devs"]["role"] == "creator"


async def test_invalid_team_names_and_roles_are_refused(
    registry: Registry, organization: Organization
) -> None:
    async with registry.client(organization.owner) as client:
        bad_name = await client.put(_team(organization, "Dev.Ops"), json={"role": "member"})
        bad_role = await client.put(_team(organization), json={"role": "owner"})
        missing_role = await client.put(_team(organization), json={"description": "x"})
    assert bad_name.status_code == 400 and "invalid team name" in bad_name.json()["detail"]
    assert bad_role.status_code == 400 and missing_role.status_code == 400


async def test_members_are_users_or_robots_of_the_organization(
    registry: Registry, organization: Organization
) -> None:
    alice = await registry.user()
    robot = await registry.robot(organization.name, "ci")
    elsewhere = await registry.organization(await registry.user())
    foreign_robot = await registry.robot(elsewhere, "ci")
    async with registry.client(organization.owner) as client:
        await client.put(_team(organization), json={"role": "member"})
        added_user = await client.put(f"{_team(organization)}/members/{alice.username}")
        added_robot = await client.put(f"{_team(organization)}/members/{robot.username}")
        added_twice = await client.put(f"{_team(organization)}/members/{alice.username}")
        foreign = await client.put(f"{_team(organization)}/members/{foreign_robot.username}")
        unknown = await client.put(f"{_team(organization)}/members/nobody")
        unknown_team = await client.put(f"{_team(organization, 'ops')}/members/{alice.username}")
        members = (await client.get(f"{_team(organization)}/members")).json()
    assert added_user.json() == {"name": alice.username, "kind": "user", "is_robot": False, "invited": False}
    assert added_robot.json() == {"name": robot.username, "kind": "user", "is_robot": True, "invited": False}
    assert added_twice.status_code == 200
    assert foreign.status_code == 404 and unknown.status_code == 404
    assert unknown_team.status_code == 404 and unknown_team.json()["detail"] == "no team 'ops'"
    assert members == {
        "name": "devs",
        "members": [
            {"name": alice.username, "kind": "user", "is_robot": False, "invited": False},
            {"name": robot.username, "kind": "user", "is_robot": True, "invited": False},
        ],
        "can_edit": True,
    }


async def test_team_members_see_their_team_and_outsiders_do_not(
    registry: Registry, organization: Organization
) -> None:
    member, outsider = await registry.user(), await registry.user()
    async with registry.client(organization.owner) as client:
        await client.put(_team(organization), json={"role": "member"})
        await client.put(f"{_team(organization)}/members/{member.username}")
    async with registry.client(member) as client:
        seen = await client.get(f"{_team(organization)}/members")
        others = await client.get(f"{_team(organization, 'owners')}/members")
        change = await client.put(f"{_team(organization)}/members/{outsider.username}")
    async with registry.client(outsider) as client:
        hidden = await client.get(f"{_team(organization)}/members")
        missing = await client.get(f"{_team(organization, 'ghosts')}/members")
    assert seen.status_code == 200 and seen.json()["can_edit"] is False
    assert others.status_code == 403 and change.status_code == 403
    # Outsiders cannot tell an existing team from a missing one.
    assert hidden.status_code == 403 and missing.status_code == 403


async def test_removing_members_and_teams(registry: Registry, organization: Organization) -> None:
    alice = await registry.user()
    async with registry.client(organization.owner) as client:
        await client.put(_team(organization), json={"role": "creator"})
        await client.put(f"{_team(organization)}/members/{alice.username}")
        removed = await client.delete(f"{_team(organization)}/members/{alice.username}")
        not_a_member = await client.delete(f"{_team(organization)}/members/{alice.username}")
        deleted = await client.delete(_team(organization))
        gone = await client.get(f"{_team(organization)}/members")
        deleted_again = await client.delete(_team(organization))
    assert removed.status_code == 204 and not_a_member.status_code == 404
    assert deleted.status_code == 204 and gone.status_code == 404 and deleted_again.status_code == 404


async def test_the_owners_team_cannot_be_deleted_demoted_or_emptied(
    registry: Registry, organization: Organization
) -> None:
    owners = _team(organization, "owners")
    robot = await registry.robot(organization.name, "ci")
    async with registry.client(organization.owner) as client:
        await client.put(f"{owners}/members/{robot.username}")
        deleted = await client.delete(owners)
        demoted = await client.put(owners, json={"role": "member"})
        emptied = await client.delete(f"{owners}/members/{organization.owner.username}")
        members = (await client.get(f"{owners}/members")).json()["members"]
        described = await client.put(owners, json={"role": "admin", "description": "The owners"})
    assert deleted.status_code == 400 and deleted.json()["detail"] == "the owners team cannot be deleted"
    assert demoted.status_code == 400 and demoted.json()["detail"] == (
        "the owners team's role is always admin"
    )
    assert emptied.status_code == 400 and emptied.json()["detail"] == (
        "the owners team must keep at least one user"
    )
    assert [member["name"] for member in members] == [organization.owner.username, robot.username]
    assert described.status_code == 200


async def test_an_owner_may_leave_when_another_owner_remains(
    registry: Registry, organization: Organization
) -> None:
    second = await registry.user()
    owners = _team(organization, "owners")
    async with registry.client(organization.owner) as client:
        await client.put(f"{owners}/members/{second.username}")
        left = await client.delete(f"{owners}/members/{organization.owner.username}")
        now_outsider = await client.put(
            f"/api/v1/organization/{organization.name}", json={"email": "a@b.test"}
        )
    assert left.status_code == 204 and now_outsider.status_code == 403


async def test_team_roles_decide_who_may_create_repositories(
    registry: Registry, organization: Organization
) -> None:
    creator, member = await registry.user(), await registry.user()
    async with registry.client(organization.owner) as client:
        await client.put(_team(organization, "builders"), json={"role": "creator"})
        await client.put(f"{_team(organization, 'builders')}/members/{creator.username}")
        await client.put(_team(organization, "readers"), json={"role": "member"})
        await client.put(f"{_team(organization, 'readers')}/members/{member.username}")
    async with registry.client(creator) as client:
        started = await client.post(f"/v2/{organization.name}/app/blobs/uploads/")
    async with registry.client(member) as client:
        refused = await client.post(f"/v2/{organization.name}/other/blobs/uploads/")
    assert started.status_code == 202 and refused.status_code == 403
