"""/api/v1 listings continued by opaque next_page tokens: the tag history (beside Quay's page
numbers) and the repository list; a token that names no position is a 400 in Quay's error shape."""

from __future__ import annotations

import base64

import httpx
import pytest

from tests.api.conftest import Organization
from tests.fixtures.registry import Registry
from tests.support.waiting import wait_until

API = "/api/v1/repository"


async def _fill_tags(registry: Registry, organization: Organization, count: int) -> str:
    """A repository of the organization with ``count`` live tags (t000 newest ... oldest)."""
    async with registry.context.pool.acquire() as conn:
        repository_id = await conn.fetchval(
            "INSERT INTO repository (namespace_id, name) SELECT id, 'tagged' FROM namespace WHERE name = $1"
            " RETURNING id",
            organization.name,
        )
        manifest_id = await conn.fetchval(
            "INSERT INTO manifest (repository_id, digest, media_type, size, content)"
            " VALUES ($1, 'sha256:' || repeat('c', 64), 'application/vnd.oci.image.manifest.v1+json', 2, '{}')"
            " RETURNING id",
            repository_id,
        )
        await conn.execute(
            "INSERT INTO tag (repository_id, name, manifest_id, lifetime_start)"
            " SELECT $1, 't' || lpad(i::text, 3, '0'), $2, now() - i * interval '1 second'"
            " FROM generate_series(0, $3 - 1) i",
            repository_id,
            manifest_id,
            count,
        )
    return f"{API}/{organization.name}/tagged/tag/"


async def test_tag_history_pages_follow_next_page_as_page_numbers_do(
    registry: Registry, organization: Organization
) -> None:
    path = await _fill_tags(registry, organization, 7)
    by_token, by_number = [], []
    async with registry.client(organization.owner) as client:
        params: dict[str, str | int] = {"limit": 3}
        while True:
            answer = (await client.get(path, params=params)).json()
            numbered = (await client.get(path, params={"limit": 3, "page": answer["page"]})).json()
            by_token.append([tag["name"] for tag in answer["tags"]])
            by_number.append([tag["name"] for tag in numbered["tags"]])
            assert answer["has_additional"] == ("next_page" in answer) == numbered["has_additional"]
            if "next_page" not in answer:
                break
            params = {"limit": 3, "next_page": answer["next_page"]}
    assert by_token == by_number == [["t000", "t001", "t002"], ["t003", "t004", "t005"], ["t006"]]


def _token(document: bytes) -> str:
    return base64.urlsafe_b64encode(document).decode()


@pytest.mark.parametrize(
    "token",
    [
        "not base64 !",
        _token(b"[]"),
        _token(b'{"after": 1}'),
        _token(b'{"after": "a\\u0000b"}'),
        _token(b'{"page": 2, "after": {"lifetime_start": "2024-01-01T00:00:00Z", "name": "x", "id": 1e30}}'),
        _token(b'{"page": 2, "after": {"lifetime_start": "2024-01-01T00:00:00", "name": "x", "id": 1}}'),
        _token(
            b'{"page": 99999999999, "after": {"lifetime_start": "2024-01-01T00:00:00Z", "name": "x", "id": 1}}'
        ),
    ],
)
async def test_a_token_naming_no_position_is_a_400(
    registry: Registry, organization: Organization, token: str
) -> None:
    path = await _fill_tags(registry, organization, 1)
    async with registry.client(organization.owner) as client:
        tags = await client.get(path, params={"next_page": token})
        repositories = await client.get(API, params={"namespace": organization.name, "next_page": token})
    for response in (tags, repositories):
        assert response.status_code == 400, response.text
        assert response.json()["detail"] == "Invalid next_page token"


async def _history_names(registry: Registry, repository: str, page: int, size: int) -> list[str]:
    """Page ``page`` of the tag history as Quay numbers pages, read straight from the table."""
    rows = await registry.context.pool.fetch(
        "SELECT t.name FROM tag t JOIN repository r ON r.id = t.repository_id"
        " WHERE r.name = $1 AND NOT t.time_machine_removed"
        " ORDER BY t.lifetime_start DESC, t.name, t.id DESC OFFSET $2 LIMIT $3",
        repository,
        (page - 1) * size,
        size,
    )
    return [row["name"] for row in rows]


async def test_numbered_pages_stay_exact_while_tags_come_and_go(
    registry: Registry, organization: Organization
) -> None:
    """Numbered pages continue from the page starts the process remembers; a tag row added, removed
    from the time machine or deleted, even in plain SQL, moves every later page at once."""
    await wait_until(lambda: registry.context.manifests.listening)
    path = await _fill_tags(registry, organization, 200)
    size = 20

    async def page_names(client: httpx.AsyncClient, page: int) -> list[str]:
        response = await client.get(path, params={"limit": size, "page": page})
        assert response.status_code == 200, response.text
        return [tag["name"] for tag in response.json()["tags"]]

    async def page_is_exact(client: httpx.AsyncClient, page: int) -> bool:
        return await page_names(client, page) == await _history_names(registry, "tagged", page, size)

    async with registry.client(organization.owner) as client:
        for page in (7, 3, 7, 9, 10, 11):
            assert await page_is_exact(client, page), page
        changes = [
            "INSERT INTO tag (repository_id, name, manifest_id)"
            " SELECT repository_id, 'newest', manifest_id FROM tag WHERE name = 't000'",
            "UPDATE tag SET time_machine_removed = true WHERE name = 't050'",
            "DELETE FROM tag WHERE name = 't070'",
        ]
        for change in changes:
            remembered = await page_names(client, 9)
            await registry.context.pool.execute(change)
            assert await _history_names(registry, "tagged", 9, size) != remembered
            await wait_until(lambda: page_is_exact(client, 9))
            for page in (7, 8, 10):
                assert await page_is_exact(client, page), (change, page)
