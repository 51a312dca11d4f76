"""GET /v2/<name>/tags/list: live tags, bytewise order, n/last pagination with Link headers."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.fixtures.registry import Account, Registry
from tests.support.oci import INVALID_REPOSITORY_NAMES, Image, push_image, put_manifest, random_image

_NEXT_LINK = re.compile(r'^<(?P<url>[^>]+)>; rel="next"$')


@pytest.fixture
def repo(owner: Account) -> str:
    return f"{owner.username}/app"


async def tag_all(client: httpx.AsyncClient, repo: str, tags: list[str]) -> Image:
    """Push one image and point every tag at it."""
    image = random_image(layer_count=1)
    await push_image(client, repo, image, tags[0])
    for tag in tags[1:]:
        assert (await put_manifest(client, repo, tag, image.manifest)).status_code == 201
    return image


async def test_tags_are_listed_in_bytewise_order(client: httpx.AsyncClient, repo: str) -> None:
    tags = ["v1.0", "latest", "V2", "_private", "1.0", "v1.0-rc1", "Latest"]
    await tag_all(client, repo, tags)

    response = await client.get(f"/v2/{repo}/tags/list")

    assert response.status_code == 200
    assert response.json() == {"name": repo, "tags": sorted(tags)}
    assert "link" not in response.headers


async def test_pages_follow_link_headers_to_the_end(client: httpx.AsyncClient, repo: str) -> None:
    tags = [f"t{i:02d}" for i in range(7)]
    await tag_all(client, repo, tags)

    pages: list[list[str]] = []
    url: str | None = f"/v2/{repo}/tags/list?n=3"
    while url is not None:
        response = await client.get(url)
        assert response.status_code == 200
        pages.append(response.json()["tags"])
        link = response.headers.get("link")
        url = _NEXT_LINK.match(link).group("url") if link else None  # type: ignore[union-attr]

    assert pages == [tags[0:3], tags[3:6], tags[6:7]]


async def test_first_page_links_to_the_next(client: httpx.AsyncClient, repo: str) -> None:
    await tag_all(client, repo, ["a", "b", "c"])

    response = await client.get(f"/v2/{repo}/tags/list", params={"n": 2})

    assert response.json()["tags"] == ["a", "b"]
    assert response.headers["link"] == f'</v2/{repo}/tags/list?n=2&last=b>; rel="next"'


async def test_last_starts_after_the_given_tag(client: httpx.AsyncClient, repo: str) -> None:
    await tag_all(client, repo, ["a", "b", "c", "d"])

    after_b = await client.get(f"/v2/{repo}/tags/list", params={"last": "b"})
    between = await client.get(f"/v2/{repo}/tags/list", params={"last": "bb", "n": 1})
    exact_end = await client.get(f"/v2/{repo}/tags/list", params={"last": "b", "n": 2})

    assert after_b.json()["tags"] == ["c", "d"]
    assert between.json()["tags"] == ["c"]
    assert "link" in between.headers
    assert exact_end.json()["tags"] == ["c", "d"]
    assert "link" not in exact_end.headers


async def test_n_zero_answers_an_empty_list(client: httpx.AsyncClient, repo: str) -> None:
    await tag_all(client, repo, ["a"])

    response = await client.get(f"/v2/{repo}/tags/list", params={"n": 0})

    assert response.status_code == 200
    assert response.json() == {"name": repo, "tags": []}
    assert "link" not in response.headers


@pytest.mark.parametrize("n", ["-1", "many", "1.5"])
async def test_bad_n_is_a_bad_request(client: httpx.AsyncClient, repo: str, n: str) -> None:
    await tag_all(client, repo, ["a"])

    response = await client.get(f"/v2/{repo}/tags/list", params={"n": n})

    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "UNSUPPORTED"


async def test_ended_tags_are_not_listed(client: httpx.AsyncClient, repo: str) -> None:
    first = await tag_all(client, repo, ["keep", "gone"])
    assert (await client.delete(f"/v2/{repo}/manifests/gone")).status_code == 202
    await push_image(client, repo, random_image(), "keep")

    response = await client.get(f"/v2/{repo}/tags/list")

    assert response.json()["tags"] == ["keep"]
    assert (await client.get(f"/v2/{repo}/manifests/{first.digest}")).status_code == 200


async def test_unknown_repository_is_name_unknown(client: httpx.AsyncClient, repo: str) -> None:
    response = await client.get(f"/v2/{repo}/tags/list")

    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "NAME_UNKNOWN"


async def test_private_tags_are_hidden_from_others(
    registry: Registry, client: httpx.AsyncClient, repo: str, owner: Account
) -> None:
    await tag_all(client, repo, ["a"])
    stranger = await registry.user()

    async with registry.client(stranger) as other:
        existing = await other.get(f"/v2/{repo}/tags/list")
        missing = await other.get(f"/v2/{owner.username}/nothing/tags/list")

    assert existing.status_code == 403
    assert (existing.status_code, existing.json()) == (missing.status_code, missing.json())


@pytest.mark.parametrize("name", INVALID_REPOSITORY_NAMES)
async def test_invalid_repository_names_are_name_invalid(client: httpx.AsyncClient, name: str) -> None:
    response = await client.get(f"/v2/{name}/tags/list")

    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "NAME_INVALID"
