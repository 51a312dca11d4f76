"""OAuth applications of organizations (/api/v1/organization/{orgname}/applications) and the
access tokens users grant them through Quay's /oauth/authorizeapp flow."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from shared.auth.oauth_apps import MAX_APPLICATIONS_PER_ORGANIZATION
from tests.api.conftest import Organization, Tokens
from tests.api.test_session import signed_in
from tests.fixtures.registry import Account, Registry
from tests.support.oci import push_image, random_image

_REDIRECT = "https://app.example.test/callback"
_FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _applications(organization: Organization) -> str:
    return f"/api/v1/organization/{organization.name}/applications"


async def _new_application(registry: Registry, organization: Organization, **fields: Any) -> dict[str, Any]:
    body = {"name": "deployer", "redirect_uri": _REDIRECT, **fields}
    async with registry.client(organization.owner) as client:
        response = await client.post(_applications(organization), json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def _authorize(client: httpx.AsyncClient, form: dict[str, str], **headers: str) -> httpx.Response:
    return await client.post("/oauth/authorizeapp", content=urlencode(form), headers=_FORM | headers)


def _grant(client_id: str, scope: str = "repo:read", redirect_uri: str = _REDIRECT) -> dict[str, str]:
    return {"client_id": client_id, "redirect_uri": redirect_uri, "scope": scope, "response_type": "token"}


def _fragment(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == _REDIRECT
    return {key: values[0] for key, values in parse_qs(location.fragment).items()}


async def _api_token_count(registry: Registry) -> int:
    count: int = await registry.context.pool.fetchval("SELECT count(*) FROM api_token")
    return count


async def test_admins_create_list_view_update_and_delete_applications(
    registry: Registry, organization: Organization
) -> None:
    created = await _new_application(
        registry, organization, description="Deploys", application_uri="https://app.example.test"
    )
    path = f"{_applications(organization)}/{created['client_id']}"
    async with registry.client(organization.owner) as client:
        listed = (await client.get(_applications(organization))).json()
        viewed = (await client.get(path)).json()
        update = {"name": "renamed", "redirect_uri": _REDIRECT + "2", "application_uri": "https://b.test"}
        updated = await client.put(path, json=update)
        deleted = await client.delete(path)
        gone = await client.get(path)
        deleted_again = await client.delete(path)
    assert len(created["client_id"]) == 20 and len(created["client_secret"]) == 40
    assert created == {
        "name": "deployer",
        "description": "Deploys",
        "application_uri": "https://app.example.test",
        "client_id": created["client_id"],
        "client_secret": created["client_secret"],
        "redirect_uri": _REDIRECT,
        "avatar_email": None,
    }
    assert listed == {"applications": [created]} and viewed == created
    assert updated.status_code == 200
    assert updated.json() == created | update | {"description": ""}
    assert deleted.status_code == 204 and gone.status_code == 404 and deleted_again.status_code == 404


async def test_resetting_the_client_secret_keeps_the_client_id(
    registry: Registry, organization: Organization
) -> None:
    created = await _new_application(registry, organization)
    async with registry.client(organization.owner) as client:
        reset = await client.post(f"{_applications(organization)}/{created['client_id']}/resetclientsecret")
    assert reset.status_code == 200
    assert reset.json()["client_id"] == created["client_id"]
    assert reset.json()["client_secret"] != created["client_secret"]
    stored = await registry.context.pool.fetchval("SELECT client_secret_encrypted FROM oauth_application")
    assert reset.json()["client_secret"] not in stored  # kept encrypted


async def test_application_changes_are_logged_without_the_secret(
    registry: Registry, organization: Organization
) -> None:
    created = await _new_application(registry, organization)
    path = f"{_applications(organization)}/{created['client_id']}"
    async with registry.client(organization.owner) as client:
        await client.put(path, json={"name": "renamed", "redirect_uri": "", "application_uri": ""})
        await client.post(f"{path}/resetclientsecret")
        await client.delete(path)
    rows = await registry.context.pool.fetch(
        "SELECT l.kind, l.metadata, l.performer_name FROM log_entry l JOIN namespace n ON n.id = l.namespace_id"
        " WHERE n.name = $1 AND l.kind LIKE '%application%' ORDER BY l.id",
        organization.name,
    )
    assert [row["kind"] for row in rows] == [
        "create_application",
        "update_application",
        "reset_application_client_secret",
        "delete_application",
    ]
    assert all(row["metadata"]["client_id"] == created["client_id"] for row in rows)
    assert all(row["performer_name"] == organization.owner.username for row in rows)
    assert created["client_secret"] not in str([dict(row) for row in rows])


async def test_only_organization_admins_manage_applications(
    registry: Registry, organization: Organization, tokens: Tokens
) -> None:
    created = await _new_application(registry, organization)
    member, outsider = await registry.user(), await registry.user()
    async with registry.client(organization.owner) as client:
        await client.put(f"/api/v1/organization/{organization.name}/team/devs", json={"role": "member"})
        await client.put(f"/api/v1/organization/{organization.name}/team/devs/members/{member.username}")
    path = f"{_applications(organization)}/{created['client_id']}"
    for account in (member, outsider):
        async with registry.client(account) as client:
            assert (await client.get(_applications(organization))).status_code == 403
            assert (await client.get(path)).status_code == 403
            assert (await client.delete(path)).status_code == 403
    async with tokens.with_scopes(organization.owner, ["repo:admin"]) as client:
        assert (await client.get(path)).status_code == 403  # org:admin scope needed
    async with registry.client() as client:
        assert (await client.get(_applications(organization))).status_code == 401
    async with registry.client(organization.owner) as client:
        unknown_org = await client.get("/api/v1/organization/nosuchorg/applications")
        unknown_app = await client.get(f"{_applications(organization)}/ABCDEFGHIJ0123456789")
        malformed = await client.get(f"{_applications(organization)}/not-a-client-id")
        still = await client.get(path)
    assert unknown_org.status_code == 404 and unknown_app.status_code == 404 and malformed.status_code == 404
    assert still.status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": ""},
        {"name": "x" * 256},
        {"name": "nul\x00"},
        {"name": "app", "redirect_uri": "javascript:alert(1)"},
        {"name": "app", "redirect_uri": "https://app.test/cb#fragment"},
        {"name": "app", "redirect_uri": "/relative"},
        {"name": "app", "application_uri": "x" * 3000},
        {"name": "app", "description": 5},
    ],
    ids=["missing", "empty", "too-long", "nul", "scheme", "fragment", "relative", "long-uri", "number"],
)
async def test_bad_application_bodies_are_refused_and_create_nothing(
    registry: Registry, organization: Organization, body: dict[str, Any]
) -> None:
    async with registry.client(organization.owner) as client:
        response = await client.post(_applications(organization), json=body)
        listed = (await client.get(_applications(organization))).json()
    assert response.status_code == 400, response.text
    assert isinstance(response.json()["detail"], str) and listed == {"applications": []}


async def test_update_needs_quays_required_fields(registry: Registry, organization: Organization) -> None:
    created = await _new_application(registry, organization)
    path = f"{_applications(organization)}/{created['client_id']}"
    async with registry.client(organization.owner) as client:
        response = await client.put(path, json={"name": "only-a-name"})
        viewed = (await client.get(path)).json()
    assert response.status_code == 400 and viewed == created


async def test_authorizing_mints_a_token_with_exactly_the_granted_scopes(
    registry: Registry, organization: Organization
) -> None:
    application = await _new_application(registry, organization)
    user = await registry.user()
    async with registry.client(user) as client:
        await push_image(client, f"{user.username}/app", random_image(), "v1")
        response = await _authorize(client, _grant(application["client_id"], "repo:read user:read"))
    fragment = _fragment(response)
    assert fragment["token_type"] == "Bearer" and int(fragment["expires_in"]) > 0
    assert fragment["scope"] == "repo:read user:read"
    bearer = {"Authorization": f"Bearer {fragment['access_token']}"}
    repository = f"/api/v1/repository/{user.username}/app"
    async with registry.client() as client:
        me = await client.get("/api/v1/user/", headers=bearer)
        read = await client.get(repository, headers=bearer)
        write = await client.put(repository, json={"description": "changed"}, headers=bearer)
        user_admin = await client.post("/api/v1/user/apptoken", json={"title": "x"}, headers=bearer)
    assert me.status_code == 200 and me.json()["username"] == user.username
    assert read.status_code == 200
    assert write.status_code == 403 and "repo:write" in write.json()["detail"]
    assert user_admin.status_code == 403 and "user:admin" in user_admin.json()["detail"]


async def test_comma_separated_scopes_and_a_path_below_the_redirect_uri_are_accepted(
    registry: Registry, organization: Organization
) -> None:
    application = await _new_application(registry, organization)
    user = await registry.user()
    below = _REDIRECT + "/done?state=xyz"
    async with registry.client(user) as client:
        response = await _authorize(client, _grant(application["client_id"], "user:read,repo:read", below))
    assert response.status_code == 302
    assert response.headers["Location"].startswith(below + "#access_token=")


async def test_deleting_the_application_revokes_its_tokens(
    registry: Registry, organization: Organization
) -> None:
    application = await _new_application(registry, organization)
    user = await registry.user()
    async with registry.client(user) as client:
        fragment = _fragment(await _authorize(client, _grant(application["client_id"], "user:read")))
    bearer = {"Authorization": f"Bearer {fragment['access_token']}"}
    async with registry.client(user) as client:
        listed = (await client.get("/api/v1/user/apitokens")).json()["tokens"]
    assert [(token["name"], token["scopes"]) for token in listed] == [
        ("OAuth application deployer", ["user:read"])
    ]
    async with registry.client(organization.owner) as client:
        await client.delete(f"{_applications(organization)}/{application['client_id']}")
    async with registry.client() as client:
        refused = await client.get("/api/v1/user/", headers=bearer)
    assert refused.status_code == 401


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"client_id": "ABCDEFGHIJ0123456789"}, 400),
        ({"client_id": "nul\x00"}, 400),
        ({"client_id": ""}, 400),
        ({"redirect_uri": "https://evil.example.test/callback"}, 400),
        ({"redirect_uri": "https://app.example.test/callbackevil"}, 400),
        ({"redirect_uri": "https://app.example.test.evil.test/callback"}, 400),
        ({"redirect_uri": "https://app.example.test/callback/../elsewhere"}, 400),
        ({"redirect_uri": "https://app.example.test/callback#x"}, 400),
        ({"redirect_uri": ""}, 400),
        ({"scope": "repo:read nonsense"}, 400),
        ({"scope": ""}, 400),
        ({"scope": "super:user"}, 403),
        ({"response_type": "code"}, 400),
    ],
    ids=[
        "unknown-client",
        "nul-client",
        "no-client",
        "other-host",
        "path-prefix",
        "host-prefix",
        "dot-dot",
        "fragment",
        "no-redirect",
        "unknown-scope",
        "no-scope",
        "super-user",
        "code-flow",
    ],
)
async def test_refused_authorizations_mint_nothing(
    registry: Registry, organization: Organization, change: dict[str, str], status: int
) -> None:
    application = await _new_application(registry, organization)
    user = await registry.user()
    before = await _api_token_count(registry)
    async with registry.client(user) as client:
        response = await _authorize(client, _grant(application["client_id"]) | change)
    assert response.status_code == status, response.text
    assert "Location" not in response.headers and isinstance(response.json()["detail"], str)
    assert await _api_token_count(registry) == before


async def test_a_token_caller_grants_only_scopes_it_holds(
    registry: Registry, organization: Organization, tokens: Tokens
) -> None:
    application = await _new_application(registry, organization)
    user = await registry.user()
    async with tokens.with_scopes(user, ["repo:read"]) as client:
        before = await _api_token_count(registry)
        wider = await _authorize(client, _grant(application["client_id"], "repo:write"))
        narrower = await _authorize(client, _grant(application["client_id"], "repo:read"))
    assert wider.status_code == 403 and await _api_token_count(registry) == before + 1
    assert narrower.status_code == 302


async def test_superusers_may_grant_super_user(registry: Registry, organization: Organization) -> None:
    application = await _new_application(registry, organization)
    root = await registry.user(superuser=True)
    async with registry.client(root) as client:
        fragment = _fragment(await _authorize(client, _grant(application["client_id"], "super:user")))
    assert fragment["scope"] == "super:user"


async def test_anonymous_robots_and_cross_site_requests_are_refused(
    registry: Registry, organization: Organization
) -> None:
    application = await _new_application(registry, organization)
    user = await registry.user()
    robot = await registry.robot(organization.name)
    grant = _grant(application["client_id"])
    async with registry.client() as client:
        anonymous = await _authorize(client, grant)
    async with registry.client(robot) as client:
        by_robot = await _authorize(client, grant)
    async with registry.client(user) as client:
        cross_origin = await _authorize(client, grant, Origin="https://evil.example.test")
        cross_site = await _authorize(client, grant, **{"Sec-Fetch-Site": "cross-site"})
        same_origin = await _authorize(client, grant, Origin="http://registry.test")
    assert anonymous.status_code == 401 and by_robot.status_code == 403
    assert cross_origin.status_code == 403 and cross_site.status_code == 403
    assert same_origin.status_code == 302


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"client_id": "x"}', "application/json"),
        (b"client_id=A&client_id=B&scope=repo:read", "application/x-www-form-urlencoded"),
        (b"\xff\xfe", "application/x-www-form-urlencoded"),
        (b"scope=" + b"r" * 20_000, "application/x-www-form-urlencoded"),
    ],
    ids=["json", "repeated-field", "not-utf8", "too-large"],
)
async def test_malformed_forms_are_refused(
    registry: Registry, organization: Organization, content: bytes, content_type: str
) -> None:
    user = await registry.user()
    before = await _api_token_count(registry)
    async with registry.client(user) as client:
        response = await client.post(
            "/oauth/authorizeapp", content=content, headers={"Content-Type": content_type}
        )
    assert response.status_code in (400, 413), response.text
    assert isinstance(response.json()["detail"], str)
    assert await _api_token_count(registry) == before


async def test_app_tokens_authorize_applications_too(registry: Registry, organization: Organization) -> None:
    application = await _new_application(registry, organization)
    user = await registry.user()
    async with registry.client(user) as client:
        created = (await client.post("/api/v1/user/apptoken", json={"title": "cli"})).json()["token"]
    async with registry.client(Account("$app", created["token_code"])) as client:
        response = await _authorize(client, _grant(application["client_id"]))
    assert response.status_code == 302


async def test_an_organization_has_a_bounded_number_of_applications(
    registry: Registry, organization: Organization
) -> None:
    await registry.context.pool.execute(
        "INSERT INTO oauth_application (namespace_id, client_id, client_secret_encrypted, name)"
        " SELECT n.id, upper(substr(md5(i::text), 1, 20)), 'unused', 'bulk'"
        " FROM namespace n, generate_series(1, $2) i WHERE n.name = $1",
        organization.name,
        MAX_APPLICATIONS_PER_ORGANIZATION,
    )
    async with registry.client(organization.owner) as client:
        refused = await client.post(_applications(organization), json={"name": "one too many"})
    count = await registry.context.pool.fetchval("SELECT count(*) FROM oauth_application")
    assert refused.status_code == 400 and "at most" in refused.json()["detail"]
    assert count == MAX_APPLICATIONS_PER_ORGANIZATION


async def test_a_web_session_authorizes_with_its_csrf_token(
    registry: Registry, organization: Organization
) -> None:
    application = await _new_application(registry, organization)
    user = await registry.user()
    before = await _api_token_count(registry)
    async with signed_in(registry, user) as (client, csrf_token):
        without = await _authorize(client, _grant(application["client_id"]))
        assert await _api_token_count(registry) == before
        granted = await _authorize(client, _grant(application["client_id"]), **{"X-CSRF-Token": csrf_token})
    assert without.status_code == 403
    bearer = {"Authorization": f"Bearer {_fragment(granted)['access_token']}"}
    async with registry.client() as client:
        me = await client.get("/api/v1/user/", headers=bearer)
    assert me.status_code == 403 and "user:read" in me.json()["detail"]  # granted repo:read only
