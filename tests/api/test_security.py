"""Authentication of /api/v1 (API tokens, Basic, anonymous), token scopes and expiry, and the
refusal of bad requests with a JSON detail."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

from tests.api.conftest import Organization, Tokens
from tests.fixtures.registry import Account, Registry


async def test_a_token_is_shown_once_listed_without_its_secret_and_revocable(
    registry: Registry, tokens: Tokens
) -> None:
    alice = await registry.user()
    expiration = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    async with registry.client(alice) as client:
        created = await client.post(
            "/api/v1/user/apitokens",
            json={"name": "ci", "scopes": ["repo:read", "user:read"], "expiration": expiration.isoformat()},
        )
        assert created.status_code == 201, created.text
        token = created.json()
        assert token["token"].startswith("qsat_")
        assert token["name"] == "ci" and token["scopes"] == ["repo:read", "user:read"]
        assert token["last_used"] is None and token["expiration"] is not None

        async with tokens.client(token["token"]) as bearer:
            me = await bearer.get("/api/v1/user/")
        assert me.status_code == 200 and me.json()["username"] == alice.username

        listed = (await client.get("/api/v1/user/apitokens")).json()["tokens"]
        assert [(item["uuid"], item["name"]) for item in listed] == [(token["uuid"], "ci")]
        assert "token" not in listed[0] and listed[0]["last_used"] is not None

        assert (await client.delete(f"/api/v1/user/apitokens/{token['uuid']}")).status_code == 204
        assert (await client.delete(f"/api/v1/user/apitokens/{token['uuid']}")).status_code == 404
    async with tokens.client(token["token"]) as bearer:
        revoked = await bearer.get("/api/v1/user/")
    assert revoked.status_code == 401 and revoked.json()["detail"] == "invalid API token"


async def test_tokens_are_private_to_their_user(registry: Registry) -> None:
    alice, bob = await registry.user(), await registry.user()
    async with registry.client(alice) as client:
        created = (
            await client.post("/api/v1/user/apitokens", json={"name": "a", "scopes": ["repo:read"]})
        ).json()
    async with registry.client(bob) as client:
        assert (await client.get("/api/v1/user/apitokens")).json() == {"tokens": []}
        assert (await client.delete(f"/api/v1/user/apitokens/{created['uuid']}")).status_code == 404


async def test_an_expired_token_is_refused(registry: Registry, tokens: Tokens) -> None:
    alice = await registry.user()
    token = await tokens.create(alice, ["user:read"], (datetime.now(UTC) + timedelta(hours=1)).isoformat())
    async with registry.context.pool.acquire() as conn:
        # The test clock: move the expiry into the past rather than wait for it.
        await conn.execute("UPDATE api_token SET expires_at = now() - interval '1 second'")
    async with tokens.client(token) as client:
        response = await client.get("/api/v1/user/")
    assert response.status_code == 401
    assert response.json()["detail"] == "the API token has expired"
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_expiration_must_be_in_the_future_and_carry_a_time_zone(registry: Registry) -> None:
    alice = await registry.user()
    async with registry.client(alice) as client:
        past = await client.post(
            "/api/v1/user/apitokens",
            json={"name": "x", "scopes": ["repo:read"], "expiration": "2000-01-01T00:00:00Z"},
        )
        naive = await client.post(
            "/api/v1/user/apitokens",
            json={"name": "x", "scopes": ["repo:read"], "expiration": "2999-01-01T00:00:00"},
        )
    assert past.status_code == 400 and past.json()["detail"] == "expiration must be in the future"
    assert naive.status_code == 400 and naive.json()["detail"]


async def test_a_token_without_org_admin_cannot_manage_teams(
    registry: Registry, tokens: Tokens, organization: Organization
) -> None:
    team_path = f"/api/v1/organization/{organization.name}/team/devs"
    async with tokens.with_scopes(organization.owner, ["repo:admin", "user:admin"]) as client:
        refused = await client.put(team_path, json={"role": "member"})
    assert refused.status_code == 403
    assert refused.json()["detail"] == "these credentials lack the 'org:admin' scope"
    async with tokens.with_scopes(organization.owner, ["org:admin"]) as client:
        assert (await client.put(team_path, json={"role": "member"})).status_code == 200
        assert (await client.get("/api/v1/user/")).status_code == 403  # user:read is not included


async def test_scopes_include_their_lesser_scopes(registry: Registry, tokens: Tokens) -> None:
    alice = await registry.user()
    async with tokens.with_scopes(alice, ["user:admin"]) as client:
        assert (await client.get("/api/v1/user/")).status_code == 200


async def test_a_token_cannot_mint_a_token_with_more_power(registry: Registry, tokens: Tokens) -> None:
    alice = await registry.user()
    async with tokens.with_scopes(alice, ["user:admin", "repo:read"]) as client:
        refused = await client.post("/api/v1/user/apitokens", json={"name": "x", "scopes": ["org:admin"]})
        allowed = await client.post("/api/v1/user/apitokens", json={"name": "x", "scopes": ["repo:read"]})
    assert refused.status_code == 403 and refused.json()["detail"] == (
        "these credentials cannot grant org:admin"
    )
    assert allowed.status_code == 201


async def test_only_superusers_grant_super_user_and_only_super_user_tokens_carry_it(
    registry: Registry, tokens: Tokens, superuser: Account
) -> None:
    alice = await registry.user()
    async with registry.client(alice) as client:
        refused = await client.post("/api/v1/user/apitokens", json={"name": "x", "scopes": ["super:user"]})
    assert refused.status_code == 403 and refused.json()["detail"] == "only superusers can grant super:user"

    async with tokens.with_scopes(superuser, ["org:admin", "user:admin"]) as client:
        denied = await client.get("/api/v1/superuser/users/")
        me = (await client.get("/api/v1/user/")).json()
    assert denied.status_code == 403 and me["super_user"] is False
    async with tokens.with_scopes(superuser, ["super:user", "user:read"]) as client:
        assert (await client.get("/api/v1/superuser/users/")).status_code == 200
        assert (await client.get("/api/v1/user/")).json()["super_user"] is True


async def test_a_superuser_token_without_super_user_cannot_act_on_other_organizations(
    registry: Registry, tokens: Tokens, superuser: Account, organization: Organization
) -> None:
    path = f"/api/v1/organization/{organization.name}/team/devs"
    async with tokens.with_scopes(superuser, ["org:admin"]) as client:
        assert (await client.put(path, json={"role": "member"})).status_code == 403
    async with tokens.with_scopes(superuser, ["org:admin", "super:user"]) as client:
        assert (await client.put(path, json={"role": "member"})).status_code == 200


async def test_bad_credentials_are_unauthorized_and_anonymous_callers_must_log_in(registry: Registry) -> None:
    alice = await registry.user()
    async with registry.client() as client:
        anonymous = await client.get("/api/v1/user/")
        wrong = await client.get("/api/v1/user/", auth=(alice.username, "wrong"))
        unknown_token = await client.get("/api/v1/user/", headers={"Authorization": "Bearer qsat_nope"})
        malformed = await client.get("/api/v1/user/", headers={"Authorization": "Basic !!!"})
        other_scheme = await client.get("/api/v1/user/", headers={"Authorization": "Digest x"})
    assert anonymous.status_code == 401 and anonymous.json()["detail"] == "authentication required"
    assert wrong.status_code == 401 and wrong.json()["detail"] == "invalid username or password"
    assert unknown_token.status_code == 401 and unknown_token.json()["detail"] == "invalid API token"
    assert malformed.status_code == 401 and malformed.json()["detail"]
    assert other_scheme.status_code == 401 and other_scheme.json()["detail"] == (
        "unsupported authorization scheme"
    )


async def test_robots_authenticate_but_cannot_use_user_endpoints(
    registry: Registry, organization: Organization
) -> None:
    robot = await registry.robot(organization.name, "ci")
    async with registry.client(robot) as client:
        response = await client.get("/api/v1/user/")
        public = await client.get(f"/api/v1/organization/{organization.name}")
    assert response.status_code == 403
    assert response.json()["detail"] == "robot accounts cannot use this endpoint"
    assert public.status_code == 200 and public.json()["is_admin"] is False


async def test_bad_bodies_are_refused_with_a_detail_and_write_nothing(
    registry: Registry, organization: Organization
) -> None:
    path = f"/api/v1/organization/{organization.name}/team/devs"
    async with registry.client(organization.owner) as client:
        wrong_type = await client.put(path, json={"role": 3})
        unknown_role = await client.put(path, json={"role": "boss"})
        not_json = await client.put(path, content=b"{nope", headers={"Content-Type": "application/json"})
        too_big = await client.put(path, json={"role": "member", "description": "x" * (1024 * 1024 + 1)})
        bad_uuid = await client.delete("/api/v1/user/apitokens/not-a-uuid")
        members = await client.get(f"{path}/members")
    for response in (wrong_type, unknown_role, not_json, bad_uuid):
        assert response.status_code == 400, response.text
        assert response.json()["detail"]
    assert too_big.status_code == 413 and too_big.json()["detail"] == "Content Too Large"
    assert members.status_code == 404  # no team was created by any of them


async def test_chunked_bodies_over_the_limit_are_refused(
    registry: Registry, organization: Organization
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield b" " * (512 * 1024)

    async with registry.client(organization.owner) as client:
        response = await client.put(
            f"/api/v1/organization/{organization.name}/team/devs",
            content=chunks(),
            headers={"Content-Type": "application/json"},
        )
    assert response.status_code == 413 and response.json()["detail"] == "Content Too Large"
