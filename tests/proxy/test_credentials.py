"""A cache of an upstream that wants credentials (Distribution with htpasswd Basic auth)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fixtures.live_registry import LiveRegistry
from tests.fixtures.upstream import Upstream, running_upstream
from tests.proxy.conftest import cache_of

CREDENTIALS = ("cache-user", uuid.uuid4().hex)


@pytest.fixture(scope="module")
async def auth_upstream(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Upstream]:
    async with running_upstream(tmp_path_factory.mktemp("auth-upstream"), CREDENTIALS) as upstream:
        yield upstream


async def test_right_credentials_pull_through(
    shared_registry: LiveRegistry, auth_upstream: Upstream, tmp_path: Path
) -> None:
    username, password = CREDENTIALS
    fields = {"upstream_registry_username": username, "upstream_registry_password": password}
    async with cache_of(shared_registry, auth_upstream, tmp_path / "images", **fields) as cache:
        pushed = await cache.push_image("app", "v1")
        assert await cache.pull("app", "v1", tmp_path / "pulled") == pushed
        async with cache.client() as client:
            answered = await client.get(f"/api/v1/organization/{cache.org}/proxycache")
        assert answered.json() == {
            "upstream_registry": cache.upstream_host,
            "expiration_s": 86400,
            "insecure": True,
        }
        stored = await shared_registry.pool.fetchrow(
            "SELECT c.username_encrypted, c.password_encrypted FROM proxy_cache_config c"
            " JOIN namespace n ON n.id = c.namespace_id WHERE n.name = $1",
            cache.org,
        )
        assert password not in stored["password_encrypted"] and username not in stored["username_encrypted"]


async def test_wrong_credentials_answer_unauthorized_and_cache_nothing(
    shared_registry: LiveRegistry, auth_upstream: Upstream, tmp_path: Path
) -> None:
    fields = {"upstream_registry_username": CREDENTIALS[0], "upstream_registry_password": "wrong"}
    async with cache_of(shared_registry, auth_upstream, tmp_path / "images", **fields) as cache:
        await cache.push_image("app", "v1")
        async with cache.client() as client:
            refused = await client.get(f"/v2/{cache.path('app')}/manifests/v1")
            validated = await client.post(
                f"/api/v1/organization/{cache.org}/proxycache/validate",
                json={"upstream_registry": cache.upstream_host, "insecure": True, **fields},
            )
            right = {**fields, "upstream_registry_password": CREDENTIALS[1]}
            valid = await client.post(
                f"/api/v1/organization/{cache.org}/proxycache/validate",
                json={"upstream_registry": cache.upstream_host, "insecure": True, **right},
            )
        assert refused.status_code == 401
        assert refused.json()["errors"][0]["code"] == "UNAUTHORIZED"
        cached = await shared_registry.pool.fetchval(
            "SELECT count(*) FROM manifest m JOIN repository r ON r.id = m.repository_id"
            " JOIN namespace n ON n.id = r.namespace_id WHERE n.name = $1",
            cache.org,
        )
        assert cached == 0
        assert validated.status_code == 400 and "credentials" in validated.json()["detail"]
        assert valid.status_code == 202
