"""Entity search, GET /api/v1/entities/{prefix}: matches by prefix, only what the caller may see."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import asyncpg
import pytest

from services.registry.api.entities import MAX_MATCHES_PER_KIND
from services.registry.app import create_app
from services.registry.domain import entity_search
from shared.auth.identity import Identity
from tests.api.conftest import Organization
from tests.fixtures.registry import Account, Registry, registry_settings

# Every operation this part of issue 7 added, as the OpenAPI document must list them.
OPERATIONS = {
    ("get", "/api/v1/entities/{prefix}"),
    ("get", "/api/v1/superuser/users/{username}"),
    ("put", "/api/v1/superuser/users/{username}"),
    ("delete", "/api/v1/superuser/users/{username}"),
    ("post", "/api/v1/user/initialize"),
    ("get", "/api/v1/messages"),
    ("post", "/api/v1/messages"),
    ("delete", "/api/v1/message/{uuid}"),
    ("get", "/api/v1/repository/{namespace}/{repository}/manifest/{manifestref}"),
}


async def _search(registry: Registry, account: Account | None, prefix: str, **query: str) -> Any:
    async with registry.client(account) as client:
        response = await client.get(f"/api/v1/entities/{prefix}", params=query)
    assert response.status_code == 200, response.text
    return response.json()["results"]


def _names(results: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(result["kind"] if not result.get("is_robot") else "robot", result["name"]) for result in results]


@pytest.fixture
async def scene(registry: Registry, organization: Organization) -> Organization:
    """Users pat, patricia and paul; the organization's team 'pats' and robot 'patrol'."""
    for name in ("pat", "patricia", "paul"):
        await registry.user(name)
    async with registry.client(organization.owner) as client:
        await client.put(f"/api/v1/organization/{organization.name}/team/pats", json={"role": "member"})
        await client.put(f"/api/v1/organization/{organization.name}/team/pats/members/patricia")
        await client.put(f"/api/v1/organization/{organization.name}/robots/patrol")
    return organization


async def test_users_match_by_prefix_in_name_order(registry: Registry, scene: Organization) -> None:
    results = await _search(registry, scene.owner, "Pat ")
    assert _names(results) == [("user", "pat"), ("user", "patricia")]
    assert results[0] == {"name": "pat", "kind": "user", "is_robot": False, "avatar": results[0]["avatar"]}
    assert results[0]["avatar"]["kind"] == "user" and "email" not in json.dumps(results)


async def test_members_of_the_namespace_see_its_teams_robots_and_memberships(
    registry: Registry, scene: Organization
) -> None:
    results = await _search(registry, scene.owner, "pat", namespace=scene.name, includeTeams="true")
    assert _names(results) == [
        ("team", "pats"),
        ("user", "pat"),
        ("user", "patricia"),
        ("robot", f"{scene.name}+patrol"),
    ]
    membership = {result["name"]: result["is_org_member"] for result in results}
    assert membership == {"pats": True, "pat": False, "patricia": True, f"{scene.name}+patrol": True}
    by_full_name = await _search(registry, scene.owner, f"{scene.name}+pa", namespace=scene.name)
    assert _names(by_full_name) == [("robot", f"{scene.name}+patrol")]


async def test_outsiders_see_neither_teams_robots_nor_memberships(
    registry: Registry, scene: Organization
) -> None:
    outsider = await registry.user()
    results = await _search(registry, outsider, "pat", namespace=scene.name, includeTeams="true")
    assert _names(results) == [("user", "pat"), ("user", "patricia")]
    assert all("is_org_member" not in result for result in results)
    robot = await registry.robot(scene.name, "reader")
    as_robot_outside_teams = await _search(registry, robot, "pat", namespace=scene.name, includeTeams="true")
    assert _names(as_robot_outside_teams) == [("user", "pat"), ("user", "patricia")]


async def test_a_user_sees_its_own_robots(registry: Registry) -> None:
    alice = await registry.user("alice")
    await registry.robot("alice", "deployer")
    other = await registry.user()
    mine = await _search(registry, alice, "de", namespace="alice")
    theirs = await _search(registry, other, "de", namespace="alice")
    assert _names(mine) == [("robot", "alice+deployer")]
    assert "is_org_member" not in mine[0]
    assert theirs == []


async def test_organizations_match_with_include_orgs(registry: Registry, scene: Organization) -> None:
    other_owner = await registry.user()
    other = await registry.organization(other_owner, f"{scene.name}x")
    results = await _search(registry, scene.owner, scene.name, includeOrgs="true")
    orgs = [(result["name"], result["is_org_member"]) for result in results if result["kind"] == "org"]
    assert orgs == [(scene.name, True), (other, False)]
    assert not [
        result for result in await _search(registry, scene.owner, scene.name) if result["kind"] == "org"
    ]


async def test_each_kind_is_bounded(registry: Registry) -> None:
    for number in range(MAX_MATCHES_PER_KIND + 5):
        await registry.user(f"bulk{number:02}")
    searcher = await registry.user()
    results = await _search(registry, searcher, "bulk")
    assert _names(results) == [("user", f"bulk{number:02}") for number in range(MAX_MATCHES_PER_KIND)]


async def test_anonymous_callers_must_authenticate(registry: Registry, scene: Organization) -> None:
    async with registry.client() as client:
        response = await client.get("/api/v1/entities/pat")
    assert response.status_code == 401
    assert isinstance(response.json()["detail"], str)


@pytest.mark.parametrize("prefix", ["%25", "_", "pat%25", "p%C3%A4t", "*", "%E2%80%8B", "a" * 300])
async def test_prefixes_no_name_can_start_with_match_nothing(
    registry: Registry, scene: Organization, prefix: str
) -> None:
    assert await _search(registry, scene.owner, prefix, namespace=scene.name, includeOrgs="1") == []


@pytest.mark.parametrize(
    "query",
    [{"namespace": "n" * 300}, {"includeTeams": "maybe"}, {"includeOrgs": "2"}],
)
async def test_bad_query_parameters_are_refused(
    registry: Registry, scene: Organization, query: dict[str, str]
) -> None:
    async with registry.client(scene.owner) as client:
        response = await client.get("/api/v1/entities/pat", params=query)
    assert response.status_code == 400
    assert isinstance(response.json()["detail"], str)


def test_the_new_operations_are_in_the_openapi_document(tmp_path: Path) -> None:
    app = create_app(registry_settings("postgresql://127.0.0.1/unused", tmp_path, http_api_docs=True))
    paths = app.openapi()["paths"]
    listed = {
        (method, path.replace("{repository:path}", "{repository}"))
        for path, ops in paths.items()
        for method in ops
    }
    assert listed >= OPERATIONS


class _Explaining:
    """Stands in for a connection: explains each query instead of running it."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.plans: list[str] = []

    async def fetch(self, query: str, *args: object) -> list[object]:
        plan = await self.conn.fetchval(f"EXPLAIN (FORMAT JSON) {query}", *args)
        self.plans.append(plan)
        return []


async def test_prefix_queries_use_indexes_at_a_hundred_thousand_users(registry: Registry) -> None:
    async with registry.context.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO namespace (name, kind) SELECT 'bulk' || i, CASE WHEN i % 2 = 0 THEN 'user'"
            " ELSE 'organization' END FROM generate_series(1, 200000) AS i"
        )
        await conn.execute(
            "INSERT INTO app_user (namespace_id, username, password_hash)"
            " SELECT id, name, 'unused' FROM namespace WHERE kind = 'user'"
        )
        org_id = await conn.fetchval("SELECT id FROM namespace WHERE name = 'bulk1'")
        await conn.execute(
            "INSERT INTO robot (namespace_id, shortname, token_hash) SELECT $1, 'r' || i, 'unused'"
            " FROM generate_series(1, 20000) AS i",
            org_id,
        )
        # Two teams in each organization, each with one member.
        await conn.execute(
            "INSERT INTO team (namespace_id, name, role) SELECT n.id, team.name, 'member'"
            " FROM namespace n, (VALUES ('owners'), ('t1')) AS team (name) WHERE n.kind = 'organization'"
        )
        await conn.execute(
            "INSERT INTO team_member (team_id, user_id) SELECT t.id, u.id FROM team t"
            " JOIN namespace n ON n.id = t.namespace_id"
            " JOIN app_user u ON u.username = 'bulk' || (substr(n.name, 5)::int + 1)"
        )
        await conn.execute("ANALYZE")
        explaining = _Explaining(conn)
        fake = cast(asyncpg.Connection, explaining)
        member = Identity(kind="user", id=1, name="bulk2", namespace_id=2)
        await entity_search.matching_users(fake, "bulk12", org_id, MAX_MATCHES_PER_KIND)
        await entity_search.matching_users(fake, "b", None, MAX_MATCHES_PER_KIND)
        await entity_search.matching_robots(fake, "r1", org_id, "bulk1", MAX_MATCHES_PER_KIND)
        await entity_search.matching_teams(fake, "t1", org_id, MAX_MATCHES_PER_KIND)
        await entity_search.matching_organizations(fake, "bulk1", member, MAX_MATCHES_PER_KIND)
        assert await conn.fetchval("SELECT count(*) FROM app_user") == 100_000
    assert len(explaining.plans) == 5
    for plan in explaining.plans:
        scans = list(_scans(json.loads(plan)))
        assert not [scan for scan in scans if scan[0] == "Seq Scan"], plan
        assert any(relation in _BULK_TABLES for _, relation in scans), plan


_BULK_TABLES = {"app_user", "namespace", "robot", "team", "team_member"}


def _scans(plan: Any) -> Iterator[tuple[str, str]]:
    """(node type, relation) of every scan of a bulk table in an EXPLAIN (FORMAT JSON) plan."""
    if isinstance(plan, list):
        for item in plan:
            yield from _scans(item)
    elif isinstance(plan, dict):
        if plan.get("Relation Name") in _BULK_TABLES:
            yield plan["Node Type"], plan["Relation Name"]
        for value in plan.values():
            yield from _scans(value)
