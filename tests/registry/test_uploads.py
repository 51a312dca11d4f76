"""The blob upload protocol: sessions, monolithic and chunked uploads, mounts, verification."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.types import Message

from shared.config import S3Location
from shared.oci.digest import digest_bytes
from shared.storage.paths import blob_path
from tests.fixtures.registry import Account, Registry
from tests.support.oci import bearer_header, bearer_token, error_code, push_blob
from tests.support.registry_app import running_registry

EMPTY_SHA256 = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def storage_root(registry: Registry) -> Path:
    location = registry.settings.storage_locations["local"]
    assert location.driver == "filesystem"
    return Path(location.root)


def stored_files(root: Path, folder: str) -> list[str]:
    base = root / folder
    return sorted(path.relative_to(root).as_posix() for path in base.rglob("*") if path.is_file())


async def start_upload(client: httpx.AsyncClient, name: str) -> str:
    response = await client.post(f"/v2/{name}/blobs/uploads/")
    assert response.status_code == 202, response.text
    location: str = response.headers["location"]
    return location


async def patch_chunk(client: httpx.AsyncClient, location: str, data: bytes, start: int) -> httpx.Response:
    return await client.patch(
        location,
        content=data,
        headers={
            "Content-Range": f"{start}-{start + len(data) - 1}",
            "Content-Type": "application/octet-stream",
        },
    )


async def blob_rows(registry: Registry, digest: str) -> tuple[int, int, int]:
    """(blob rows, placement rows, repository links) for the digest."""
    async with registry.context.pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM blob WHERE digest = $1) AS blobs,"
            " (SELECT count(*) FROM blob_placement WHERE digest = $1) AS placements,"
            " (SELECT count(*) FROM repository_blob WHERE digest = $1) AS links",
            digest,
        )
    return row["blobs"], row["placements"], row["links"]


@pytest.fixture
def name(owner: Account) -> str:
    return f"{owner.username}/app"


async def test_post_starts_a_session_that_get_reports(client: httpx.AsyncClient, name: str) -> None:
    response = await client.post(f"/v2/{name}/blobs/uploads/")

    assert response.status_code == 202
    upload_id = response.headers["docker-upload-uuid"]
    assert response.headers["location"] == f"/v2/{name}/blobs/uploads/{upload_id}"
    assert response.headers["range"] == "0-0"
    status = await client.get(response.headers["location"])
    assert status.status_code == 204
    assert status.headers["range"] == "0-0"
    assert status.headers["location"] == response.headers["location"]
    assert status.headers["docker-upload-uuid"] == upload_id


async def test_racing_first_pushes_all_create_the_same_repository(
    client: httpx.AsyncClient, owner: Account
) -> None:
    names = [f"{owner.username}/raced-{index}" for index in range(4)]
    responses = await asyncio.gather(  # 16: the most uploads one client may start at once
        *(client.post(f"/v2/{name}/blobs/uploads/") for name in names for _ in range(4))
    )

    assert [response.status_code for response in responses] == [202] * len(responses)


async def test_monolithic_post_stores_the_blob(client: httpx.AsyncClient, name: str) -> None:
    data = os.urandom(4000)
    digest = digest_bytes(data)

    response = await client.post(f"/v2/{name}/blobs/uploads/", params={"digest": digest}, content=data)

    assert response.status_code == 201, response.text
    assert response.headers["location"] == f"/v2/{name}/blobs/{digest}"
    assert response.headers["docker-content-digest"] == digest
    assert (await client.get(f"/v2/{name}/blobs/{digest}")).content == data


async def test_monolithic_put_after_post(client: httpx.AsyncClient, name: str) -> None:
    data = os.urandom(3000)
    digest = digest_bytes(data)
    location = await start_upload(client, name)

    response = await client.put(location, params={"digest": digest}, content=data)

    assert response.status_code == 201, response.text
    assert response.headers["docker-content-digest"] == digest
    assert (await client.get(f"/v2/{name}/blobs/{digest}")).content == data


async def test_chunked_upload_keeps_each_chunk_until_completion(
    registry: Registry, client: httpx.AsyncClient, name: str
) -> None:
    chunks = [os.urandom(1000), os.urandom(2 * 1024 * 1024 + 17), os.urandom(5)]
    data = b"".join(chunks)
    digest = digest_bytes(data)
    location = await start_upload(client, name)
    upload_id = location.rsplit("/", 1)[1]

    offset = 0
    for chunk in chunks:
        response = await patch_chunk(client, location, chunk, offset)
        offset += len(chunk)
        assert response.status_code == 202, response.text
        assert response.headers["range"] == f"0-{offset - 1}"
        assert response.headers["location"] == location
    assert (await client.get(location)).headers["range"] == f"0-{len(data) - 1}"
    root = storage_root(registry)
    assert stored_files(root, f"uploads/{upload_id}") == [f"uploads/{upload_id}/{i:08d}" for i in range(3)]

    response = await client.put(location, params={"digest": digest})

    assert response.status_code == 201, response.text
    assert (await client.get(f"/v2/{name}/blobs/{digest}")).content == data
    assert (root / blob_path(digest)).read_bytes() == data
    assert not (root / "uploads" / upload_id).exists()
    assert await blob_rows(registry, digest) == (1, 1, 1)


async def test_put_may_carry_the_last_chunk(client: httpx.AsyncClient, name: str) -> None:
    first, last = os.urandom(100), os.urandom(50)
    digest = digest_bytes(first + last)
    location = await start_upload(client, name)
    assert (await patch_chunk(client, location, first, 0)).status_code == 202

    response = await client.put(
        location, params={"digest": digest}, content=last, headers={"Content-Range": "100-149"}
    )

    assert response.status_code == 201, response.text
    assert (await client.get(f"/v2/{name}/blobs/{digest}")).content == first + last


async def test_patch_without_content_range_appends(client: httpx.AsyncClient, name: str) -> None:
    parts = [os.urandom(10), os.urandom(20)]
    location = await start_upload(client, name)
    for part in parts:
        assert (await client.patch(location, content=part)).status_code == 202

    response = await client.put(location, params={"digest": digest_bytes(b"".join(parts))})

    assert response.status_code == 201, response.text


async def test_chunk_out_of_order_is_refused_with_the_current_range(
    client: httpx.AsyncClient, name: str
) -> None:
    data = os.urandom(300)
    location = await start_upload(client, name)
    assert (await patch_chunk(client, location, data[:100], 0)).status_code == 202

    skipped = await patch_chunk(client, location, data[200:], 200)
    repeated = await patch_chunk(client, location, data[:100], 0)

    for response in (skipped, repeated):
        assert response.status_code == 416
        assert error_code(response) == "BLOB_UPLOAD_INVALID"
        assert response.headers["range"] == "0-99"
        assert response.headers["location"] == location
    assert (await patch_chunk(client, location, data[100:], 100)).status_code == 202
    assert (await client.put(location, params={"digest": digest_bytes(data)})).status_code == 201


async def test_malformed_content_range_is_416(client: httpx.AsyncClient, name: str) -> None:
    location = await start_upload(client, name)

    for content_range in ("zero-ten", "5-2"):
        response = await client.patch(location, content=b"abc", headers={"Content-Range": content_range})
        assert response.status_code == 416
        assert error_code(response) == "BLOB_UPLOAD_INVALID"


async def test_content_length_must_match_content_range(client: httpx.AsyncClient, name: str) -> None:
    location = await start_upload(client, name)

    response = await client.patch(location, content=b"abcd", headers={"Content-Range": "0-9"})

    assert response.status_code == 400
    assert error_code(response) == "BLOB_UPLOAD_INVALID"
    assert (await client.get(location)).headers["range"] == "0-0"


async def test_body_shorter_than_declared_is_not_kept(
    registry: Registry, client: httpx.AsyncClient, name: str
) -> None:
    location = await start_upload(client, name)
    upload_id = location.rsplit("/", 1)[1]

    response = await client.patch(location, content=b"abcd", headers={"Content-Length": "10"})

    assert response.status_code == 400
    assert error_code(response) == "BLOB_UPLOAD_INVALID"
    assert (await client.get(location)).headers["range"] == "0-0"
    assert stored_files(storage_root(registry), f"uploads/{upload_id}") == []


async def test_client_disconnect_mid_body_keeps_nothing(
    registry: Registry, client: httpx.AsyncClient, owner: Account, name: str
) -> None:
    location = await start_upload(client, name)
    upload_id = location.rsplit("/", 1)[1]
    headers = {**owner.basic_header, "content-length": "2000000", "content-range": "0-1999999"}

    status = await asgi_request_cut_short(registry, "PATCH", location, headers, os.urandom(1500000))

    assert status == 400
    assert (await client.get(location)).headers["range"] == "0-0"
    assert stored_files(storage_root(registry), f"uploads/{upload_id}") == []
    data = os.urandom(10)
    assert (
        await client.put(location, params={"digest": digest_bytes(data)}, content=data)
    ).status_code == 201


async def asgi_request_cut_short(
    registry: Registry, method: str, path: str, headers: dict[str, str], sent: bytes
) -> int:
    """Send part of a body to the app, then disconnect, as a client that goes away; the status."""
    messages: Iterator[Message] = iter([{"type": "http.request", "body": sent, "more_body": True}])
    responses: list[Message] = []

    async def receive() -> Message:
        return next(messages, {"type": "http.disconnect"})

    async def send(message: Message) -> None:
        responses.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(key.lower().encode(), value.encode()) for key, value in headers.items()],
        "server": ("registry.test", 80),
        "client": ("127.0.0.1", 40000),
    }
    await registry.app(scope, receive, send)
    status = responses[0]["status"]
    assert isinstance(status, int)
    return status


async def test_digest_mismatch_stores_nothing_and_ends_the_session(
    registry: Registry, client: httpx.AsyncClient, name: str
) -> None:
    data = os.urandom(500)
    claimed = digest_bytes(b"something else")
    location = await start_upload(client, name)
    upload_id = location.rsplit("/", 1)[1]
    assert (await patch_chunk(client, location, data, 0)).status_code == 202

    response = await client.put(location, params={"digest": claimed})

    assert response.status_code == 400
    assert error_code(response) == "DIGEST_INVALID"
    root = storage_root(registry)
    for digest in (claimed, digest_bytes(data)):
        assert await blob_rows(registry, digest) == (0, 0, 0)
        assert not (root / blob_path(digest)).exists()
    assert not (root / "uploads" / upload_id).exists()
    assert (await client.get(location)).status_code == 404


async def test_monolithic_post_with_wrong_digest_leaves_no_session(
    registry: Registry, client: httpx.AsyncClient, name: str
) -> None:
    response = await client.post(
        f"/v2/{name}/blobs/uploads/", params={"digest": digest_bytes(b"other")}, content=b"data"
    )

    assert response.status_code == 400
    assert error_code(response) == "DIGEST_INVALID"
    async with registry.context.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM upload") == 0


async def test_sha512_digests_are_verified(client: httpx.AsyncClient, name: str) -> None:
    data = os.urandom(2048)
    digest = f"sha512:{hashlib.sha512(data).hexdigest()}"
    location = await start_upload(client, name)
    assert (await patch_chunk(client, location, data[:1000], 0)).status_code == 202

    response = await client.put(
        location, params={"digest": digest}, content=data[1000:], headers={"Content-Range": "1000-2047"}
    )

    assert response.status_code == 201, response.text
    fetched = await client.get(f"/v2/{name}/blobs/{digest}")
    assert fetched.content == data
    assert fetched.headers["docker-content-digest"] == digest


async def test_empty_blob(registry: Registry, client: httpx.AsyncClient, name: str) -> None:
    monolithic = await client.post(f"/v2/{name}/blobs/uploads/", params={"digest": EMPTY_SHA256}, content=b"")
    location = await start_upload(client, name)
    completed = await client.put(location, params={"digest": EMPTY_SHA256})

    assert monolithic.status_code == 201, monolithic.text
    assert completed.status_code == 201, completed.text
    fetched = await client.get(f"/v2/{name}/blobs/{EMPTY_SHA256}")
    assert fetched.status_code == 200
    assert fetched.content == b""
    assert fetched.headers["content-length"] == "0"
    assert (storage_root(registry) / blob_path(EMPTY_SHA256)).read_bytes() == b""


async def test_put_needs_a_valid_digest_and_keeps_the_session(client: httpx.AsyncClient, name: str) -> None:
    location = await start_upload(client, name)
    assert (await patch_chunk(client, location, b"hello", 0)).status_code == 202

    missing = await client.put(location)
    malformed = await client.put(location, params={"digest": "sha256:nothex"})
    unsupported = await client.put(location, params={"digest": "md5:" + "0" * 32})

    for response in (missing, malformed, unsupported):
        assert response.status_code == 400
        assert error_code(response) == "DIGEST_INVALID"
    assert (await client.get(location)).headers["range"] == "0-4"
    assert (await client.put(location, params={"digest": digest_bytes(b"hello")})).status_code == 201


async def test_cancel_ends_the_session(registry: Registry, client: httpx.AsyncClient, name: str) -> None:
    location = await start_upload(client, name)
    upload_id = location.rsplit("/", 1)[1]
    assert (await patch_chunk(client, location, b"bytes", 0)).status_code == 202

    response = await client.delete(location)

    assert response.status_code == 204
    assert not (storage_root(registry) / "uploads" / upload_id).exists()
    for after in (
        await client.get(location),
        await patch_chunk(client, location, b"more", 5),
        await client.put(location, params={"digest": digest_bytes(b"bytes")}),
        await client.delete(location),
    ):
        assert after.status_code == 404
        assert error_code(after) == "BLOB_UPLOAD_UNKNOWN"


async def test_unknown_or_foreign_upload_ids_are_unknown(
    registry: Registry, client: httpx.AsyncClient, owner: Account, name: str
) -> None:
    location = await start_upload(client, name)
    upload_id = location.rsplit("/", 1)[1]
    await push_blob(client, f"{owner.username}/other", b"creates the other repository")

    foreign = await client.get(f"/v2/{owner.username}/other/blobs/uploads/{upload_id}")
    malformed = await client.patch(f"/v2/{name}/blobs/uploads/not-a-uuid", content=b"x")
    never_pushed = await client.get(f"/v2/{owner.username}/new/blobs/uploads/{upload_id}")

    for response in (foreign, malformed, never_pushed):
        assert response.status_code == 404
        assert error_code(response) == "BLOB_UPLOAD_UNKNOWN"


async def test_concurrent_chunks_at_one_offset_keep_exactly_one(
    registry: Registry, client: httpx.AsyncClient, name: str
) -> None:
    location = await start_upload(client, name)
    bodies = [os.urandom(3 * 1024 * 1024), os.urandom(3 * 1024 * 1024)]

    responses = await asyncio.gather(*(patch_chunk(client, location, body, 0) for body in bodies))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [202, 416]
    kept = bodies[[response.status_code for response in responses].index(202)]
    upload_id = location.rsplit("/", 1)[1]
    assert len(stored_files(storage_root(registry), f"uploads/{upload_id}")) == 1
    assert (await client.put(location, params={"digest": digest_bytes(kept)})).status_code == 201
    assert (await client.get(f"/v2/{name}/blobs/{digest_bytes(kept)}")).content == kept


async def test_upload_continues_after_a_restart(registry: Registry, owner: Account, name: str) -> None:
    parts = [os.urandom(1500), os.urandom(2500), os.urandom(700)]
    data = b"".join(parts)
    async with registry.client(owner) as client:
        location = await start_upload(client, name)
        assert (await patch_chunk(client, location, parts[0], 0)).status_code == 202
        assert (await patch_chunk(client, location, parts[1], 1500)).status_code == 202

    async with running_registry(registry.settings) as restarted, restarted.client(owner) as client:
        assert (await client.get(location)).headers["range"] == "0-3999"
        assert (await patch_chunk(client, location, parts[2], 4000)).status_code == 202
        response = await client.put(location, params={"digest": digest_bytes(data)})

        assert response.status_code == 201, response.text
        assert (await client.get(f"/v2/{name}/blobs/{digest_bytes(data)}")).content == data


async def test_restarted_registry_still_refuses_a_wrong_digest(
    registry: Registry, owner: Account, name: str
) -> None:
    async with registry.client(owner) as client:
        location = await start_upload(client, name)
        assert (await patch_chunk(client, location, b"first part", 0)).status_code == 202

    async with running_registry(registry.settings) as restarted, restarted.client(owner) as client:
        response = await client.put(location, params={"digest": digest_bytes(b"first part!")})

        assert response.status_code == 400
        assert error_code(response) == "DIGEST_INVALID"


async def test_completion_enqueues_blob_pushed(
    registry: Registry, client: httpx.AsyncClient, owner: Account, name: str
) -> None:
    digest = await push_blob(client, name, b"announced")

    async with registry.context.pool.acquire() as conn:
        rows = await conn.fetch("SELECT payload FROM event_outbox WHERE routing_key = 'blob.pushed'")

    assert len(rows) == 1
    payload = rows[0]["payload"]
    assert payload["namespace"] == owner.username
    assert payload["repository"] == "app"
    assert payload["digest"] == digest
    assert payload["size"] == len(b"announced")
    assert payload["location"] == "local"


async def test_mount_links_a_readable_blob(
    registry: Registry, client: httpx.AsyncClient, owner: Account, name: str
) -> None:
    source = f"{owner.username}/source"
    digest = await push_blob(client, source, b"shared layer")

    response = await client.post(f"/v2/{name}/blobs/uploads/", params={"mount": digest, "from": source})

    assert response.status_code == 201, response.text
    assert response.headers["location"] == f"/v2/{name}/blobs/{digest}"
    assert response.headers["docker-content-digest"] == digest
    assert (await client.get(f"/v2/{name}/blobs/{digest}")).content == b"shared layer"
    async with registry.context.pool.acquire() as conn:
        repositories = await conn.fetch(
            "SELECT payload->>'repository' AS repository FROM event_outbox"
            " WHERE routing_key = 'blob.pushed' ORDER BY id"
        )
    assert [row["repository"] for row in repositories] == ["source", "app"]


async def test_mount_falls_back_to_a_session(
    registry: Registry, client: httpx.AsyncClient, name: str
) -> None:
    stranger = await registry.user()
    foreign_source = f"{stranger.username}/private"
    async with registry.client(stranger) as stranger_client:
        hidden = await push_blob(stranger_client, foreign_source, b"not yours")
    own_source = f"{name.split('/')[0]}/source"
    await push_blob(client, own_source, b"something")

    unreadable = await client.post(
        f"/v2/{name}/blobs/uploads/", params={"mount": hidden, "from": foreign_source}
    )
    absent = await client.post(
        f"/v2/{name}/blobs/uploads/", params={"mount": digest_bytes(b"never pushed"), "from": own_source}
    )
    without_from = await client.post(f"/v2/{name}/blobs/uploads/", params={"mount": hidden})

    for response in (unreadable, absent, without_from):
        assert response.status_code == 202, response.text
        assert response.headers["location"].startswith(f"/v2/{name}/blobs/uploads/")
    assert (await client.head(f"/v2/{name}/blobs/{hidden}")).status_code == 404


async def test_push_with_bearer_tokens(registry: Registry, owner: Account, name: str) -> None:
    data = b"token pushed"
    async with registry.client(owner) as basic:
        push_token = await bearer_token(basic, f"repository:{name}:pull,push")
        pull_token = await bearer_token(basic, f"repository:{name}:pull")

    async with registry.client() as anonymous:
        pushed = await anonymous.post(
            f"/v2/{name}/blobs/uploads/",
            params={"digest": digest_bytes(data)},
            content=data,
            headers=bearer_header(push_token),
        )
        refused = await anonymous.post(f"/v2/{name}/blobs/uploads/", headers=bearer_header(pull_token))

    assert pushed.status_code == 201, pushed.text
    assert refused.status_code == 401
    assert 'error="insufficient_scope"' in refused.headers["www-authenticate"]


async def test_push_needs_write_access(registry: Registry, name: str) -> None:
    stranger = await registry.user()
    async with registry.client() as anonymous, registry.client(stranger) as other:
        challenged = await anonymous.post(f"/v2/{name}/blobs/uploads/")
        denied = await other.post(f"/v2/{name}/blobs/uploads/")

    assert challenged.status_code == 401
    assert challenged.headers["www-authenticate"].startswith('Bearer realm="http://registry.test/v2/auth"')
    assert f'scope="repository:{name}:pull,push"' in challenged.headers["www-authenticate"]
    assert denied.status_code == 403
    assert error_code(denied) == "DENIED"


async def test_upload_and_pull_through_s3(
    registry: Registry, owner: Account, s3_location: S3Location
) -> None:
    settings = registry.settings.model_copy(
        update={"storage_locations": {"s3": s3_location}, "storage_preference": ["s3"]}
    )
    name = f"{owner.username}/s3app"
    parts = [os.urandom(6 * 1024 * 1024), os.urandom(1000)]
    data = b"".join(parts)
    digest = digest_bytes(data)

    async with running_registry(settings) as s3_registry, s3_registry.client(owner) as client:
        location = await start_upload(client, name)
        assert (await patch_chunk(client, location, parts[0], 0)).status_code == 202
        assert (await patch_chunk(client, location, parts[1], len(parts[0]))).status_code == 202
        completed = await client.put(location, params={"digest": digest})
        fetched = await client.get(f"/v2/{name}/blobs/{digest}")
        ranged = await client.get(f"/v2/{name}/blobs/{digest}", headers={"Range": "bytes=10-19"})
        driver = s3_registry.context.locations.driver("s3")
        leftovers = await driver.list("uploads")

    assert completed.status_code == 201, completed.text
    assert fetched.content == data
    assert ranged.status_code == 206
    assert ranged.content == data[10:20]
    assert leftovers == []
    async with registry.context.pool.acquire() as conn:
        placements = await conn.fetch("SELECT location FROM blob_placement WHERE digest = $1", digest)
    assert [row["location"] for row in placements] == ["s3"]
