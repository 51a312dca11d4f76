"""Fetching blobs (whole, ranges, redirects, across locations) and unlinking them."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from shared.config import FilesystemLocation, S3Location
from shared.oci.digest import digest_bytes
from shared.storage.paths import blob_path
from tests.fixtures.registry import Account, Registry
from tests.support.oci import bearer_header, bearer_token, error_code, push_blob
from tests.support.registry_app import running_registry

DATA = bytes(range(256)) * 40  # 10240 bytes, each offset recognisable


@pytest.fixture
def name(owner: Account) -> str:
    return f"{owner.username}/app"


@pytest.fixture
async def digest(client: httpx.AsyncClient, name: str) -> str:
    return await push_blob(client, name, DATA)


async def test_get_and_head_describe_the_blob(client: httpx.AsyncClient, name: str, digest: str) -> None:
    fetched = await client.get(f"/v2/{name}/blobs/{digest}")
    head = await client.head(f"/v2/{name}/blobs/{digest}")

    for response in (fetched, head):
        assert response.status_code == 200
        assert response.headers["docker-content-digest"] == digest
        assert response.headers["content-length"] == str(len(DATA))
        assert response.headers["content-type"] == "application/octet-stream"
        assert response.headers["accept-ranges"] == "bytes"
        assert response.headers["etag"] == f'"{digest}"'
    assert fetched.content == DATA
    assert head.content == b""


async def test_large_blob_is_served_whole(client: httpx.AsyncClient, name: str) -> None:
    data = os.urandom(5 * 1024 * 1024 + 3)
    digest = await push_blob(client, name, data)

    fetched = await client.get(f"/v2/{name}/blobs/{digest}")

    assert fetched.content == data


async def test_blob_must_be_linked_to_the_repository(
    client: httpx.AsyncClient, owner: Account, name: str, digest: str
) -> None:
    await push_blob(client, f"{owner.username}/other", b"other content")

    unlinked = await client.get(f"/v2/{owner.username}/other/blobs/{digest}")
    unknown = await client.head(f"/v2/{name}/blobs/{digest_bytes(b'never pushed')}")

    assert unlinked.status_code == 404
    assert error_code(unlinked) == "BLOB_UNKNOWN"
    assert unknown.status_code == 404


async def test_invalid_digest_is_400(client: httpx.AsyncClient, name: str, digest: str) -> None:
    for bad in ("sha256:short", "md5:" + "0" * 32, "latest"):
        response = await client.get(f"/v2/{name}/blobs/{bad}")
        assert response.status_code == 400
        assert error_code(response) == "DIGEST_INVALID"


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=0-99", 0, 99),
        ("bytes=10000-", 10000, 10239),
        ("bytes=-40", 10200, 10239),
        ("bytes=10230-99999", 10230, 10239),
        ("bytes=-99999", 0, 10239),
    ],
)
async def test_ranges(
    client: httpx.AsyncClient, name: str, digest: str, header: str, first: int, last: int
) -> None:
    fetched = await client.get(f"/v2/{name}/blobs/{digest}", headers={"Range": header})
    head = await client.head(f"/v2/{name}/blobs/{digest}", headers={"Range": header})

    for response in (fetched, head):
        assert response.status_code == 206
        assert response.headers["content-range"] == f"bytes {first}-{last}/{len(DATA)}"
        assert response.headers["content-length"] == str(last - first + 1)
    assert fetched.content == DATA[first : last + 1]


@pytest.mark.parametrize("header", ["bytes=10240-", "bytes=20000-20010", "bytes=-0"])
async def test_unsatisfiable_range_is_416(
    client: httpx.AsyncClient, name: str, digest: str, header: str
) -> None:
    response = await client.get(f"/v2/{name}/blobs/{digest}", headers={"Range": header})

    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{len(DATA)}"
    assert response.json()["errors"][0]["code"]


@pytest.mark.parametrize("header", ["bytes=0-1,5-6", "items=0-3", "bytes=9-2", "bytes=x-y"])
async def test_ranges_not_acted_on_give_the_whole_blob(
    client: httpx.AsyncClient, name: str, digest: str, header: str
) -> None:
    response = await client.get(f"/v2/{name}/blobs/{digest}", headers={"Range": header})

    assert response.status_code == 200
    assert response.content == DATA


async def test_empty_blob_has_no_satisfiable_range(client: httpx.AsyncClient, name: str) -> None:
    digest = await push_blob(client, name, b"")

    response = await client.get(f"/v2/{name}/blobs/{digest}", headers={"Range": "bytes=0-"})

    assert response.status_code == 416
    assert response.headers["content-range"] == "bytes */0"


async def test_delete_unlinks_from_this_repository_only(
    client: httpx.AsyncClient, owner: Account, name: str, digest: str
) -> None:
    other = f"{owner.username}/other"
    await push_blob(client, other, DATA)

    deleted = await client.delete(f"/v2/{name}/blobs/{digest}")

    assert deleted.status_code == 202
    assert (await client.get(f"/v2/{name}/blobs/{digest}")).status_code == 404
    assert (await client.get(f"/v2/{other}/blobs/{digest}")).content == DATA
    again = await client.delete(f"/v2/{name}/blobs/{digest}")
    assert again.status_code == 404
    assert error_code(again) == "BLOB_UNKNOWN"


async def test_delete_of_unknown_or_invalid_digests(
    client: httpx.AsyncClient, owner: Account, name: str
) -> None:
    await push_blob(client, name, b"makes the repository")

    unknown = await client.delete(f"/v2/{name}/blobs/{digest_bytes(b'absent')}")
    never_pushed = await client.delete(f"/v2/{owner.username}/empty/blobs/{digest_bytes(b'absent')}")
    invalid = await client.delete(f"/v2/{name}/blobs/sha256:zz")

    assert (unknown.status_code, error_code(unknown)) == (404, "BLOB_UNKNOWN")
    assert (never_pushed.status_code, error_code(never_pushed)) == (404, "BLOB_UNKNOWN")
    assert (invalid.status_code, error_code(invalid)) == (400, "DIGEST_INVALID")


async def test_private_blobs_need_read_access(registry: Registry, name: str, digest: str) -> None:
    stranger = await registry.user()
    async with registry.client() as anonymous, registry.client(stranger) as other:
        challenged = await anonymous.get(f"/v2/{name}/blobs/{digest}")
        denied = await other.get(f"/v2/{name}/blobs/{digest}")
        delete_denied = await other.delete(f"/v2/{name}/blobs/{digest}")

    assert challenged.status_code == 401
    challenge = challenged.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="http://registry.test/v2/auth"')
    assert f'scope="repository:{name}:pull"' in challenge
    assert (denied.status_code, error_code(denied)) == (403, "DENIED")
    assert delete_denied.status_code == 403


async def test_public_blobs_are_readable_anonymously(registry: Registry, name: str, digest: str) -> None:
    async with registry.context.pool.acquire() as conn:
        await conn.execute("UPDATE repository SET visibility = 'public'")
    async with registry.client() as anonymous:
        fetched = await anonymous.get(f"/v2/{name}/blobs/{digest}")
        deleted = await anonymous.delete(f"/v2/{name}/blobs/{digest}")

    assert fetched.content == DATA
    assert deleted.status_code == 401


async def test_pull_with_a_bearer_token(
    registry: Registry, client: httpx.AsyncClient, name: str, digest: str
) -> None:
    token = await bearer_token(client, f"repository:{name}:pull")
    async with registry.client() as anonymous:
        fetched = await anonymous.get(f"/v2/{name}/blobs/{digest}", headers=bearer_header(token))
        delete_refused = await anonymous.delete(f"/v2/{name}/blobs/{digest}", headers=bearer_header(token))

    assert fetched.content == DATA
    assert delete_refused.status_code == 401
    assert 'error="insufficient_scope"' in delete_refused.headers["www-authenticate"]


def two_locations(tmp_path: Path, preference: list[str]) -> dict[str, object]:
    return {
        "storage_locations": {
            "near": FilesystemLocation(root=str(tmp_path / "near")),
            "far": FilesystemLocation(root=str(tmp_path / "far")),
        },
        "storage_preference": preference,
    }


async def test_reads_fall_back_to_other_locations(registry: Registry, owner: Account, tmp_path: Path) -> None:
    name = f"{owner.username}/geo"
    far_first = registry.settings.model_copy(update=two_locations(tmp_path, ["far", "near"]))
    near_first = registry.settings.model_copy(update=two_locations(tmp_path, ["near", "far"]))
    async with running_registry(far_first) as far_registry, far_registry.client(owner) as client:
        digest = await push_blob(client, name, DATA)

    async with running_registry(near_first) as near_registry, near_registry.client(owner) as client:
        not_placed_near = await client.get(f"/v2/{name}/blobs/{digest}")
        async with near_registry.context.pool.acquire() as conn:
            await conn.execute("INSERT INTO blob_placement (digest, location) VALUES ($1, 'near')", digest)
        placed_but_missing_near = await client.get(f"/v2/{name}/blobs/{digest}")
        (tmp_path / "far" / blob_path(digest)).unlink()
        nowhere = await client.get(f"/v2/{name}/blobs/{digest}")
        head = await client.head(f"/v2/{name}/blobs/{digest}")

    assert not_placed_near.content == DATA
    assert placed_but_missing_near.content == DATA
    assert nowhere.status_code == 503
    assert head.status_code == 200


async def test_preferred_placement_is_read_first(registry: Registry, owner: Account, tmp_path: Path) -> None:
    name = f"{owner.username}/geo"
    settings = registry.settings.model_copy(update=two_locations(tmp_path, ["near", "far"]))
    async with running_registry(settings) as geo, geo.client(owner) as client:
        digest = await push_blob(client, name, DATA)
        far_copy = tmp_path / "far" / blob_path(digest)
        far_copy.parent.mkdir(parents=True)
        far_copy.write_bytes(b"x" * len(DATA))
        async with geo.context.pool.acquire() as conn:
            await conn.execute("INSERT INTO blob_placement (digest, location) VALUES ($1, 'far')", digest)

        fetched = await client.get(f"/v2/{name}/blobs/{digest}")

    assert fetched.content == DATA


async def test_s3_locations_may_redirect_downloads(
    registry: Registry, owner: Account, s3_location: S3Location
) -> None:
    location = s3_location.model_copy(update={"redirect_downloads": True})
    settings = registry.settings.model_copy(
        update={"storage_locations": {"s3": location}, "storage_preference": ["s3"]}
    )
    name = f"{owner.username}/redirected"
    async with running_registry(settings) as s3_registry, s3_registry.client(owner) as client:
        digest = await push_blob(client, name, DATA)
        redirect = await client.get(f"/v2/{name}/blobs/{digest}")
        head = await client.head(f"/v2/{name}/blobs/{digest}")

    assert redirect.status_code == 307
    assert redirect.headers["docker-content-digest"] == digest
    assert head.status_code == 200
    async with httpx.AsyncClient() as direct:
        downloaded = await direct.get(redirect.headers["location"])
        ranged = await direct.get(redirect.headers["location"], headers={"Range": "bytes=5-9"})
    assert downloaded.content == DATA
    assert ranged.content == DATA[5:10]
