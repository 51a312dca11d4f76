"""The caller's own view, public user views, and the superuser's user list and creation."""

from __future__ import annotations

from tests.api.conftest import Organization
from tests.fixtures.registry import Account, Registry


async def test_the_current_user_sees_itself_and_its_organizations(
    registry: Registry, organization: Organization
) -> None:
    member = await registry.user()
    async with registry.client(organization.owner) as client:
        await client.put(f"/api/v1/organization/{organization.name}/team/devs", json={"role": "creator"})
        await client.put(f"/api/v1/organization/{organization.name}/team/devs/members/{member.username}")
        owner_view = (await client.get("/api/v1/user/")).json()
    async with registry.client(member) as client:
        member_view = (await client.get("/api/v1/user/")).json()
    assert owner_view == {
        "anonymous": False,
        "username": organization.owner.username,
        "email": None,
        "is_me": True,
        "can_create_repo": True,
        "tag_expiration_s": 1209600,
        "super_user": False,
        "organizations": [{"name": organization.name, "is_org_admin": True, "can_create_repo": True}],
    }
    assert member_view["organizations"] == [
        {"name": organization.name, "is_org_admin": False, "can_create_repo": True}
    ]


async def test_anyone_sees_a_users_public_view_and_superusers_see_more(
    registry: Registry, superuser: Account
) -> None:
    alice = await registry.user()
    async with registry.client() as client:
        public = await client.get(f"/api/v1/users/{alice.username}")
        unknown = await client.get("/api/v1/users/nobody")
    async with registry.client(superuser) as client:
        seen_by_superuser = (await client.get(f"/api/v1/users/{superuser.username}")).json()
    assert public.status_code == 200
    assert public.json() == {"anonymous": False, "username": alice.username}
    assert unknown.status_code == 404 and unknown.json()["detail"] == "no user 'nobody'"
    assert seen_by_superuser == {"anonymous": False, "username": superuser.username, "super_user": True}


async def test_superusers_create_users_with_a_generated_password(
    registry: Registry, superuser: Account
) -> None:
    async with registry.client(superuser) as client:
        created = await client.post(
            "/api/v1/superuser/users/", json={"username": "carol", "email": "c@x.test"}
        )
        again = await client.post("/api/v1/superuser/users/", json={"username": "carol"})
        invalid = await client.post("/api/v1/superuser/users/", json={"username": "Carol/../x"})
        listed = (await client.get("/api/v1/superuser/users/")).json()["users"]
    assert created.status_code == 200, created.text
    body = created.json()
    assert body["username"] == "carol" and body["email"] == "c@x.test" and len(body["password"]) >= 32
    assert again.status_code == 400 and "already exists" in again.json()["detail"]
    assert invalid.status_code == 400 and "invalid namespace name" in invalid.json()["detail"]
    assert {
        "kind": "user",
        "name": "carol",
        "username": "carol",
        "email": "c@x.test",
        "super_user": False,
        "enabled": True,
    } in listed
    assert {user["username"] for user in listed} == {"carol", superuser.username}

    async with registry.client(Account("carol", body["password"])) as client:
        assert (await client.get("/api/v1/user/")).json()["username"] == "carol"


async def test_superuser_views_are_refused_to_other_users(registry: Registry) -> None:
    alice = await registry.user()
    async with registry.client(alice) as client:
        listed = await client.get("/api/v1/superuser/users/")
        created = await client.post("/api/v1/superuser/users/", json={"username": "mallory"})
        organizations = await client.get("/api/v1/superuser/organizations/")
    for response in (listed, created, organizations):
        assert response.status_code == 403
        assert response.json()["detail"] == "superuser permission required"
    async with registry.client() as client:
        assert (await client.get("/api/v1/superuser/users/")).status_code == 401
