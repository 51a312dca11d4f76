"""Registry reads and pushes across two real SeaweedFS servers, the preferred one killed mid-test:
pulls read the other copy, pushes land on the healthy location (the first one even before the
breaker knows, its body written again there), and /health/endtoend names the dead location while
the instance keeps answering 200."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from services.registry.domain.blobstore import placement_locations
from shared.config import S3Location, Settings
from shared.oci.digest import digest_bytes
from shared.storage.paths import blob_path
from tests.fixtures.registry import Account, Registry, registry_settings
from tests.fixtures.seaweed import SeaweedServer
from tests.support.oci import push_blob
from tests.support.registry_app import running_registry
from tests.support.tcpproxy import TcpProxy
from tests.support.waiting import eventually


@pytest.fixture
def near_and_far(start_seaweed: Callable[[], SeaweedServer]) -> tuple[SeaweedServer, SeaweedServer]:
    return start_seaweed(), start_seaweed()


def two_location_settings(database_url: str, tmp_path: Path, near: S3Location, far: S3Location) -> Settings:
    return registry_settings(database_url, tmp_path / "unused").model_copy(
        update={
            "storage_locations": {"near": near, "far": far},
            "storage_preference": ["near", "far"],
            "storage_health_failure_threshold": 2,
            "storage_health_probe_interval_s": 60.0,
            "health_check_timeout_s": 2.0,
        }
    )


@pytest.fixture
async def registry(
    database_url: str,
    tmp_path: Path,
    near_and_far: tuple[SeaweedServer, SeaweedServer],
) -> AsyncIterator[Registry]:
    near, far = near_and_far
    settings = two_location_settings(database_url, tmp_path, near.location(), far.location())
    async with running_registry(settings) as running:
        yield running


async def one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def copy_to(registry: Registry, location: str, data: bytes) -> None:
    """Place a pushed blob's bytes in another location too (what replication does)."""
    digest = digest_bytes(data)
    await registry.context.locations.driver(location).put(blob_path(digest), one_chunk(data))
    async with registry.context.pool.acquire() as conn:
        await conn.execute("INSERT INTO blob_placement (digest, location) VALUES ($1, $2)", digest, location)


async def placements(registry: Registry, digest: str) -> set[str]:
    async with registry.context.pool.acquire() as conn:
        return await placement_locations(conn, digest)


async def owner_repository(registry: Registry) -> tuple[Account, str]:
    owner = await registry.user()
    org = await registry.organization(owner)
    return owner, f"{org}/app"


async def test_pulls_and_pushes_go_around_a_killed_location(
    registry: Registry, near_and_far: tuple[SeaweedServer, SeaweedServer]
) -> None:
    near, _ = near_and_far
    owner, repository = await owner_repository(registry)
    both = os.urandom(300_000)
    near_only = os.urandom(1000)
    async with registry.client(owner) as client:
        replicated = await push_blob(client, repository, both)
        unreplicated = await push_blob(client, repository, near_only)
        await copy_to(registry, "far", both)
        assert await placements(registry, replicated) == {"near", "far"}

        near.stop()

        # The breaker has not seen a failure yet: the push fails in "near", is written again in "far".
        late = os.urandom(200_000)
        late_digest = await push_blob(client, repository, late)
        assert await placements(registry, late_digest) == {"far"}

        pulled = await client.get(f"/v2/{repository}/blobs/{replicated}")
        assert pulled.status_code == 200
        assert pulled.content == both

        only_copy_gone = await client.get(f"/v2/{repository}/blobs/{unreplicated}")
        assert only_copy_gone.status_code == 503
        assert only_copy_gone.json()["errors"][0]["code"] == "BLOB_UNKNOWN"

        assert not registry.context.locations.health.is_healthy("near")
        chunked = os.urandom(50_000)
        started = await client.post(f"/v2/{repository}/blobs/uploads/")
        assert started.status_code == 202
        finished = await client.put(
            started.headers["location"], params={"digest": digest_bytes(chunked)}, content=chunked
        )
        assert finished.status_code == 201, finished.text
        assert await placements(registry, digest_bytes(chunked)) == {"far"}

        health = await client.get("/health/endtoend")

    body = health.json()
    assert health.status_code == 200
    assert body["data"]["services"]["storage:near"] is False
    assert body["data"]["services"]["storage:far"] is True
    assert body["data"]["services"]["storage"] is False
    assert body["data"]["locations"]["near"]["healthy"] is False
    assert body["data"]["locations"]["near"]["reason"]  # the storage's error, or the check's timeout
    assert body["data"]["locations"]["far"] == {"healthy": True, "failures": 0, "reason": None}


async def test_the_instance_answers_503_when_no_location_works(
    registry: Registry, near_and_far: tuple[SeaweedServer, SeaweedServer]
) -> None:
    owner, repository = await owner_repository(registry)
    for server in near_and_far:
        server.stop()
    async with registry.client(owner) as client:
        push = await client.post(
            f"/v2/{repository}/blobs/uploads/", params={"digest": digest_bytes(b"x")}, content=b"x"
        )

        async def both_open() -> bool:
            answer = await client.get("/health/endtoend")
            locations = answer.json()["data"]["locations"]
            return answer.status_code == 503 and not any(state["healthy"] for state in locations.values())

        # Each look waits out the storage checks of both dead locations: give it time on a busy machine.
        await eventually(both_open, timeout_s=60, step_s=0.1)

    assert push.status_code == 503
    assert push.json()["errors"][0]["code"] == "UNAVAILABLE"


async def test_a_large_first_chunk_for_a_killed_location_lands_in_the_next_one(
    registry: Registry, near_and_far: tuple[SeaweedServer, SeaweedServer]
) -> None:
    near, _ = near_and_far
    owner, repository = await owner_repository(registry)
    large = os.urandom(9 * 1024 * 1024)  # more than the registry keeps to write a body again
    async with registry.client(owner) as client:
        started = await client.post(f"/v2/{repository}/blobs/uploads/")
        near.stop()

        # The session's first storage call fails before the body is read: the session moves on.
        patched = await client.patch(started.headers["location"], content=large)
        assert patched.status_code == 202, patched.text
        done = await client.put(started.headers["location"], params={"digest": digest_bytes(large)})
        assert done.status_code == 201, done.text
        pulled = await client.get(f"/v2/{repository}/blobs/{digest_bytes(large)}")

    assert await placements(registry, digest_bytes(large)) == {"far"}
    assert pulled.content == large


async def test_a_first_chunk_too_large_to_write_again_answers_unavailable_and_its_retry_lands_elsewhere(
    database_url: str,
    tmp_path: Path,
    near_and_far: tuple[SeaweedServer, SeaweedServer],
) -> None:
    near, far = near_and_far
    endpoint = urlsplit(near.s3.endpoint_url)
    assert endpoint.hostname is not None and endpoint.port is not None
    large = os.urandom(9 * 1024 * 1024)  # more than the registry keeps to write a body again
    digest = digest_bytes(large)
    async with TcpProxy(endpoint.hostname, endpoint.port) as proxy:
        proxied = near.location(endpoint_url=f"http://127.0.0.1:{proxy.port}")
        settings = two_location_settings(database_url, tmp_path, proxied, far.location())
        async with running_registry(settings) as registry:
            owner, repository = await owner_repository(registry)

            async def body_cut_off_at_the_end() -> AsyncIterator[bytes]:
                """The bytes, "near" becoming unreachable before the last of them (the registry has
                read the rest by then)."""
                pieces = [large[start : start + 1024 * 1024] for start in range(0, len(large), 1024 * 1024)]
                for piece in pieces[:-1]:
                    yield piece
                await proxy.stop()
                yield pieces[-1]

            async with registry.client(owner) as client:
                started = await client.post(f"/v2/{repository}/blobs/uploads/")
                failed = await client.patch(started.headers["location"], content=body_cut_off_at_the_end())
                assert failed.status_code == 503
                assert failed.json()["errors"][0] == {
                    "code": "UNAVAILABLE",
                    "message": "blob storage unavailable, retry the upload",
                    "detail": {"location": "near"},
                }

                # The session, still empty, moved to "far": the client's retry of the chunk lands there.
                retried = await client.patch(started.headers["location"], content=large)
                assert retried.status_code == 202, retried.text
                done = await client.put(started.headers["location"], params={"digest": digest})
                assert done.status_code == 201, done.text
                pulled = await client.get(f"/v2/{repository}/blobs/{digest}")

            assert await placements(registry, digest) == {"far"}
            assert pulled.content == large
