"""An organization's members and outside collaborators, one member's details, and a team's
repository permissions (Quay's getOrganizationMembers, getOrganizationMember,
getOrganizationCollaborators and getOrganizationTeamPermissions): their answers, their pages, and
that only the organization's admins see them."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest

from services.registry.api import organizations, teams
from tests.api.conftest import Organization, Tokens
from tests.fixtures.registry import Account, Registry


def _org(organization: Organization) -> str:
    return f"/api/v1/organization/{organization.name}"


async def _ok(response: httpx.Response) -> httpx.Response:
    assert response.status_code < 300, f"{response.request.method} {response.request.url}: {response.text}"
    return response


@dataclass
class People:
    """The scenario: alice in devs (write on app), bob a collaborator (read on app and lib), the
    robot ci in devs with a grant on app, and a team ops with admin on lib."""

    alice: Account
    bob: Account
    robot: Account


async def _scenario(registry: Registry, organization: Organization) -> People:
    alice, bob = await registry.user("alice"), await registry.user("bob")
    robot = await registry.robot(organization.name, "ci")
    org = _org(organization)
    async with registry.client(organization.owner) as client:
        for repository, visibility in (("app", "private"), ("lib", "public")):
            body = {"namespace": organization.name, "repository": repository, "visibility": visibility}
            await _ok(await client.post("/api/v1/repository", json={**body, "description": ""}))
        for team in ("devs", "ops"):
            await _ok(await client.put(f"{org}/team/{team}", json={"role": "member"}))
        for member in (alice.username, robot.username):
            await _ok(await client.put(f"{org}/team/devs/members/{member}"))
        grants = [
            ("app", "user", alice.username, "write"),
            ("app", "user", bob.username, "read"),
            ("lib", "user", bob.username, "read"),
            ("app", "user", robot.username, "write"),
            ("lib", "team", "ops", "admin"),
            ("app", "team", "devs", "read"),
        ]
        for repository, kind, name, role in grants:
            path = f"/api/v1/repository/{organization.name}/{repository}/permissions/{kind}/{name}"
            await _ok(await client.put(path, json={"role": role}))
    return People(alice=alice, bob=bob, robot=robot)


def _names(entries: list[dict[str, object]]) -> list[object]:
    return [entry["name"] for entry in entries]


async def test_members_are_the_users_of_the_teams_with_their_direct_permissions(
    registry: Registry, organization: Organization
) -> None:
    people = await _scenario(registry, organization)
    async with registry.client(organization.owner) as client:
        answer = (await _ok(await client.get(f"{_org(organization)}/members"))).json()
    members = {member["name"]: member for member in answer["members"]}
    assert list(members) == sorted([people.alice.username, organization.owner.username])  # no robot, no bob
    alice = members[people.alice.username]
    assert alice["kind"] == "user"
    assert alice["avatar"]["name"] == "alice" and alice["avatar"]["kind"] == "user"
    assert [team["name"] for team in alice["teams"]] == ["devs"]
    assert alice["teams"][0]["avatar"]["kind"] == "team"
    assert alice["repositories"] == ["app"]
    assert alice["repository_roles"] == {"app": "write"}
    owner = members[organization.owner.username]
    assert _names(owner["teams"]) == ["owners"]
    # Creating a repository gives its creator an explicit admin permission (Quay's way).
    assert owner["repository_roles"] == {"app": "admin", "lib": "admin"}
    assert "next_page" not in answer


async def test_collaborators_are_users_outside_every_team_with_direct_permissions(
    registry: Registry, organization: Organization
) -> None:
    people = await _scenario(registry, organization)
    elsewhere = await registry.organization(await registry.user())
    async with registry.client(organization.owner) as client:
        answer = (await _ok(await client.get(f"{_org(organization)}/collaborators"))).json()
        other = await client.get(f"/api/v1/organization/{elsewhere}/collaborators")
    assert answer == {
        "collaborators": [
            {
                "kind": "user",
                "name": people.bob.username,
                "avatar": answer["collaborators"][0]["avatar"],
                "repositories": ["app", "lib"],
                "repository_roles": {"app": "read", "lib": "read"},
            }
        ]
    }
    assert answer["collaborators"][0]["avatar"]["name"] == people.bob.username
    assert other.status_code == 403  # an admin of one organization only


async def test_joining_a_team_makes_a_collaborator_a_member(
    registry: Registry, organization: Organization
) -> None:
    people = await _scenario(registry, organization)
    org = _org(organization)
    async with registry.client(organization.owner) as client:
        await _ok(await client.put(f"{org}/team/ops/members/{people.bob.username}"))
        collaborators = (await client.get(f"{org}/collaborators")).json()["collaborators"]
        members = (await client.get(f"{org}/members")).json()["members"]
    assert collaborators == []
    bob = next(member for member in members if member["name"] == people.bob.username)
    assert _names(bob["teams"]) == ["ops"] and bob["repositories"] == ["app", "lib"]


async def test_permissions_on_deleted_repositories_are_left_out(
    registry: Registry, organization: Organization
) -> None:
    people = await _scenario(registry, organization)
    org = _org(organization)
    async with registry.client(organization.owner) as client:
        await _ok(await client.delete(f"/api/v1/repository/{organization.name}/lib"))
        collaborators = (await client.get(f"{org}/collaborators")).json()["collaborators"]
        ops = (await client.get(f"{org}/team/ops/permissions")).json()
    assert [(entry["name"], entry["repositories"]) for entry in collaborators] == [
        (people.bob.username, ["app"])
    ]
    assert ops == {"permissions": []}


async def test_one_member_user_or_robot_of_the_organization(
    registry: Registry, organization: Organization
) -> None:
    people = await _scenario(registry, organization)
    lone_robot = await registry.robot(organization.name, "idle")
    other_org = await registry.organization(await registry.user())
    foreign_robot = await registry.robot(other_org, "ci")
    org = _org(organization)
    async with registry.client(organization.owner) as client:
        alice = (await _ok(await client.get(f"{org}/members/{people.alice.username}"))).json()
        robot = (await _ok(await client.get(f"{org}/members/{people.robot.username}"))).json()
        idle = (await _ok(await client.get(f"{org}/members/{lone_robot.username}"))).json()
        collaborator = await client.get(f"{org}/members/{people.bob.username}")
        unknown = await client.get(f"{org}/members/nobody")
        foreign = await client.get(f"{org}/members/{foreign_robot.username}")
    assert (alice["kind"], _names(alice["teams"]), alice["repositories"]) == ("user", ["devs"], ["app"])
    assert (robot["kind"], robot["name"], _names(robot["teams"])) == (
        "robot",
        people.robot.username,
        ["devs"],
    )
    assert robot["repository_roles"] == {"app": "write"}
    assert (idle["kind"], idle["teams"], idle["repositories"]) == ("robot", [], [])
    for refused in (collaborator, unknown, foreign):
        assert refused.status_code == 404, refused.text
        assert isinstance(refused.json()["detail"], str)


async def test_team_permissions_list_repositories_with_visibility_and_role(
    registry: Registry, organization: Organization
) -> None:
    await _scenario(registry, organization)
    other_owner = await registry.user()
    other_org = await registry.organization(other_owner)
    org = _org(organization)
    async with registry.client(other_owner) as client:
        await _ok(await client.put(f"/api/v1/organization/{other_org}/team/secret", json={"role": "member"}))
    async with registry.client(organization.owner) as client:
        devs = (await _ok(await client.get(f"{org}/team/devs/permissions"))).json()
        ops = (await _ok(await client.get(f"{org}/team/ops/permissions"))).json()
        owners = (await _ok(await client.get(f"{org}/team/owners/permissions"))).json()
        missing = await client.get(f"{org}/team/nosuch/permissions")
        elsewhere = await client.get(f"{org}/team/secret/permissions")
    assert devs == {"permissions": [{"repository": {"name": "app", "is_public": False}, "role": "read"}]}
    assert ops == {"permissions": [{"repository": {"name": "lib", "is_public": True}, "role": "admin"}]}
    assert owners == {"permissions": []}
    assert missing.status_code == 404 and elsewhere.status_code == 404


async def test_only_admins_with_the_org_admin_scope_see_members(
    registry: Registry, organization: Organization, tokens: Tokens
) -> None:
    people = await _scenario(registry, organization)
    superuser = await registry.user(superuser=True)
    org = _org(organization)
    paths = [
        f"{org}/members",
        f"{org}/members/{people.alice.username}",
        f"{org}/collaborators",
        f"{org}/team/devs/permissions",
    ]
    async with (
        registry.client(people.alice) as member,
        registry.client(people.bob) as collaborator,
        registry.client(people.robot) as robot,
        registry.client() as anonymous,
        registry.client(superuser) as root,
        tokens.with_scopes(organization.owner, ["repo:admin"]) as narrow,
        tokens.with_scopes(organization.owner, ["org:admin"]) as scoped,
    ):
        for path in paths:
            assert (await member.get(path)).status_code == 403, path  # a team member, not an admin
            assert (await collaborator.get(path)).status_code == 403, path
            assert (await robot.get(path)).status_code == 403, path
            assert (await anonymous.get(path)).status_code == 401, path
            assert (await narrow.get(path)).status_code == 403, path
            assert (await scoped.get(path)).status_code == 200, path
            assert (await root.get(path)).status_code == 200, path
        assert (await root.get("/api/v1/organization/nosuchorg/members")).status_code == 404


@pytest.mark.parametrize(
    ("path", "key"),
    [("members", "members"), ("collaborators", "collaborators"), ("team/crowd/permissions", "permissions")],
)
async def test_lists_come_in_keyset_pages(
    registry: Registry,
    organization: Organization,
    monkeypatch: pytest.MonkeyPatch,
    path: str,
    key: str,
) -> None:
    monkeypatch.setattr(organizations, "MEMBERS_PER_PAGE", 2)
    monkeypatch.setattr(teams, "PERMISSIONS_PER_PAGE", 2)
    org = _org(organization)
    users = [await registry.user(f"crowd{index}") for index in range(4)]
    async with registry.client(organization.owner) as client:
        await _ok(await client.put(f"{org}/team/crowd", json={"role": "member"}))
        for index, user in enumerate(users):
            repository = f"repo{index}"
            body = {"namespace": organization.name, "repository": repository, "visibility": "private"}
            await _ok(await client.post("/api/v1/repository", json={**body, "description": ""}))
            permissions = f"/api/v1/repository/{organization.name}/{repository}/permissions"
            await _ok(await client.put(f"{permissions}/team/crowd", json={"role": "read"}))
            await _ok(await client.put(f"{permissions}/user/{user.username}", json={"role": "read"}))
            if path == "members":
                await _ok(await client.put(f"{org}/team/crowd/members/{user.username}"))
        seen: list[str] = []
        pages = 0
        query: dict[str, str] = {}
        while True:
            answer = (await _ok(await client.get(f"{org}/{path}", params=query))).json()
            pages += 1
            entries = answer[key]
            seen += [
                entry["repository"]["name"] if key == "permissions" else entry["name"] for entry in entries
            ]
            if "next_page" not in answer:
                break
            query = {"next_page": answer["next_page"]}
        bad_token = await client.get(f"{org}/{path}", params={"next_page": "not-a-token"})
    expected = {
        "members": sorted(["crowd0", "crowd1", "crowd2", "crowd3", organization.owner.username]),
        "collaborators": ["crowd0", "crowd1", "crowd2", "crowd3"],
        "permissions": ["repo0", "repo1", "repo2", "repo3"],
    }[key]
    assert seen == expected
    assert pages == -(-len(expected) // 2)  # full pages: no empty one after the last
    assert bad_token.status_code == 400 and bad_token.json()["detail"] == "Invalid next_page token"


async def test_nul_characters_in_names_are_refused(registry: Registry, organization: Organization) -> None:
    org = _org(organization)
    async with registry.client(organization.owner) as client:
        member = await client.get(f"{org}/members/a%00b")
        team = await client.get(f"{org}/team/a%00b/permissions")
        token = await client.get(f"{org}/members", params={"next_page": "a\x00b"})
    for response in (member, team, token):
        assert response.status_code == 400, response.text
        assert isinstance(response.json()["detail"], str)
