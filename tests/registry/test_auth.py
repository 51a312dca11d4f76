"""Docker token auth: the challenge, the token endpoint, Basic credentials, robots."""

from __future__ import annotations

import base64
import re

import jwt

from tests.fixtures.registry import Registry


def _challenge_params(header: str) -> dict[str, str]:
    scheme, _, rest = header.partition(" ")
    assert scheme == "Bearer"
    return dict(re.findall(r'(\w+)="([^"]*)"', rest))


async def test_version_check_challenges_anonymous_callers(registry: Registry) -> None:
    async with registry.client() as client:
        response = await client.get("/v2/")
    assert response.status_code == 401
    params = _challenge_params(response.headers["www-authenticate"])
    assert params["realm"] == "http://registry.test/v2/auth"
    assert params["service"] == registry.settings.token_service
    assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"


async def test_version_check_accepts_basic_credentials_and_refuses_wrong_ones(registry: Registry) -> None:
    alice = await registry.user()
    async with registry.client(alice) as client:
        assert (await client.get("/v2/")).status_code == 200
    async with registry.client() as client:
        response = await client.get("/v2/", auth=(alice.username, "wrong"))
    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"


async def test_malformed_authorization_headers_are_unauthorized_not_errors(registry: Registry) -> None:
    async with registry.client() as client:
        for header in (
            "Basic !!!notbase64",
            "Basic " + base64.b64encode(b"nocolon").decode(),
            "Digest x",
            "Bearer",
        ):
            response = await client.get("/v2/", headers={"Authorization": header})
            assert response.status_code == 401, header


async def test_token_grants_only_what_the_caller_may_do(registry: Registry) -> None:
    alice = await registry.user()
    bob = await registry.user()
    own_scope = f"repository:{alice.username}/app:pull,push"
    async with registry.client(alice) as client:
        response = await client.get("/v2/auth", params={"service": "quayside", "scope": own_scope})
    assert response.status_code == 200
    body = response.json()
    assert body["token"] == body["access_token"] and body["expires_in"] > 0
    claims = jwt.decode(body["token"], options={"verify_signature": False})
    assert claims["access"] == [
        {"type": "repository", "name": f"{alice.username}/app", "actions": ["pull", "push"]}
    ]
    assert claims["sub"] == alice.username

    async with registry.client(bob) as client:
        response = await client.get("/v2/auth", params={"scope": own_scope})
    assert jwt.decode(response.json()["token"], options={"verify_signature": False})["access"] == []


async def test_token_endpoint_refuses_bad_credentials(registry: Registry) -> None:
    alice = await registry.user()
    async with registry.client() as client:
        response = await client.get("/v2/auth", auth=(alice.username, "nope"))
    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"


async def test_bearer_tokens_are_verified(registry: Registry) -> None:
    alice = await registry.user()
    async with registry.client(alice) as client:
        token = (await client.get("/v2/auth")).json()["token"]
    async with registry.client() as client:
        ok = await client.get("/v2/", headers={"Authorization": f"Bearer {token}"})
        forged = jwt.encode(
            {"sub": "admin", "access": []}, "other-secret-0123456789abcdef0123456789", algorithm="HS256"
        )
        refused = await client.get("/v2/", headers={"Authorization": f"Bearer {forged}"})
    assert ok.status_code == 200
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]


async def test_robot_logs_in_with_its_token(registry: Registry) -> None:
    owner = await registry.user()
    org = await registry.organization(owner)
    robot = await registry.robot(org, "builder")
    assert robot.username == f"{org}+builder"
    async with registry.client(robot) as client:
        assert (await client.get("/v2/")).status_code == 200
        assert (await client.get("/v2/", auth=(robot.username, "wrong"))).status_code == 401


async def test_insufficient_token_scope_answers_a_challenge_for_the_needed_scope(registry: Registry) -> None:
    alice = await registry.user()
    async with registry.client(alice) as client:
        token = (
            await client.get("/v2/auth", params={"scope": f"repository:{alice.username}/app:pull"})
        ).json()["token"]
    async with registry.client() as client:
        response = await client.post(
            f"/v2/{alice.username}/app/blobs/uploads/", headers={"Authorization": f"Bearer {token}"}
        )
    assert response.status_code == 401
    params = _challenge_params(response.headers["www-authenticate"])
    assert params["scope"] == f"repository:{alice.username}/app:pull,push"
    assert params["error"] == "insufficient_scope"


async def test_robot_logins_good_and_bad_are_in_the_usage_logs(registry: Registry) -> None:
    owner = await registry.user()
    org = await registry.organization(owner)
    robot = await registry.robot(org, "deployer")
    async with registry.client(robot) as client:
        assert (await client.get("/v2/auth")).status_code == 200
        assert (await client.get("/v2/auth", auth=(robot.username, "wrong"))).status_code == 401
    async with registry.context.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT l.kind, l.performer_name, l.metadata FROM log_entry l JOIN namespace n ON n.id = l.namespace_id"
            " WHERE n.name = $1 ORDER BY l.id",
            org,
        )
    assert [(row["kind"], row["performer_name"]) for row in rows] == [
        ("login_success", robot.username),
        ("login_failure", None),
    ]
    assert rows[1]["metadata"]["username"] == robot.username
