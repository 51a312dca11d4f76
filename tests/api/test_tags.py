"""The tag API: history, create and move, expiration (and its passing), delete, permanent expiry."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.registry.domain.tag_lifecycle import announcing_expired_tags, expire_due_tags
from tests.api.conftest import Organization
from tests.fixtures.registry import Registry
from tests.support.oci import Image, push_image, random_image
from tests.support.waiting import wait_until

LAYER_SIZE = 100


@pytest.fixture
def repository(organization: Organization) -> str:
    return f"{organization.name}/app"


@pytest.fixture
async def owner_client(registry: Registry, organization: Organization) -> Any:
    async with registry.client(organization.owner) as client:
        yield client


def tags_path(repository: str, tag: str | None = None) -> str:
    base = f"/api/v1/repository/{repository}/tag/"
    return base if tag is None else f"{base}{tag}"


async def history(client: httpx.AsyncClient, repository: str, **params: Any) -> dict[str, Any]:
    response = await client.get(tags_path(repository), params=params)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def outbox(registry: Registry, routing_key: str) -> list[dict[str, Any]]:
    async with registry.context.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT payload FROM event_outbox WHERE routing_key = $1 ORDER BY id", routing_key
        )
    return [row["payload"] for row in rows]


def image() -> Image:
    return random_image(layer_count=2, layer_size=LAYER_SIZE)


async def test_history_lists_live_and_ended_tags_newest_first(
    owner_client: httpx.AsyncClient, repository: str
) -> None:
    first, second = image(), image()
    first_digest = await push_image(owner_client, repository, first, "v1")
    second_digest = await push_image(owner_client, repository, second, "v1")
    await push_image(owner_client, repository, first, "v2")
    await owner_client.delete(f"/v2/{repository}/manifests/v2")

    everything = await history(owner_client, repository)
    live = await history(owner_client, repository, onlyActiveTags="true")
    one_tag = await history(owner_client, repository, specificTag="v1")
    liked = await history(owner_client, repository, filter_tag_name="like:2")
    equal = await history(owner_client, repository, filter_tag_name="eq:v1", onlyActiveTags="true")

    rows = [(tag["name"], tag["manifest_digest"], "end_ts" in tag) for tag in everything["tags"]]
    assert rows == [("v2", first_digest, True), ("v1", second_digest, False), ("v1", first_digest, True)]
    newest = everything["tags"][1]
    assert newest["size"] == 2 * LAYER_SIZE and newest["is_manifest_list"] is False
    assert newest["reversion"] is False and newest["start_ts"] <= time.time()
    assert newest["last_modified"] and "expiration" not in newest
    ended = everything["tags"][0]
    assert ended["end_ts"] >= ended["start_ts"] and ended["expiration"]
    assert everything["page"] == 1 and everything["has_additional"] is False
    assert [tag["name"] for tag in live["tags"]] == ["v1"]
    assert [tag["manifest_digest"] for tag in one_tag["tags"]] == [second_digest, first_digest]
    assert [tag["name"] for tag in liked["tags"]] == ["v2"]
    assert [tag["manifest_digest"] for tag in equal["tags"]] == [second_digest]


async def test_history_pages(owner_client: httpx.AsyncClient, repository: str) -> None:
    pushed = image()
    for index in range(5):
        await push_image(owner_client, repository, pushed, f"t{index}")
    first = await history(owner_client, repository, limit=2)
    last = await history(owner_client, repository, limit=2, page=3)
    assert [tag["name"] for tag in first["tags"]] == ["t4", "t3"] and first["has_additional"] is True
    assert [tag["name"] for tag in last["tags"]] == ["t0"] and last["has_additional"] is False


@pytest.mark.parametrize(
    "params",
    [{"filter_tag_name": "v1"}, {"filter_tag_name": "regex:v"}, {"page": "one"}, {"limit": "all"}],
)
async def test_bad_history_queries_are_refused(
    owner_client: httpx.AsyncClient, repository: str, params: dict[str, str]
) -> None:
    await push_image(owner_client, repository, image(), "v1")
    response = await owner_client.get(tags_path(repository), params=params)
    assert response.status_code == 400 and response.json()["detail"]


async def test_tags_are_created_and_moved_onto_manifests_of_the_repository(
    registry: Registry, owner_client: httpx.AsyncClient, repository: str
) -> None:
    first, second = image(), image()
    first_digest = await push_image(owner_client, repository, first, "v1")
    second_digest = await push_image(owner_client, repository, second, "v2")
    created = await owner_client.put(tags_path(repository, "stable"), json={"manifest_digest": first_digest})
    moved = await owner_client.put(tags_path(repository, "stable"), json={"manifest_digest": second_digest})
    pulled = await owner_client.get(f"/v2/{repository}/manifests/stable")
    assert created.status_code == 201 and created.json() == "Updated"
    assert moved.status_code == 201
    assert pulled.headers["docker-content-digest"] == second_digest
    async with registry.context.pool.acquire() as conn:
        logged = await conn.fetch(
            "SELECT kind, metadata FROM log_entry WHERE metadata->>'tag' = 'stable' ORDER BY id"
        )
    assert [row["kind"] for row in logged] == ["create_tag", "move_tag"]
    assert logged[1]["metadata"]["original_manifest_digest"] == first_digest


@pytest.mark.parametrize(
    ("tag", "body", "status"),
    [
        ("stable", {"manifest_digest": "sha256:" + "0" * 64}, 404),
        ("stable", {"manifest_digest": "latest"}, 400),
        ("stable", {"manifest_digest": None}, 400),
        ("stable", {"manifest_digest": 42}, 400),
        ("stable", {"image": "abc"}, 400),
        ("stable", {}, 400),
        (".hidden", {"manifest_digest": "sha256:" + "0" * 64}, 400),
        ("x" * 129, {"manifest_digest": "sha256:" + "0" * 64}, 400),
        ("stable", {"expiration": "tomorrow"}, 400),
        ("stable", {"expiration": True}, 400),
        ("stable", {"expiration": 1e20}, 400),
        ("stable", {"expiration": -5}, 400),
        ("v1", {"expiration": 1_000_000}, 400),
        ("missing", {"expiration": None}, 404),
    ],
)
async def test_bad_tag_changes_are_refused(
    owner_client: httpx.AsyncClient, repository: str, tag: str, body: dict[str, Any], status: int
) -> None:
    digest = await push_image(owner_client, repository, image(), "v1")
    response = await owner_client.put(tags_path(repository, tag), json=body)
    after = await history(owner_client, repository)
    assert response.status_code == status, response.text
    assert response.json()["detail"]
    assert [(entry["name"], entry["manifest_digest"], "end_ts" in entry) for entry in after["tags"]] == [
        ("v1", digest, False)
    ]


async def test_an_expiration_is_set_shown_and_cleared(
    registry: Registry, owner_client: httpx.AsyncClient, repository: str
) -> None:
    await push_image(owner_client, repository, image(), "v1")
    expiration = int((datetime.now(UTC) + timedelta(days=3)).timestamp())
    set_response = await owner_client.put(tags_path(repository, "v1"), json={"expiration": expiration})
    with_expiration = (await history(owner_client, repository))["tags"]
    still_pulled = await owner_client.get(f"/v2/{repository}/manifests/v1")
    listed = (await owner_client.get(f"/v2/{repository}/tags/list")).json()
    viewed = (await owner_client.get(f"/api/v1/repository/{repository}")).json()["tags"]["v1"]
    cleared = await owner_client.put(tags_path(repository, "v1"), json={"expiration": None})
    without = (await history(owner_client, repository))["tags"]
    assert set_response.status_code == 201
    assert len(with_expiration) == 1 and with_expiration[0]["end_ts"] == expiration
    assert still_pulled.status_code == 200 and listed["tags"] == ["v1"] and viewed["expiration"]
    assert cleared.status_code == 201 and len(without) == 1 and "end_ts" not in without[0]
    async with registry.context.pool.acquire() as conn:
        logged = await conn.fetch(
            "SELECT metadata FROM log_entry WHERE kind = 'change_tag_expiration' ORDER BY id"
        )
    assert [row["metadata"]["expiration_date"] for row in logged] == [expiration, None]
    assert logged[1]["metadata"]["old_expiration_date"] == expiration


async def test_a_passed_expiration_ends_the_tag_and_is_announced_once(
    registry: Registry, owner_client: httpx.AsyncClient, repository: str
) -> None:
    digest = await push_image(owner_client, repository, image(), "v1")
    soon = int((datetime.now(UTC) + timedelta(hours=1)).timestamp())
    await owner_client.put(tags_path(repository, "v1"), json={"expiration": soon})
    async with registry.context.pool.acquire() as conn:
        not_yet = await expire_due_tags(conn, datetime.now(UTC))
        # The clock passing the expiration: the tag's end moved into the past.
        await conn.execute("UPDATE tag SET lifetime_end = now() - interval '1 second' WHERE name = 'v1'")
    pulled = await owner_client.get(f"/v2/{repository}/manifests/v1")
    listed = (await owner_client.get(f"/v2/{repository}/tags/list")).json()
    live = (await history(owner_client, repository, onlyActiveTags="true"))["tags"]
    async with registry.context.pool.acquire() as conn:
        announced = await expire_due_tags(conn, datetime.now(UTC))
        announced_again = await expire_due_tags(conn, datetime.now(UTC))
    assert not_yet == 0
    assert pulled.status_code == 404 and pulled.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    assert listed["tags"] == [] and live == []
    assert (announced, announced_again) == (1, 0)
    [event] = await outbox(registry, "tag.expired")
    assert (event["repository"], event["tag"], event["digest"]) == ("app", "v1", digest)

    pushed_again = await push_image(owner_client, repository, image(), "v1")
    assert (await owner_client.get(f"/v2/{repository}/manifests/v1")).headers[
        "docker-content-digest"
    ] == pushed_again


async def test_expirations_are_announced_by_the_worker_clock(
    registry: Registry, owner_client: httpx.AsyncClient, repository: str
) -> None:
    await push_image(owner_client, repository, image(), "v1")
    expiration = datetime.now(UTC) + timedelta(days=1)
    await owner_client.put(tags_path(repository, "v1"), json={"expiration": int(expiration.timestamp())})
    async with registry.context.pool.acquire() as conn:
        before = await expire_due_tags(conn, expiration - timedelta(seconds=1))
        at_expiration = await expire_due_tags(conn, expiration + timedelta(seconds=1))
    assert (before, at_expiration) == (0, 1)
    assert [event["tag"] for event in await outbox(registry, "tag.expired")] == ["v1"]


async def test_the_worker_announces_expirations_as_they_pass(
    registry: Registry, owner_client: httpx.AsyncClient, repository: str
) -> None:
    await push_image(owner_client, repository, image(), "v1")
    soon = int((datetime.now(UTC) + timedelta(hours=1)).timestamp())
    await owner_client.put(tags_path(repository, "v1"), json={"expiration": soon})
    async with announcing_expired_tags(registry.context.pool, interval_s=0.05):
        async with registry.context.pool.acquire() as conn:
            await conn.execute("UPDATE tag SET lifetime_end = now() WHERE name = 'v1'")

        async def announced() -> bool:
            return len(await outbox(registry, "tag.expired")) == 1

        await wait_until(announced)


async def test_a_tag_ended_before_its_expiration_is_not_announced_as_expired(
    registry: Registry, owner_client: httpx.AsyncClient, repository: str
) -> None:
    pushed = image()
    await push_image(owner_client, repository, pushed, "moved")
    await push_image(owner_client, repository, pushed, "deleted")
    await push_image(owner_client, repository, pushed, "repushed")
    later = int((datetime.now(UTC) + timedelta(days=1)).timestamp())
    for tag in ("moved", "deleted", "repushed"):
        await owner_client.put(tags_path(repository, tag), json={"expiration": later})
    await push_image(owner_client, repository, image(), "moved")
    await owner_client.delete(tags_path(repository, "deleted"))
    await push_image(owner_client, repository, pushed, "repushed")
    async with registry.context.pool.acquire() as conn:
        announced = await expire_due_tags(conn, datetime.now(UTC) + timedelta(days=2))
        live_rows = await conn.fetchval(
            "SELECT count(*) FROM tag WHERE name = 'repushed' AND (lifetime_end IS NULL OR lifetime_end > now())"
        )
    assert announced == 1 and live_rows == 1
    assert [event["tag"] for event in await outbox(registry, "tag.expired")] == ["repushed"]


async def test_deleting_a_tag_ends_it_and_announces_it(
    registry: Registry, organization: Organization, owner_client: httpx.AsyncClient, repository: str
) -> None:
    digest = await push_image(owner_client, repository, image(), "v1")
    v2_digest = await push_image(owner_client, repository, image(), "v2")
    deleted = await owner_client.delete(tags_path(repository, "v1"))
    deleted_again = await owner_client.delete(tags_path(repository, "v1"))
    invalid = await owner_client.delete(tags_path(repository, "-bad"))
    pulled = await owner_client.get(f"/v2/{repository}/manifests/v1")
    by_digest = await owner_client.get(f"/v2/{repository}/manifests/{digest}")
    v2_deleted = await owner_client.delete(f"/v2/{repository}/manifests/v2")
    assert deleted.status_code == 204 and deleted_again.status_code == 404 and invalid.status_code == 400
    assert pulled.status_code == 404 and by_digest.status_code == 200
    assert v2_deleted.status_code == 202
    events = await outbox(registry, "tag.deleted")
    assert [(event["tag"], event["digest"], event["performer"]) for event in events] == [
        ("v1", digest, organization.owner.username),
        ("v2", v2_digest, organization.owner.username),
    ]


async def test_tag_changes_need_write_permission(
    registry: Registry, organization: Organization, owner_client: httpx.AsyncClient, repository: str
) -> None:
    reader = await registry.user()
    digest = await push_image(owner_client, repository, image(), "v1")
    await owner_client.put(
        f"/api/v1/repository/{repository}/permissions/user/{reader.username}", json={"role": "read"}
    )
    async with registry.client(reader) as client:
        listed = await client.get(tags_path(repository))
        moved = await client.put(tags_path(repository, "v2"), json={"manifest_digest": digest})
        deleted = await client.delete(tags_path(repository, "v1"))
        restored = await client.post(
            f"{tags_path(repository, 'v1')}/restore", json={"manifest_digest": digest}
        )
        expired = await client.post(f"{tags_path(repository, 'v1')}/expire", json={"is_alive": True})
    async with registry.client() as anonymous:
        hidden = await anonymous.get(tags_path(repository))
    assert listed.status_code == 200
    assert [moved.status_code, deleted.status_code, restored.status_code, expired.status_code] == [403] * 4
    assert hidden.status_code == 401


async def test_permanent_expiry_takes_tags_out_of_the_time_machine(
    registry: Registry, owner_client: httpx.AsyncClient, repository: str
) -> None:
    live_digest = await push_image(owner_client, repository, image(), "live")
    ended_digest = await push_image(owner_client, repository, image(), "ended")
    await owner_client.delete(tags_path(repository, "ended"))
    expire = f"{tags_path(repository, 'live')}/expire"
    live_expired = await owner_client.post(expire, json={"is_alive": True, "include_submanifests": True})
    live_again = await owner_client.post(expire, json={"is_alive": True})
    ended_expire = f"{tags_path(repository, 'ended')}/expire"
    needs_digest = await owner_client.post(ended_expire, json={})
    ended_expired = await owner_client.post(ended_expire, json={"manifest_digest": ended_digest})
    ended_again = await owner_client.post(ended_expire, json={"manifest_digest": ended_digest})
    wrong_type = await owner_client.post(ended_expire, json={"manifest_digest": 1})
    restore_live = await owner_client.post(
        f"{tags_path(repository, 'live')}/restore", json={"manifest_digest": live_digest}
    )
    restore_ended = await owner_client.post(
        f"{tags_path(repository, 'ended')}/restore", json={"manifest_digest": ended_digest}
    )
    remaining = await history(owner_client, repository)
    assert live_expired.status_code == 200 and ended_expired.status_code == 200
    assert live_again.status_code == 404 and ended_again.status_code == 404
    assert needs_digest.status_code == 400
    assert needs_digest.json()["detail"] == "manifest_digest required when is_alive set to false"
    assert wrong_type.status_code == 400
    assert restore_live.status_code == restore_ended.status_code == 400
    assert "time machine" in restore_ended.json()["detail"]
    assert remaining["tags"] == []
    assert (await owner_client.get(f"/v2/{repository}/manifests/live")).status_code == 404
    assert [event["tag"] for event in await outbox(registry, "tag.deleted")] == ["ended", "live"]
    async with registry.context.pool.acquire() as conn:
        kinds = await conn.fetch("SELECT kind FROM log_entry WHERE kind = 'permanently_delete_tag'")
    assert len(kinds) == 2


async def test_tags_of_repositories_with_nested_names(
    owner_client: httpx.AsyncClient, organization: Organization
) -> None:
    repository = f"{organization.name}/team/tag-tools/app"
    digest = await push_image(owner_client, repository, image(), "v1")
    listed = await history(owner_client, repository)
    deleted = await owner_client.delete(tags_path(repository, "v1"))
    restored = await owner_client.post(
        f"{tags_path(repository, 'v1')}/restore", json={"manifest_digest": digest}
    )
    viewed = await owner_client.get(f"/api/v1/repository/{repository}")
    assert [tag["name"] for tag in listed["tags"]] == ["v1"]
    assert deleted.status_code == 204 and restored.status_code == 200
    assert viewed.status_code == 200 and list(viewed.json()["tags"]) == ["v1"]
