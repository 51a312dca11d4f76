"""A pushed blob reaches every location it must: copied, verified, placed, announced, counted."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from shared.config import FilesystemLocation, S3Location, StorageLocation
from tests.replication.support import replication_harness, replication_settings, s3_object_bytes
from tests.support.waiting import wait_until

BLOB_BYTES = 6 * 1024 * 1024 + 123  # more than one S3 part of 5 MiB


@pytest.fixture(params=["s3-to-s3", "filesystem-to-s3", "s3-to-filesystem"])
def pair(
    request: pytest.FixtureRequest,
    us_location: S3Location,
    eu_location: S3Location,
    fs_location: FilesystemLocation,
) -> dict[str, StorageLocation]:
    """The source ("us", where pushes land) and the target ("eu") of each kind."""
    pairs: dict[str, dict[str, StorageLocation]] = {
        "s3-to-s3": {"us": us_location, "eu": eu_location},
        "filesystem-to-s3": {"us": fs_location, "eu": eu_location},
        "s3-to-filesystem": {"us": us_location, "eu": fs_location},
    }
    return pairs[request.param]


def _stored(location: StorageLocation, digest: str) -> bytes:
    if isinstance(location, S3Location):
        return s3_object_bytes(location, digest)
    algorithm, hex_part = digest.split(":")
    return (Path(location.root) / "blobs" / algorithm / hex_part[:2] / hex_part).read_bytes()


async def test_a_pushed_blob_is_copied_verified_placed_and_announced(
    database_url: str, pair: dict[str, StorageLocation]
) -> None:
    settings = replication_settings(database_url, pair, preference=["us", "eu"], defaults=["us", "eu"])
    data = os.urandom(BLOB_BYTES)
    async with replication_harness(settings) as harness:
        owner = await harness.registry.user()
        digest = await harness.push(owner, data)

        await harness.wait_placed(digest, "eu")
        await wait_until(lambda: bool(harness.replicated.events))
        status = await harness.status()
        placements = await harness.placements(digest)
        tasks_left = await harness.pool.fetchval("SELECT count(*) FROM replication_task")

    assert placements == {"us", "eu"}
    assert hashlib.sha256(_stored(pair["eu"], digest)).hexdigest() == digest.split(":")[1]
    [event] = harness.replicated.events
    assert (event.digest, event.location, event.size, event.source_location) == (
        digest,
        "eu",
        len(data),
        "us",
    )
    eu = next(entry for entry in status.locations if entry.location == "eu")
    assert (eu.state, eu.pending, eu.in_flight, eu.failed) == ("OK", 0, 0, 0)
    assert (eu.blobs_copied, eu.bytes_copied) == (1, len(data))
    assert tasks_left == 0


async def test_nothing_is_copied_where_the_namespace_need_not_be(
    database_url: str, us_location: S3Location, fs_location: FilesystemLocation
) -> None:
    """Replication on, but the defaults name only the push location: no task, no copy."""
    settings = replication_settings(
        database_url, {"us": us_location, "eu": fs_location}, preference=["us"], defaults=["us"]
    )
    async with replication_harness(settings) as harness:
        owner = await harness.registry.user()
        digest = await harness.push(owner, b"stays in us only")
        await harness.wait_consumed()
        assert await harness.placements(digest) == {"us"}
        assert await harness.pool.fetchval("SELECT count(*) FROM replication_task") == 0
