"""App-specific tokens: create, list, view, revoke through /api/v1/user/apptoken, and log in with
them as '$app' on /api/v1, /v2 and its token endpoint (skopeo login and copy included)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.auth.app_tokens import MAX_TOKENS_PER_USER
from tests.e2e.helpers import TAG, image_layout, pull
from tests.fixtures.live_registry import LiveRegistry
from tests.fixtures.registry import Account, Registry
from tests.support.oci import bearer_header, bearer_token, push_image, random_image
from tests.support.registry_app import running_registry
from tests.support.skopeo import run_skopeo

_TOKENS = "/api/v1/user/apptoken"
_FIELDS = {"uuid", "title", "last_accessed", "created", "expiration"}


async def _create(client: httpx.AsyncClient, title: str = "laptop") -> dict[str, Any]:
    response = await client.post(_TOKENS, json={"title": title})
    assert response.status_code == 201, response.text
    token: dict[str, Any] = response.json()["token"]
    return token


def _app(token: dict[str, Any]) -> Account:
    return Account("$app", token["token_code"])


async def _kinds_logged(registry: Registry, namespace: str) -> list[tuple[str, dict[str, Any]]]:
    rows = await registry.context.pool.fetch(
        "SELECT l.kind, l.metadata FROM log_entry l JOIN namespace n ON n.id = l.namespace_id"
        " WHERE n.name = $1 AND l.kind LIKE '%app_specific_token' ORDER BY l.id",
        namespace,
    )
    return [(row["kind"], row["metadata"]) for row in rows]


async def test_a_token_is_shown_once_listed_and_viewed_without_its_code(registry: Registry) -> None:
    user = await registry.user()
    async with registry.client(user) as client:
        created = await _create(client, "CI pipeline")
        listed = (await client.get(_TOKENS)).json()
        viewed = await client.get(f"{_TOKENS}/{created['uuid']}")
    assert set(created) == _FIELDS | {"token_code"}
    assert created["title"] == "CI pipeline" and created["created"] and created["expiration"] is None
    assert created["token_code"].startswith("qsapp_") and created["last_accessed"] is None
    assert listed == {"tokens": [{key: created[key] for key in _FIELDS}], "only_expiring": False}
    assert viewed.status_code == 200 and viewed.json() == {"token": {key: created[key] for key in _FIELDS}}


async def test_app_token_logs_in_as_its_user_on_the_api_and_v2(registry: Registry) -> None:
    user = await registry.user()
    async with registry.client(user) as client:
        token = await _create(client)
    async with registry.client(_app(token)) as client:
        me = await client.get("/api/v1/user/")
        ping = await client.get("/v2/")
        pushed = await push_image(client, f"{user.username}/app", random_image(), "v1")
        registry_token = await bearer_token(client, f"repository:{user.username}/app:pull")
    async with registry.client() as client:
        pulled = await client.get(
            f"/v2/{user.username}/app/manifests/v1", headers=bearer_header(registry_token)
        )
    async with registry.client(user) as client:
        listed = (await client.get(_TOKENS)).json()["tokens"]
    assert me.status_code == 200 and me.json()["username"] == user.username
    assert ping.status_code == 200
    assert pulled.status_code == 200 and pulled.headers["Docker-Content-Digest"] == pushed
    assert listed[0]["last_accessed"] is not None


async def test_revoked_token_is_refused_at_once(registry: Registry) -> None:
    user = await registry.user()
    async with registry.client(user) as client:
        token = await _create(client)
        kept = await _create(client, "kept")
    async with registry.client(_app(token)) as client:
        assert (await client.get("/v2/")).status_code == 200  # verified once: a cache would keep it
    async with registry.client(user) as client:
        revoked = await client.delete(f"{_TOKENS}/{token['uuid']}")
        again = await client.delete(f"{_TOKENS}/{token['uuid']}")
        viewed = await client.get(f"{_TOKENS}/{token['uuid']}")
        listed = (await client.get(_TOKENS)).json()["tokens"]
    async with registry.client(_app(token)) as client:
        v2 = await client.get("/v2/")
        api = await client.get("/api/v1/user/")
        auth = await client.get("/v2/auth", params={"scope": f"repository:{user.username}/app:pull"})
    async with registry.client(_app(kept)) as client:
        still = await client.get("/v2/")
    assert revoked.status_code == 204
    assert again.status_code == 404 and viewed.status_code == 404
    assert [entry["uuid"] for entry in listed] == [kept["uuid"]]
    assert v2.status_code == 401 and api.status_code == 401 and auth.status_code == 401
    assert still.status_code == 200


async def test_create_and_revoke_are_logged(registry: Registry) -> None:
    user = await registry.user()
    async with registry.client(user) as client:
        token = await _create(client, "deploy")
        await client.delete(f"{_TOKENS}/{token['uuid']}")
    metadata = {"app_specific_token_title": "deploy", "app_specific_token": token["uuid"]}
    logged = await _kinds_logged(registry, user.username)
    assert [kind for kind, _ in logged] == ["create_app_specific_token", "revoke_app_specific_token"]
    assert all(details.items() >= metadata.items() for _, details in logged)


async def test_tokens_of_other_users_are_not_found(registry: Registry) -> None:
    owner, other = await registry.user(), await registry.user()
    async with registry.client(owner) as client:
        token = await _create(client)
    async with registry.client(other) as client:
        viewed = await client.get(f"{_TOKENS}/{token['uuid']}")
        revoked = await client.delete(f"{_TOKENS}/{token['uuid']}")
        listed = (await client.get(_TOKENS)).json()["tokens"]
    async with registry.client(_app(token)) as client:
        still = await client.get("/api/v1/user/")
    assert viewed.status_code == 404 and revoked.status_code == 404 and listed == []
    assert still.status_code == 200 and still.json()["username"] == owner.username


async def test_robots_and_anonymous_callers_have_no_app_tokens(registry: Registry) -> None:
    owner = await registry.user()
    robot = await registry.robot(owner.username)
    async with registry.client(robot) as client:
        by_robot = await client.post(_TOKENS, json={"title": "robot"})
    async with registry.client() as client:
        anonymous = await client.get(_TOKENS)
    assert by_robot.status_code == 403 and anonymous.status_code == 401


@pytest.mark.parametrize(
    "body",
    [{}, {"title": ""}, {"title": "x" * 256}, {"title": "nul\x00"}, {"title": 7}, {"title": None}, []],
    ids=["missing", "empty", "too-long", "nul", "number", "null", "not-an-object"],
)
async def test_bad_bodies_are_refused_and_create_nothing(registry: Registry, body: object) -> None:
    user = await registry.user()
    async with registry.client(user) as client:
        response = await client.post(_TOKENS, json=body)
        listed = (await client.get(_TOKENS)).json()["tokens"]
    assert response.status_code == 400, response.text
    assert isinstance(response.json()["detail"], str) and listed == []


@pytest.mark.parametrize("token_uuid", ["not-a-uuid", "%00", "1" * 300])
async def test_malformed_token_ids_are_refused(registry: Registry, token_uuid: str) -> None:
    user = await registry.user()
    async with registry.client(user) as client:
        viewed = await client.get(f"{_TOKENS}/{token_uuid}")
        revoked = await client.delete(f"{_TOKENS}/{token_uuid}")
    assert viewed.status_code in (400, 404) and revoked.status_code in (400, 404)


@pytest.mark.parametrize("secret", ["", "qsapp_unknown", "nul\x00", "x" * 5000])
async def test_wrong_app_tokens_are_refused(registry: Registry, secret: str) -> None:
    async with registry.client(Account("$app", secret)) as client:
        v2 = await client.get("/v2/")
        api = await client.get("/api/v1/user/")
    assert v2.status_code == 401 and api.status_code == 401


@pytest.fixture
async def expiring_registry(registry: Registry) -> AsyncIterator[Registry]:
    """A registry whose app-specific tokens live one day (QUAYSIDE_APP_TOKEN_EXPIRATION_S)."""
    settings = registry.settings.model_copy(update={"app_token_expiration_s": 86_400})
    async with running_registry(settings) as expiring:
        yield expiring


async def test_configured_lifetime_expires_tokens(expiring_registry: Registry) -> None:
    registry = expiring_registry
    user = await registry.user()
    async with registry.client(user) as client:
        lasting, ending = await _create(client, "lasting"), await _create(client, "ending")
    # Within 10% of the lifetime of its end: listed as expiring. Past it: refused.
    await registry.context.pool.execute(
        "UPDATE app_token SET expires_at = now() + interval '1 hour' WHERE uuid = $1",
        uuid.UUID(ending["uuid"]),
    )
    async with registry.client(user) as client:
        expiring = (await client.get(_TOKENS, params={"expiring": "true"})).json()
    async with registry.client(_app(ending)) as client:
        before = await client.get("/v2/")
    await registry.context.pool.execute(
        "UPDATE app_token SET expires_at = now() - interval '1 second' WHERE uuid = $1",
        uuid.UUID(ending["uuid"]),
    )
    async with registry.client(_app(ending)) as client:
        after = await client.get("/v2/")
    assert lasting["expiration"] is not None
    assert expiring["only_expiring"] is True
    assert [token["uuid"] for token in expiring["tokens"]] == [ending["uuid"]]
    assert before.status_code == 200 and after.status_code == 401


@pytest.mark.e2e
async def test_skopeo_logs_in_pushes_and_pulls_with_an_app_token(
    live_registry: LiveRegistry, tmp_path: Path
) -> None:
    user = await live_registry.user()
    async with httpx.AsyncClient(base_url=live_registry.url, auth=user.auth) as client:
        token = await _create(client, "skopeo")
    app = _app(token)
    auth_file = tmp_path / "auth.json"
    login = await run_skopeo(
        "login",
        "--tls-verify=false",
        f"--authfile={auth_file}",
        "-u",
        "$app",
        "-p",
        app.password,
        live_registry.host,
    )
    layout, _ = await image_layout(tmp_path / "source")
    reference = live_registry.reference(f"{user.username}/via-app-token", TAG)
    pushed = await run_skopeo(
        "copy", "--dest-tls-verify=false", f"--authfile={auth_file}", f"oci:{layout.root}:{TAG}", reference
    )
    pulled = await pull(reference, tmp_path / "pulled", app)
    async with httpx.AsyncClient(base_url=live_registry.url, auth=user.auth) as client:
        assert (await client.delete(f"{_TOKENS}/{token['uuid']}")).status_code == 204
    refused = await pull(reference, tmp_path / "refused", app)
    assert login.ok, login.stderr
    assert pushed.ok, pushed.stderr
    assert pulled.ok, pulled.stderr
    assert not refused.ok and "unauthorized" in refused.stderr.lower()


async def test_openapi_describes_the_new_operations(registry: Registry) -> None:
    spec = registry.app.openapi()  # served at /openapi.json only when QUAYSIDE_HTTP_API_DOCS is set
    operations = {(method, path) for path, methods in spec["paths"].items() for method in methods}
    applications = "/api/v1/organization/{orgname}/applications"
    repository = "/api/v1/repository/{namespace}/{repository}"
    assert operations >= {
        ("get", _TOKENS),
        ("post", _TOKENS),
        ("get", f"{_TOKENS}/{{token_uuid}}"),
        ("delete", f"{_TOKENS}/{{token_uuid}}"),
        ("get", applications),
        ("post", applications),
        ("get", f"{applications}/{{client_id}}"),
        ("put", f"{applications}/{{client_id}}"),
        ("delete", f"{applications}/{{client_id}}"),
        ("post", f"{applications}/{{client_id}}/resetclientsecret"),
        ("post", "/oauth/authorizeapp"),
        ("get", f"{repository}/tag/{{tag}}/pull_statistics"),
        ("get", f"{repository}/manifest/{{manifestref}}/pull_statistics"),
    }
    form = spec["paths"]["/oauth/authorizeapp"]["post"]["requestBody"]["content"]
    assert set(form["application/x-www-form-urlencoded"]["schema"]["required"]) == {
        "client_id",
        "redirect_uri",
        "scope",
    }


async def test_a_user_holds_a_bounded_number_of_tokens(registry: Registry) -> None:
    user = await registry.user()
    await registry.context.pool.execute(
        "INSERT INTO app_token (uuid, user_id, title, token_hash)"
        " SELECT gen_random_uuid(), u.id, 'bulk', md5(i::text) FROM app_user u, generate_series(1, $2) i"
        " WHERE u.username = $1",
        user.username,
        MAX_TOKENS_PER_USER,
    )
    async with registry.client(user) as client:
        refused = await client.post(_TOKENS, json={"title": "one too many"})
        listed = (await client.get(_TOKENS)).json()["tokens"]
    assert refused.status_code == 400 and "at most" in refused.json()["detail"]
    assert len(listed) == MAX_TOKENS_PER_USER
