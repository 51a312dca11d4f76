"""GET /v2/_catalog: only repositories the caller may pull from, by the same rules as pulls."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import asyncpg
import httpx
import pytest

from shared.auth.accounts import authenticate
from shared.auth.permissions import repository_role
from shared.oci.mediatypes import OCI_INDEX
from tests.fixtures.registry import Account, Registry
from tests.support.oci import put_manifest

_EMPTY_INDEX = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}).encode()
_NEXT_LINK = re.compile(r'^<(?P<url>[^>]+)>; rel="next"$')


async def create_repository(
    registry: Registry, pusher: Account, name: str, visibility: str = "private"
) -> int:
    """Create the repository by a first push (of an empty index, which needs no blobs)."""
    async with registry.client(pusher) as client:
        assert (await put_manifest(client, name, "v1", _EMPTY_INDEX, OCI_INDEX)).status_code == 201
    namespace, _, repository = name.partition("/")
    repository_id: int = await registry.context.pool.fetchval(
        "UPDATE repository r SET visibility = $3 FROM namespace n"
        " WHERE n.id = r.namespace_id AND n.name = $1 AND r.name = $2 RETURNING r.id",
        namespace,
        repository,
        visibility,
    )
    return repository_id


async def grant(pool: asyncpg.Pool, repository_id: int, column: str, grantee_id: int, role: str) -> None:
    await pool.execute(
        f"INSERT INTO repository_permission (repository_id, {column}, role) VALUES ($1, $2, $3)",
        repository_id,
        grantee_id,
        role,
    )


async def catalog(registry: Registry, account: Account | None, **params: str | int) -> httpx.Response:
    async with registry.client(account) as client:
        return await client.get("/v2/_catalog", params=params)


async def listed(registry: Registry, account: Account | None) -> list[str]:
    response = await catalog(registry, account)
    assert response.status_code == 200, response.text
    repositories: list[str] = response.json()["repositories"]
    return repositories


@dataclass
class World:
    alice: Account  # owns namespace alice and organization acme
    bob: Account  # owns namespace bob
    carol: Account  # explicit read grant on acme/shared
    dave: Account  # member of acme's 'devs' team, which may write acme/team-repo
    root: Account  # superuser
    robot: Account  # acme+ci, explicit read grant on acme/robot-repo
    stranger: Account
    org: str


@pytest.fixture
async def world(registry: Registry) -> World:
    pool = registry.context.pool
    alice, bob, carol, dave, stranger = [
        await registry.user(name) for name in ("alice", "bob", "carol", "dave", "eve")
    ]
    root = await registry.user("root", superuser=True)
    org = await registry.organization(alice, "acme")
    robot = await registry.robot(org, "ci")
    await create_repository(registry, alice, "alice/private")
    await create_repository(registry, alice, "alice/public", "public")
    await create_repository(registry, bob, "bob/own")
    shared = await create_repository(registry, alice, "acme/shared")
    team_repo = await create_repository(registry, alice, "acme/team-repo")
    robot_repo = await create_repository(registry, alice, "acme/robot-repo")
    await create_repository(registry, alice, "acme/nested/public", "public")
    await grant(
        pool,
        shared,
        "user_id",
        await pool.fetchval("SELECT id FROM app_user WHERE username = 'carol'"),
        "read",
    )
    team_id = await pool.fetchval(
        "INSERT INTO team (namespace_id, name, role) SELECT id, 'devs', 'member' FROM namespace"
        " WHERE name = 'acme' RETURNING id"
    )
    await pool.execute(
        "INSERT INTO team_member (team_id, user_id) SELECT $1, id FROM app_user WHERE username = 'dave'",
        team_id,
    )
    await grant(pool, team_repo, "team_id", team_id, "write")
    await grant(
        pool,
        robot_repo,
        "robot_id",
        await pool.fetchval("SELECT id FROM robot WHERE shortname = 'ci'"),
        "read",
    )
    return World(alice, bob, carol, dave, root, robot, stranger, org)


PUBLIC = ["acme/nested/public", "alice/public"]
EVERYTHING = sorted(
    [
        "alice/private",
        "alice/public",
        "bob/own",
        "acme/shared",
        "acme/team-repo",
        "acme/robot-repo",
        "acme/nested/public",
    ]
)


async def test_anonymous_callers_see_public_repositories_only(registry: Registry, world: World) -> None:
    assert await listed(registry, None) == PUBLIC


async def test_users_see_their_own_repositories_and_public_ones(registry: Registry, world: World) -> None:
    assert await listed(registry, world.stranger) == PUBLIC
    assert await listed(registry, world.bob) == sorted([*PUBLIC, "bob/own"])


async def test_organization_admins_see_every_repository_of_the_organization(
    registry: Registry, world: World
) -> None:
    assert await listed(registry, world.alice) == sorted(name for name in EVERYTHING if name != "bob/own")


async def test_explicit_grants_to_users_teams_and_robots_are_honoured(
    registry: Registry, world: World
) -> None:
    assert await listed(registry, world.carol) == sorted([*PUBLIC, "acme/shared"])
    assert await listed(registry, world.dave) == sorted([*PUBLIC, "acme/team-repo"])
    assert await listed(registry, world.robot) == sorted([*PUBLIC, "acme/robot-repo"])


async def test_superusers_see_everything(registry: Registry, world: World) -> None:
    assert await listed(registry, world.root) == EVERYTHING


async def test_catalog_agrees_with_the_pull_rules(registry: Registry, world: World) -> None:
    accounts = [world.alice, world.bob, world.carol, world.dave, world.root, world.robot, world.stranger]
    async with registry.context.pool.acquire() as conn:
        repositories = await conn.fetch(
            "SELECT n.name || '/' || r.name AS full_name, r.id, r.namespace_id, r.visibility"
            " FROM repository r JOIN namespace n ON n.id = r.namespace_id"
        )
        for account in [None, *accounts]:
            identity = await authenticate(conn, *account.auth) if account else None
            readable = [
                row["full_name"]
                for row in repositories
                if await repository_role(conn, identity, row["id"], row["namespace_id"], row["visibility"])
            ]
            assert await listed(registry, account) == sorted(readable), account


async def test_pages_follow_link_headers(registry: Registry, world: World) -> None:
    pages: list[list[str]] = []
    url: str | None = "/v2/_catalog?n=3"
    async with registry.client(world.root) as client:
        while url is not None:
            response = await client.get(url)
            assert response.status_code == 200
            pages.append(response.json()["repositories"])
            link = response.headers.get("link")
            url = _NEXT_LINK.match(link).group("url") if link else None  # type: ignore[union-attr]

    assert pages == [EVERYTHING[0:3], EVERYTHING[3:6], EVERYTHING[6:7]]


async def test_first_page_links_to_the_next(registry: Registry, world: World) -> None:
    response = await catalog(registry, world.root, n=2)

    assert response.json()["repositories"] == EVERYTHING[:2]
    assert response.headers["link"] == f'</v2/_catalog?n=2&last={EVERYTHING[1]}>; rel="next"'


async def test_last_and_n_select_a_window(registry: Registry, world: World) -> None:
    after = await catalog(registry, world.root, last="alice/private", n=2)
    empty = await catalog(registry, world.root, n=0)

    assert after.json()["repositories"] == ["alice/public", "bob/own"]
    assert "link" not in after.headers
    assert empty.json() == {"repositories": []}
    assert "link" not in empty.headers


@pytest.mark.parametrize("n", ["-1", "lots"])
async def test_bad_n_is_a_bad_request(registry: Registry, n: str) -> None:
    response = await catalog(registry, None, n=n)

    assert response.status_code == 400


async def test_wrong_credentials_are_unauthorized(registry: Registry, world: World) -> None:
    response = await catalog(registry, Account(world.alice.username, "wrong"))

    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"


async def test_bearer_tokens_list_what_their_identity_may_read(registry: Registry, world: World) -> None:
    async with registry.client(world.bob) as client:
        token = (await client.get("/v2/auth", params={"scope": "registry:catalog:*"})).json()["token"]
    async with registry.client() as client:
        response = await client.get("/v2/_catalog", headers={"Authorization": f"Bearer {token}"})

    assert response.json()["repositories"] == sorted([*PUBLIC, "bob/own"])
