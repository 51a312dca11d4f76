"""Organizations: creation, the views of anonymous callers, members and admins, changes of email and
time-machine window, queued deletion, and the superuser's list."""

from __future__ import annotations

import pytest

from tests.api.conftest import Organization, Tokens
from tests.fixtures.registry import Account, Registry
from tests.support.gc import collect_garbage
from tests.support.oci import push_image, random_image


async def test_a_user_creates_an_organization_and_owns_it(registry: Registry) -> None:
    alice = await registry.user()
    async with registry.client(alice) as client:
        created = await client.post("/api/v1/organization/", json={"name": "acme", "email": "ops@acme.test"})
        view = (await client.get("/api/v1/organization/acme")).json()
    assert created.status_code == 201 and created.json() == "Created"
    assert view["name"] == "acme" and view["email"] == "ops@acme.test"
    assert view["is_admin"] is True and view["is_member"] is True
    assert view["tag_expiration_s"] == 1209600
    assert view["ordered_teams"] == ["owners"]
    assert view["teams"]["owners"] == {
        "name": "owners",
        "description": "",
        "role": "admin",
        "can_view": True,
        "member_count": 1,
        "repo_count": 0,
        "is_synced": False,
    }


@pytest.mark.parametrize(
    ("body", "detail_part"),
    [
        ({"name": "a/b"}, "invalid namespace name"),
        ({"name": "Acme"}, "invalid namespace name"),
        ({"name": 42}, None),
        ({}, None),
    ],
)
async def test_bad_organization_bodies_are_refused(
    registry: Registry, body: dict[str, object], detail_part: str | None
) -> None:
    alice = await registry.user()
    async with registry.client(alice) as client:
        response = await client.post("/api/v1/organization/", json=body)
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert detail and (detail_part is None or detail_part in detail)


async def test_names_of_users_and_organizations_are_one_namespace(registry: Registry) -> None:
    alice = await registry.user()
    async with registry.client(alice) as client:
        taken = await client.post("/api/v1/organization/", json={"name": alice.username})
    assert taken.status_code == 400 and "already exists" in taken.json()["detail"]


async def test_outsiders_see_the_name_members_the_teams_admins_everything(
    registry: Registry, organization: Organization
) -> None:
    member, outsider = await registry.user(), await registry.user()
    async with registry.client(organization.owner) as client:
        await client.put(f"/api/v1/organization/{organization.name}", json={"email": "x@acme.test"})
        await client.put(f"/api/v1/organization/{organization.name}/team/devs", json={"role": "member"})
        await client.put(f"/api/v1/organization/{organization.name}/team/devs/members/{member.username}")
    path = f"/api/v1/organization/{organization.name}"
    async with registry.client() as client:
        anonymous = (await client.get(path)).json()
    async with registry.client(outsider) as client:
        seen_by_outsider = (await client.get(path)).json()
    async with registry.client(member) as client:
        seen_by_member = (await client.get(path)).json()
    expected_outside = {"name": organization.name, "email": "", "is_admin": False, "is_member": False}
    assert anonymous == expected_outside and seen_by_outsider == expected_outside
    assert seen_by_member["email"] == "" and seen_by_member["is_member"] is True
    assert "tag_expiration_s" not in seen_by_member
    assert seen_by_member["ordered_teams"] == ["owners", "devs"]
    assert seen_by_member["teams"]["devs"]["can_view"] is True
    assert seen_by_member["teams"]["owners"]["can_view"] is False


async def test_unknown_organizations_and_user_namespaces_are_not_found(registry: Registry) -> None:
    alice = await registry.user()
    async with registry.client(alice) as client:
        unknown = await client.get("/api/v1/organization/nothere")
        user_namespace = await client.get(f"/api/v1/organization/{alice.username}")
        change = await client.put("/api/v1/organization/nothere", json={"email": "x@y.test"})
    assert unknown.status_code == 404 and unknown.json()["detail"] == "no organization 'nothere'"
    assert user_namespace.status_code == 404
    assert change.status_code == 404


@pytest.mark.parametrize("window", [0, 86400, 604800, 1209600, 2419200])
async def test_admins_set_the_time_machine_window_to_quays_choices(
    registry: Registry, organization: Organization, window: int
) -> None:
    async with registry.client(organization.owner) as client:
        response = await client.put(
            f"/api/v1/organization/{organization.name}", json={"tag_expiration_s": window}
        )
    assert response.status_code == 200, response.text
    assert response.json()["tag_expiration_s"] == window


async def test_other_windows_are_refused_and_nothing_changes(
    registry: Registry, organization: Organization
) -> None:
    path = f"/api/v1/organization/{organization.name}"
    async with registry.client(organization.owner) as client:
        refused = await client.put(path, json={"email": "new@acme.test", "tag_expiration_s": 3600})
        wrong_type = await client.put(path, json={"tag_expiration_s": "1w"})
        unchanged = (await client.get(path)).json()
    assert refused.status_code == 400
    assert refused.json()["detail"] == (
        "tag_expiration_s must be one of 0, 86400, 604800, 1209600, 2419200 (0s, 1d, 1w, 2w, 4w)"
    )
    assert wrong_type.status_code == 400
    assert unchanged["tag_expiration_s"] == 1209600 and unchanged["email"] is None


async def test_email_changes_and_clears(registry: Registry, organization: Organization) -> None:
    path = f"/api/v1/organization/{organization.name}"
    async with registry.client(organization.owner) as client:
        changed = (await client.put(path, json={"email": "a@acme.test"})).json()
        kept = (await client.put(path, json={"tag_expiration_s": 0})).json()
        cleared = (await client.put(path, json={"email": None})).json()
    assert changed["email"] == "a@acme.test" and kept["email"] == "a@acme.test"
    assert cleared["email"] is None


async def test_only_admins_change_or_delete_an_organization(
    registry: Registry, organization: Organization
) -> None:
    member = await registry.user()
    async with registry.client(organization.owner) as client:
        await client.put(f"/api/v1/organization/{organization.name}/team/devs", json={"role": "creator"})
        await client.put(f"/api/v1/organization/{organization.name}/team/devs/members/{member.username}")
    async with registry.client(member) as client:
        change = await client.put(f"/api/v1/organization/{organization.name}", json={"email": "x@y.test"})
        delete = await client.delete(f"/api/v1/organization/{organization.name}")
    for response in (change, delete):
        assert response.status_code == 403
        assert response.json()["detail"] == f"administrator permission on {organization.name!r} required"


async def test_deleting_an_organization_hides_it_at_once_and_purges_its_content(
    registry: Registry, organization: Organization
) -> None:
    name = organization.name
    async with registry.client(organization.owner) as client:
        await push_image(client, f"{name}/app", random_image(), "v1")
        deleted = await client.delete(f"/api/v1/organization/{name}")
        assert deleted.status_code == 204
        assert (await client.get(f"/api/v1/organization/{name}")).status_code == 404
        pulled = await client.get(f"/v2/{name}/app/manifests/v1")
        assert pulled.status_code in (401, 403, 404)
        assert name not in str((await client.get("/v2/_catalog")).json())
        assert (await client.get("/api/v1/user/")).json()["organizations"] == []
    purged = await collect_garbage(registry)
    assert purged.tally.namespaces_purged == 1 and purged.tally.repositories_purged == 1
    async with registry.context.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM namespace WHERE marked_for_deletion") == 0
        assert await conn.fetchval("SELECT count(*) FROM repository") == 0
    async with registry.client(organization.owner) as client:
        recreated = await client.post("/api/v1/organization/", json={"name": name})
    assert recreated.status_code == 201


async def test_a_robot_of_a_deleted_organization_can_no_longer_log_in(
    registry: Registry, organization: Organization
) -> None:
    robot = await registry.robot(organization.name, "ci")
    async with registry.client(organization.owner) as client:
        assert (await client.delete(f"/api/v1/organization/{organization.name}")).status_code == 204
    async with registry.client(robot) as client:
        assert (await client.get("/v2/")).status_code == 401


async def test_superusers_list_and_manage_every_organization(
    registry: Registry, organization: Organization, superuser: Account, tokens: Tokens
) -> None:
    other = await registry.organization(await registry.user())
    async with tokens.with_scopes(superuser, ["super:user", "org:admin"]) as client:
        listed = (await client.get("/api/v1/superuser/organizations/")).json()
        changed = await client.put(f"/api/v1/organization/{other}", json={"tag_expiration_s": 86400})
        deleted = await client.delete(f"/api/v1/organization/{other}")
        after = (await client.get("/api/v1/superuser/organizations/")).json()
    assert listed == {
        "organizations": sorted(
            [{"name": organization.name, "email": None}, {"name": other, "email": None}],
            key=lambda entry: str(entry["name"]),
        )
    }
    assert changed.status_code == 200 and deleted.status_code == 204
    assert after == {"organizations": [{"name": organization.name, "email": None}]}
