"""Superusers view, change, disable and delete the installation's users (/api/v1/superuser/users/{username})."""

from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import Organization, Tokens
from tests.fixtures.registry import Account, Registry
from tests.support.gc import collect_garbage


def _detail(response: httpx.Response) -> str:
    detail = response.json()["detail"]
    assert isinstance(detail, str)
    return detail


async def _change(registry: Registry, superuser: Account, username: str, body: object) -> httpx.Response:
    async with registry.client(superuser) as client:
        return await client.put(f"/api/v1/superuser/users/{username}", json=body)


async def _logs(registry: Registry, kind: str) -> list[dict[str, object]]:
    async with registry.context.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT metadata, performer_name FROM log_entry WHERE kind = $1 ORDER BY id", kind
        )
    return [dict(row["metadata"]) | {"performer": row["performer_name"]} for row in rows]


async def _can_log_in(registry: Registry, account: Account) -> dict[str, int]:
    """What each way of authenticating with the account's secret answers."""
    async with registry.client(account) as client:
        v2 = await client.get("/v2/")
        token = await client.get("/v2/auth", params={"scope": "repository:x/y:pull"})
        api = await client.get("/api/v1/user/")
    return {"v2": v2.status_code, "token": token.status_code, "api": api.status_code}


async def test_superusers_see_a_user_and_others_are_refused(
    registry: Registry, superuser: Account, organization: Organization, tokens: Tokens
) -> None:
    alice = await registry.user()
    await registry.robot(organization.name, "builder")
    async with registry.client(superuser) as client:
        seen = await client.get(f"/api/v1/superuser/users/{alice.username}")
        robot = await client.get(f"/api/v1/superuser/users/{organization.name}+builder")
        org = await client.get(f"/api/v1/superuser/users/{organization.name}")
        unknown = await client.get("/api/v1/superuser/users/nobody")
        nul = await client.get("/api/v1/superuser/users/a%00b")
    async with registry.client(alice) as client:
        by_user = await client.get(f"/api/v1/superuser/users/{alice.username}")
    async with registry.client() as client:
        by_anonymous = await client.get(f"/api/v1/superuser/users/{alice.username}")
    async with tokens.with_scopes(superuser, ["user:admin"]) as client:
        without_scope = await client.get(f"/api/v1/superuser/users/{alice.username}")

    assert seen.status_code == 200, seen.text
    assert seen.json() == {
        "kind": "user",
        "name": alice.username,
        "username": alice.username,
        "email": None,
        "avatar": seen.json()["avatar"],
        "super_user": False,
        "enabled": True,
    }
    assert set(seen.json()["avatar"]) == {"name", "hash", "color", "kind"}
    assert [robot.status_code, org.status_code, unknown.status_code] == [404] * 3
    assert nul.status_code == 400  # NUL characters are refused before any lookup
    assert _detail(unknown) == "no user 'nobody'"
    assert by_user.status_code == 403 and by_anonymous.status_code == 401
    assert without_scope.status_code == 403


async def test_a_superuser_changes_email_and_password(registry: Registry, superuser: Account) -> None:
    alice = await registry.user()
    changed = await _change(
        registry, superuser, alice.username, {"email": "alice@corp.test", "password": "new-secret-1"}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["email"] == "alice@corp.test"
    assert (await _can_log_in(registry, alice))["api"] == 401
    assert await _can_log_in(registry, Account(alice.username, "new-secret-1")) == {
        "v2": 200,
        "token": 200,
        "api": 200,
    }
    [email_log] = await _logs(registry, "user_change_email")
    assert email_log["username"] == alice.username and email_log["email"] == "alice@corp.test"
    assert email_log["performer"] == superuser.username
    assert len(await _logs(registry, "user_change_password")) == 1


async def test_a_disabled_user_cannot_authenticate_anywhere_until_enabled_again(
    registry: Registry, superuser: Account, tokens: Tokens
) -> None:
    alice = await registry.user()
    own_robot = await registry.robot(alice.username, "ci")
    api_token = await tokens.create(alice, ["user:read"])
    # Verified once: the credentials cache remembers alice's and her robot's secrets.
    assert await _can_log_in(registry, alice) == {"v2": 200, "token": 200, "api": 200}
    assert (await _can_log_in(registry, own_robot))["v2"] == 200

    disabled = await _change(registry, superuser, alice.username, {"enabled": False})

    assert disabled.status_code == 200, disabled.text
    assert disabled.json()["enabled"] is False
    assert await _can_log_in(registry, alice) == {"v2": 401, "token": 401, "api": 401}
    assert (await _can_log_in(registry, own_robot))["v2"] == 401
    async with tokens.client(api_token) as client:
        assert (await client.get("/api/v1/user/")).status_code == 401
    async with registry.client(superuser) as client:
        listed = (await client.get("/api/v1/superuser/users/")).json()["users"]
    assert {user["username"]: user["enabled"] for user in listed}[alice.username] is False

    enabled = await _change(registry, superuser, alice.username, {"enabled": True})

    assert enabled.json()["enabled"] is True
    assert await _can_log_in(registry, alice) == {"v2": 200, "token": 200, "api": 200}
    async with tokens.client(api_token) as client:
        assert (await client.get("/api/v1/user/")).status_code == 200
    assert [entry["username"] for entry in await _logs(registry, "user_disable")] == [alice.username]
    assert [entry["username"] for entry in await _logs(registry, "user_enable")] == [alice.username]


async def test_superusers_are_neither_changed_nor_deleted(registry: Registry, superuser: Account) -> None:
    other = await registry.user(superuser=True)
    for target in (superuser.username, other.username):
        disabled = await _change(registry, superuser, target, {"enabled": False})
        async with registry.client(superuser) as client:
            deleted = await client.delete(f"/api/v1/superuser/users/{target}")
        assert disabled.status_code == 400 and _detail(disabled) == "Cannot update a superuser"
        assert deleted.status_code == 400 and _detail(deleted) == "Cannot delete a superuser"
    assert (await _can_log_in(registry, other))["api"] == 200


@pytest.mark.parametrize(
    "body",
    [
        {"enabled": "false"},
        {"enabled": 0},
        {"email": "no-at-sign"},
        {"email": "a\x00@b.test"},
        {"email": "a@b.test", "password": "short"},
        {"password": "x" * 2000},
        {"password": "long-enough\x00"},
        ["enabled", False],
        "enabled",
    ],
)
async def test_bad_changes_are_refused_and_change_nothing(
    registry: Registry, superuser: Account, body: object
) -> None:
    alice = await registry.user()
    refused = await _change(registry, superuser, alice.username, body)
    assert refused.status_code == 400, refused.text
    assert _detail(refused)
    async with registry.client(superuser) as client:
        view = (await client.get(f"/api/v1/superuser/users/{alice.username}")).json()
    assert view["enabled"] is True and view["email"] is None
    assert (await _can_log_in(registry, alice))["api"] == 200


async def test_fields_quay_knows_but_quayside_does_not_are_ignored(
    registry: Registry, superuser: Account
) -> None:
    alice = await registry.user()
    changed = await _change(registry, superuser, alice.username, {"superuser": True, "enabled": False})
    assert changed.status_code == 200, changed.text
    assert changed.json()["super_user"] is False and changed.json()["enabled"] is False


async def test_a_deleted_user_is_gone_with_its_content_and_its_name_is_free(
    registry: Registry, superuser: Account, tokens: Tokens
) -> None:
    alice = await registry.user()
    robot = await registry.robot(alice.username, "ci")
    api_token = await tokens.create(alice, ["repo:read"])
    async with registry.client(alice) as client:
        created = await client.post(
            "/api/v1/repository",
            json={"repository": "app", "visibility": "private", "namespace": alice.username},
        )
    assert created.status_code in (200, 201), created.text
    assert (await _can_log_in(registry, robot))["v2"] == 200

    async with registry.client(superuser) as client:
        deleted = await client.delete(f"/api/v1/superuser/users/{alice.username}")
        after = await client.get(f"/api/v1/superuser/users/{alice.username}")
    assert deleted.status_code == 204, deleted.text
    assert after.status_code == 404
    assert (await _can_log_in(registry, alice))["api"] == 401
    assert (await _can_log_in(registry, robot))["v2"] == 401
    async with tokens.client(api_token) as client:
        assert (await client.get("/api/v1/user/")).status_code == 401

    await collect_garbage(registry)
    async with registry.context.pool.acquire() as conn:
        assert not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM repository WHERE name = 'app')")
    again = await registry.user(alice.username)
    assert (await _can_log_in(registry, again))["api"] == 200
    [log] = await _logs(registry, "user_delete")
    assert log["username"] == alice.username and log["performer"] == superuser.username
