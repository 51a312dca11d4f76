"""What /v2 pushes and deletes write to the usage logs."""

from __future__ import annotations

from typing import Any

from tests.fixtures.registry import Registry
from tests.support.oci import push_image, random_image


async def repository_logs(registry: Registry, client: Any, repository: str) -> list[dict[str, Any]]:
    answer = (await client.get(f"/api/v1/repository/{repository}/logs")).json()
    return list(reversed(answer["logs"]))


async def test_pushes_and_deletes_are_logged_with_their_performer(registry: Registry) -> None:
    owner = await registry.user()
    org = await registry.organization(owner)
    robot = await registry.robot(org, "ci")
    async with registry.context.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO team (namespace_id, name, role) SELECT id, 'builders', 'creator' FROM namespace WHERE name = $1",
            org,
        )
        await conn.execute(
            "INSERT INTO team_member (team_id, robot_id) SELECT t.id, r.id FROM team t, robot r"
            " WHERE t.name = 'builders' AND r.shortname = 'ci'"
        )
    repository = f"{org}/app"
    first, second = random_image(), random_image()

    async with registry.client(robot) as ci:
        await push_image(ci, repository, first, "latest")
        await push_image(ci, repository, second, "latest")
        await push_image(ci, repository, second, "latest")
    async with registry.client(owner) as client:
        deleted = await client.delete(f"/v2/{repository}/manifests/latest")
        logs = await repository_logs(registry, client, repository)

    assert deleted.status_code == 202
    assert [(entry["kind"], entry["performer"]["name"]) for entry in logs] == [
        ("push_repo", robot.username),
        ("create_tag", robot.username),
        ("push_repo", robot.username),
        ("move_tag", robot.username),
        ("push_repo", robot.username),
        ("delete_tag", owner.username),
    ]
    assert logs[1]["metadata"] == {
        "tag": "latest",
        "manifest_digest": first.digest,
        "namespace": org,
        "repo": "app",
    }
    assert logs[3]["metadata"]["original_manifest_digest"] == first.digest
    assert logs[5]["metadata"]["manifest_digest"] == second.digest
    assert all(entry["performer"]["is_robot"] for entry in logs[:5])
    assert logs[0]["ip"] == "127.0.0.1"


async def test_deleting_a_manifest_logs_each_tag_it_carried(registry: Registry) -> None:
    owner = await registry.user()
    image = random_image()
    repository = f"{owner.username}/app"
    async with registry.client(owner) as client:
        await push_image(client, repository, image, "v1")
        await push_image(client, repository, image, "stable")
        deleted = await client.delete(f"/v2/{repository}/manifests/{image.digest}")
        logs = await repository_logs(registry, client, repository)

    assert deleted.status_code == 202
    assert sorted(entry["metadata"]["tag"] for entry in logs if entry["kind"] == "delete_tag") == [
        "stable",
        "v1",
    ]


async def test_a_refused_push_leaves_no_log(registry: Registry) -> None:
    owner = await registry.user()
    repository = f"{owner.username}/app"
    async with registry.client(owner) as client:
        refused = await client.put(
            f"/v2/{repository}/manifests/latest",
            content=random_image().manifest,
            headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        )
    assert refused.status_code == 400
    assert await registry.context.pool.fetchval("SELECT count(*) FROM log_entry") == 0
