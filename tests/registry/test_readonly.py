"""Read-only mode (QUAYSIDE_REGISTRY_STATE=readonly) on /v2 and /api/v1, and repository states
that refuse writes to one repository."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import HTTPException

from services.registry.domain.repositories import Repository, ensure_repository, find_repository
from services.registry.readonly import READ_ONLY_MESSAGE, ensure_repository_writable
from shared.auth.accounts import create_robot, create_user
from shared.auth.identity import Identity
from shared.oci.digest import digest_bytes
from tests.fixtures.registry import Account, Registry, registry_settings
from tests.support.oci import Image, bearer_token, error_code, push_image, random_image
from tests.support.registry_app import running_registry

ZERO_DIGEST = "sha256:" + "0" * 64


@dataclass
class Seeded:
    """A read-only registry over content pushed before it went read-only."""

    registry: Registry
    owner: Account
    organization: str
    repo: str
    image: Image


@pytest.fixture
async def seeded(database_url: str, tmp_path: Path) -> AsyncIterator[Seeded]:
    settings = registry_settings(database_url, tmp_path / "storage")
    async with running_registry(settings) as writable:
        owner = await writable.user()
        organization = await writable.organization(owner)
        repo = f"{owner.username}/app"
        image = random_image()
        async with writable.client(owner) as client:
            await push_image(client, repo, image, "v1")
    async with running_registry(settings.model_copy(update={"registry_state": "readonly"})) as registry:
        yield Seeded(registry, owner, organization, repo, image)


async def test_pulls_reads_and_tokens_still_work(seeded: Seeded) -> None:
    repo, image = seeded.repo, seeded.image
    async with seeded.registry.client(seeded.owner) as client:
        token = await bearer_token(client, f"repository:{repo}:pull,push")
        manifest = await client.get(f"/v2/{repo}/manifests/v1")
        head = await client.head(f"/v2/{repo}/manifests/{image.digest}")
        blob = await client.get(f"/v2/{repo}/blobs/{digest_bytes(image.layers[0])}")
        tags = await client.get(f"/v2/{repo}/tags/list")
        user = await client.get("/api/v1/user/")

    assert token
    assert manifest.content == image.manifest
    assert head.status_code == 200
    assert blob.content == image.layers[0]
    assert tags.json()["tags"] == ["v1"]
    assert user.status_code == 200


def v2_writes(repo: str, image: Image) -> list[tuple[str, str]]:
    upload = f"/v2/{repo}/blobs/uploads/0b7f1a5e-0000-4000-8000-000000000000"
    return [
        ("POST", f"/v2/{repo}/blobs/uploads/"),
        ("POST", f"/v2/{repo}/blobs/uploads/?digest={ZERO_DIGEST}"),
        ("PATCH", upload),
        ("PUT", f"{upload}?digest={ZERO_DIGEST}"),
        ("DELETE", upload),
        ("PUT", f"/v2/{repo}/manifests/v2"),
        ("DELETE", f"/v2/{repo}/manifests/v1"),
        ("DELETE", f"/v2/{repo}/manifests/{image.digest}"),
        ("DELETE", f"/v2/{repo}/blobs/{digest_bytes(image.layers[0])}"),
    ]


@pytest.mark.parametrize("anonymous", [False, True])
async def test_every_v2_write_is_denied_and_changes_nothing(seeded: Seeded, anonymous: bool) -> None:
    repo, image = seeded.repo, seeded.image
    async with seeded.registry.client(None if anonymous else seeded.owner) as client:
        for method, path in v2_writes(repo, image):
            response = await client.request(method, path, content=image.manifest)

            assert response.status_code == 405, (method, path)
            assert response.json() == {
                "errors": [
                    {"code": "DENIED", "message": READ_ONLY_MESSAGE, "detail": {}, "is_readonly": True}
                ]
            }
    async with seeded.registry.client(seeded.owner) as client:
        assert (await client.get(f"/v2/{repo}/manifests/v1")).content == image.manifest
        assert (await client.get(f"/v2/{repo}/blobs/{digest_bytes(image.layers[0])}")).status_code == 200


async def test_every_api_write_is_refused_with_503_and_changes_nothing(seeded: Seeded) -> None:
    organization = seeded.organization
    writes = [
        ("POST", "/api/v1/organization/", {"name": "neworg", "email": "new@example.com"}),
        ("PUT", f"/api/v1/organization/{organization}", {"email": "changed@example.com"}),
        ("DELETE", f"/api/v1/organization/{organization}", None),
        ("PUT", f"/api/v1/organization/{organization}/team/builders", {"role": "member"}),
        ("PUT", f"/api/v1/organization/{organization}/robots/ci", {}),
        ("POST", "/api/v1/user/apitokens", {"title": "ci", "scopes": ["repo:read"]}),
        ("PATCH", "/api/v1/user/", {}),
    ]
    async with seeded.registry.client(seeded.owner) as client:
        for method, path, body in writes:
            response = await client.request(method, path, json=body)

            assert response.status_code == 503, (method, path)
            assert response.json() == {
                "detail": READ_ONLY_MESSAGE,
                "message": READ_ONLY_MESSAGE,
                "is_readonly": True,
            }
    pool = seeded.registry.context.pool
    assert await pool.fetchval("SELECT count(*) FROM namespace WHERE name = 'neworg'") == 0
    assert await pool.fetchval("SELECT count(*) FROM team WHERE name = 'builders'") == 0
    assert await pool.fetchval("SELECT count(*) FROM robot") == 0


async def set_state(pool: asyncpg.Pool, repo: str, state: str) -> None:
    namespace, _, name = repo.partition("/")
    await pool.execute(
        "UPDATE repository SET state = $3 WHERE name = $2"
        " AND namespace_id = (SELECT id FROM namespace WHERE name = $1)",
        namespace,
        name,
        state,
    )


async def test_a_read_only_repository_refuses_v2_writes_and_serves_pulls(
    registry: Registry, client: httpx.AsyncClient, owner: Account
) -> None:
    frozen, other = f"{owner.username}/frozen", f"{owner.username}/other"
    image = random_image()
    await push_image(client, frozen, image, "v1")
    await set_state(registry.context.pool, frozen, "READ_ONLY")

    push = await client.post(f"/v2/{frozen}/blobs/uploads/")
    delete = await client.delete(f"/v2/{frozen}/manifests/v1")
    pull = await client.get(f"/v2/{frozen}/manifests/v1")

    assert push.status_code == 403 and error_code(push) == "DENIED"
    assert delete.status_code == 403 and error_code(delete) == "DENIED"
    assert pull.content == image.manifest
    await push_image(client, other, random_image(), "v1")


@pytest.fixture
async def alice(db_pool: asyncpg.Pool) -> Identity:
    async with db_pool.acquire() as conn:
        return await create_user(conn, "alice", "pw")


@pytest.fixture
async def repository(db_pool: asyncpg.Pool, alice: Identity) -> Repository:
    async with db_pool.acquire() as conn:
        return await ensure_repository(conn, alice.namespace_id, "alice", "app")


async def with_state(conn: asyncpg.Connection, repository: Repository, state: str) -> Repository:
    await conn.execute("UPDATE repository SET state = $2 WHERE id = $1", repository.id, state)
    found = await find_repository(conn, repository.namespace, repository.name)
    assert found is not None
    return found


async def mirror_robot(conn: asyncpg.Connection, repository: Repository) -> Identity:
    credentials = await create_robot(conn, repository.namespace, "mirror")
    robot_id = await conn.fetchval("SELECT id FROM robot WHERE shortname = 'mirror'")
    await conn.execute(
        "INSERT INTO mirror_config (repository_id, robot_id, external_reference, tag_patterns,"
        " sync_interval_s, sync_start_date) VALUES ($1, $2, 'upstream.example/app', '{latest}', 60, now())",
        repository.id,
        robot_id,
    )
    return Identity(
        kind="robot", id=robot_id, name=credentials.username, namespace_id=repository.namespace_id
    )


async def test_api_writes_follow_the_repository_state(
    db_pool: asyncpg.Pool, repository: Repository, alice: Identity
) -> None:
    async with db_pool.acquire() as conn:
        robot = await mirror_robot(conn, repository)

        async def refusal(state: str, identity: Identity) -> HTTPException | None:
            try:
                await ensure_repository_writable(conn, await with_state(conn, repository, state), identity)
            except HTTPException as error:
                return error
            return None

        normal = await refusal("NORMAL", alice)
        read_only = await refusal("READ_ONLY", alice)
        mirror_by_user = await refusal("MIRROR", alice)
        mirror_by_robot = await refusal("MIRROR", robot)
        deleting = await refusal("MARKED_FOR_DELETION", alice)

    assert normal is None
    assert read_only is not None
    assert (read_only.status_code, read_only.detail) == (405, "alice/app is in read-only mode.")
    assert mirror_by_user is not None
    assert (mirror_by_user.status_code, mirror_by_user.detail) == (
        405,
        "Repository alice/app is a mirror. Mirrored repositories cannot be modified directly.",
    )
    assert mirror_by_robot is None
    assert deleting is not None and deleting.status_code == 404
