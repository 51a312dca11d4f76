"""Web-session login as Quay's clients do it: GET /csrf_token, POST /api/v1/signin with the token in
X-CSRF-Token, then the session cookie (and the CSRF token on writes); POST /api/v1/signout."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import Organization, Tokens
from tests.fixtures.registry import Account, Registry, registry_settings
from tests.support.registry_app import running_registry

SESSION_COOKIE = "quayside_session"
CSRF_REFUSED = "CSRF token was invalid or missing."


@asynccontextmanager
async def signed_in(registry: Registry, account: Account) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A client holding the account's session cookie, and the session's CSRF token."""
    async with registry.client() as client:
        token = (await client.get("/csrf_token")).json()["csrf_token"]
        response = await client.post(
            "/api/v1/signin",
            json={"username": account.username, "password": account.password},
            headers={"X-CSRF-Token": token},
        )
        assert response.status_code == 200, response.text
        yield client, response.headers["X-Next-CSRF-Token"]


def set_cookie(response: httpx.Response, name: str) -> str:
    headers = [value for value in response.headers.get_list("set-cookie") if value.startswith(f"{name}=")]
    assert len(headers) == 1, response.headers
    return headers[0]


def assert_quay_error(response: httpx.Response, status: int, detail: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["detail"] == body["error_message"] == detail
    assert body["status"] == status and isinstance(body["error_type"], str)


async def test_signin_opens_a_session_that_authenticates_api_calls(registry: Registry) -> None:
    user = await registry.user()
    async with registry.client() as client:
        csrf = await client.get("/csrf_token")
        token = csrf.json()["csrf_token"]
        signin = await client.post(
            "/api/v1/signin",
            json={"username": user.username, "password": user.password},
            headers={"X-CSRF-Token": token},
        )
        me = await client.get("/api/v1/user/")
        again = await client.get("/csrf_token")
    assert csrf.headers["Cache-Control"] == "no-store"
    assert "httponly" in set_cookie(csrf, "quayside_csrf").lower()
    assert signin.status_code == 200 and signin.json() == {"success": True}
    cookie = set_cookie(signin, SESSION_COOKIE).lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
    assert "max-age=43200" in cookie and "secure" not in cookie  # plain HTTP here: not Secure
    session_token = signin.headers["X-Next-CSRF-Token"]
    assert session_token != token
    assert me.status_code == 200 and me.json()["username"] == user.username
    assert me.headers["X-Next-CSRF-Token"] == session_token
    assert again.json() == {"csrf_token": session_token}


async def test_cookies_are_secure_over_https(registry: Registry) -> None:
    user = await registry.user()
    transport = httpx.ASGITransport(app=registry.app)
    async with httpx.AsyncClient(transport=transport, base_url="https://registry.test") as client:
        csrf = await client.get("/csrf_token")
        signin = await client.post(
            "/api/v1/signin",
            json={"username": user.username, "password": user.password},
            headers={"X-CSRF-Token": csrf.json()["csrf_token"]},
        )
    assert "secure" in set_cookie(csrf, "quayside_csrf").lower()
    assert "secure" in set_cookie(signin, SESSION_COOKIE).lower()


async def test_signin_needs_the_csrf_token_of_its_cookie(registry: Registry) -> None:
    user = await registry.user()
    credentials = {"username": user.username, "password": user.password}
    async with registry.client() as client:
        without_token = await client.post("/api/v1/signin", json=credentials)
        token = (await client.get("/csrf_token")).json()["csrf_token"]
        wrong_token = await client.post(
            "/api/v1/signin", json=credentials, headers={"X-CSRF-Token": "x" + token}
        )
        me = await client.get("/api/v1/user/")
    async with registry.client() as other:  # the token without the cookie it was given with
        no_cookie = await other.post("/api/v1/signin", json=credentials, headers={"X-CSRF-Token": token})
    for refused in (without_token, wrong_token, no_cookie):
        assert_quay_error(refused, 403, CSRF_REFUSED)
        assert SESSION_COOKIE not in refused.headers.get("set-cookie", "")
    assert me.status_code == 401


async def test_wrong_credentials_get_quays_signin_refusal(
    registry: Registry, organization: Organization
) -> None:
    user = await registry.user()
    robot = await registry.robot(organization.name)
    attempts = [
        {"username": user.username, "password": "wrong"},
        {"username": "nobody", "password": "secret"},
        {"username": robot.username, "password": robot.password},  # robots do not sign in
    ]
    async with registry.client() as client:
        token = (await client.get("/csrf_token")).json()["csrf_token"]
        answers = [
            await client.post("/api/v1/signin", json=body, headers={"X-CSRF-Token": token})
            for body in attempts
        ]
        me = await client.get("/api/v1/user/")
    for answer in answers:
        assert_quay_error(answer, 403, "Invalid Username or Password")
        assert (
            answer.json()["invalidCredentials"] is True and answer.json()["needsEmailVerification"] is False
        )
        assert SESSION_COOKIE not in answer.headers.get("set-cookie", "")
    assert me.status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {"username": "a\u0000b", "password": "secret"},
        {"username": "alice", "password": "se\u0000cret"},
        {"username": "$app", "password": "not-an-app-token"},
        {"username": "x" * 255, "password": "y" * 1024},
    ],
)
async def test_odd_credentials_are_refused_cleanly(registry: Registry, body: dict[str, str]) -> None:
    async with registry.client() as client:
        token = (await client.get("/csrf_token")).json()["csrf_token"]
        answer = await client.post("/api/v1/signin", json=body, headers={"X-CSRF-Token": token})
    assert answer.status_code in (400, 403), answer.text
    assert isinstance(answer.json()["detail"], str)
    assert SESSION_COOKIE not in answer.headers.get("set-cookie", "")


async def test_signin_bodies_are_checked_and_unknown_fields_ignored(registry: Registry) -> None:
    user = await registry.user()
    async with registry.client() as client:
        token = (await client.get("/csrf_token")).json()["csrf_token"]
        headers = {"X-CSRF-Token": token}
        wrong_type = await client.post(
            "/api/v1/signin", json={"username": 3, "password": "x"}, headers=headers
        )
        missing = await client.post("/api/v1/signin", json={"username": user.username}, headers=headers)
        with_invite = await client.post(
            "/api/v1/signin",
            json={"username": user.username, "password": user.password, "invite_code": "abc"},
            headers=headers,
        )
    assert_quay_error(wrong_type, 400, "body.username: Input should be a valid string")
    assert_quay_error(missing, 400, "body.password: Field required")
    assert with_invite.status_code == 200


async def test_cookie_writes_need_the_csrf_token(registry: Registry) -> None:
    user = await registry.user()
    async with signed_in(registry, user) as (client, token):
        without = await client.post("/api/v1/organization/", json={"name": "nocsrf"})
        wrong = await client.post(
            "/api/v1/organization/", json={"name": "nocsrf"}, headers={"X-CSRF-Token": token[:-1]}
        )
        refused_org = await client.get("/api/v1/organization/nocsrf")
        created = await client.post(
            "/api/v1/organization/", json={"name": "withcsrf"}, headers={"X-CSRF-Token": token}
        )
        reads = await client.get("/api/v1/organization/withcsrf")
    assert_quay_error(without, 403, CSRF_REFUSED)
    assert_quay_error(wrong, 403, CSRF_REFUSED)
    assert refused_org.status_code == 404
    assert created.status_code == 201, created.text
    assert reads.status_code == 200


async def test_authorization_headers_win_over_the_cookie_and_need_no_csrf(registry: Registry) -> None:
    user, other = await registry.user(), await registry.user()
    async with signed_in(registry, user) as (client, _):
        as_other = await client.post(
            "/api/v1/organization/", json={"name": "basicorg"}, auth=(other.username, other.password)
        )
        me = await client.get("/api/v1/user/", auth=(other.username, other.password))
    assert as_other.status_code == 201, as_other.text
    assert me.json()["username"] == other.username and "X-Next-CSRF-Token" not in me.headers


async def test_bearer_tokens_need_no_csrf_beside_a_session_cookie(registry: Registry, tokens: Tokens) -> None:
    user = await registry.user()
    token = await tokens.create(user, ["user:admin"])
    async with signed_in(registry, user) as (client, _):
        created = await client.post(
            "/api/v1/organization/", json={"name": "bearerorg"}, headers={"Authorization": f"Bearer {token}"}
        )
    assert created.status_code == 201, created.text


async def test_signout_ends_the_session_server_side(registry: Registry) -> None:
    user = await registry.user()
    async with signed_in(registry, user) as (client, token):
        secret = client.cookies[SESSION_COOKIE]
        refused = await client.post("/api/v1/signout")
        still_in = await client.get("/api/v1/user/")
        signout = await client.post("/api/v1/signout", headers={"X-CSRF-Token": token})
    async with registry.client() as copy:
        copy.cookies.set(SESSION_COOKIE, secret)
        replayed = await copy.get("/api/v1/user/")
        write = await copy.post(
            "/api/v1/organization/", json={"name": "late"}, headers={"X-CSRF-Token": token}
        )
        signout_again = await copy.post("/api/v1/signout")
    assert_quay_error(refused, 403, CSRF_REFUSED)
    assert still_in.status_code == 200
    assert signout.status_code == 200 and signout.json() == {"success": True}
    assert (
        'quayside_session=""' in set_cookie(signout, SESSION_COOKIE)
        or "max-age=0" in set_cookie(signout, SESSION_COOKIE).lower()
    )
    assert replayed.status_code == 401 and write.status_code == 401
    assert signout_again.json() == {"success": True}


async def test_sessions_end_when_they_expire(database_url: str, tmp_path: Path) -> None:
    settings = registry_settings(database_url, tmp_path / "storage", session_ttl_s=60)
    async with running_registry(settings) as registry:
        user = await registry.user()
        async with signed_in(registry, user) as (client, _):
            cookie = client.cookies[SESSION_COOKIE]
            async with registry.context.pool.acquire() as conn:
                lifetime = await conn.fetchval(
                    "SELECT extract(epoch FROM expires_at - created_at) FROM web_session"
                    " WHERE token_hash = sha256(convert_to($1, 'UTF8'))",
                    cookie,
                )
                before = await client.get("/api/v1/user/")
                await conn.execute("UPDATE web_session SET expires_at = now() - interval '1 second'")
            after = await client.get("/api/v1/user/")
    assert float(lifetime) == 60
    assert before.status_code == 200 and after.status_code == 401


@pytest.mark.parametrize(
    ("change", "body"),
    [
        ("new password", {"password": "a-new-password"}),
        ("disabled", {"enabled": False}),
        ("deleted", None),
    ],
)
async def test_sessions_end_when_their_user_changes(
    registry: Registry, superuser: Account, change: str, body: dict[str, object] | None
) -> None:
    user = await registry.user()
    async with signed_in(registry, user) as (client, _):
        before = await client.get("/api/v1/user/")
        async with registry.client(superuser) as admin:
            path = f"/api/v1/superuser/users/{user.username}"
            changed = await (admin.put(path, json=body) if body is not None else admin.delete(path))
        after = await client.get("/api/v1/user/")
    assert before.status_code == 200
    assert changed.status_code < 300, f"{change}: {changed.text}"
    assert after.status_code == 401, change


async def test_a_superuser_session_has_superuser_permissions(registry: Registry, superuser: Account) -> None:
    async with signed_in(registry, superuser) as (client, token):
        listed = await client.get("/api/v1/superuser/users/")
        created = await client.post(
            "/api/v1/superuser/users/", json={"username": "madebysession"}, headers={"X-CSRF-Token": token}
        )
    assert listed.status_code == 200, listed.text
    assert created.status_code < 300, created.text


@pytest.mark.parametrize(
    "cookie",
    [
        "garbage",
        "a" * 43,
        '"' + "\\000" * 15 + '"',
        "x" * 5000,
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\u00e9",
    ],
)
async def test_unknown_session_cookies_call_anonymously(registry: Registry, cookie: str) -> None:
    header = {"Cookie": f"{SESSION_COOKIE}={cookie}".encode()}
    async with registry.client() as client:
        me = await client.get("/api/v1/user/", headers=header)
        csrf = await client.get("/csrf_token", headers=header)
        signout = await client.post("/api/v1/signout", headers=header)
    assert me.status_code == 401
    assert csrf.status_code == 200 and csrf.json()["csrf_token"]
    assert signout.status_code == 200


async def test_a_second_signin_replaces_the_session(registry: Registry) -> None:
    user = await registry.user()
    async with signed_in(registry, user) as (client, token):
        first = client.cookies[SESSION_COOKIE]
        again = await client.post(
            "/api/v1/signin",
            json={"username": user.username, "password": user.password},
            headers={"X-CSRF-Token": token},
        )
        second = client.cookies[SESSION_COOKIE]
    async with registry.client() as copy:
        copy.cookies.set(SESSION_COOKIE, first)
        old = await copy.get("/api/v1/user/")
    assert again.status_code == 200 and second != first
    assert old.status_code == 401


async def test_a_session_has_exactly_its_users_permissions(
    registry: Registry, organization: Organization
) -> None:
    outsider = await registry.user()
    repository = f"/api/v1/repository/{organization.name}/app"
    async with signed_in(registry, organization.owner) as (owner, token):
        created = await owner.post(
            "/api/v1/repository",
            json={"namespace": organization.name, "repository": "app", "visibility": "private"},
            headers={"X-CSRF-Token": token},
        )
        described = await owner.put(repository, json={"description": "mine"}, headers={"X-CSRF-Token": token})
    async with signed_in(registry, outsider) as (other, token):
        hidden = await other.get(repository)
        refused = await other.put(repository, json={"description": "theirs"}, headers={"X-CSRF-Token": token})
    assert created.status_code == 201 and described.status_code == 200
    assert hidden.status_code == 403 and refused.status_code == 403
