"""A target that is down or refuses the credentials: FAIL with the storage's error, retried with
back-off, nothing lost; the copies are made once it works."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from shared.config import FilesystemLocation, S3Location
from shared.readonly_state import set_registry_state
from shared.replication import LocationStatus
from shared.storage.paths import blob_path
from tests.fixtures.seaweed import SeaweedServer
from tests.replication.support import (
    Harness,
    copying,
    push_only_settings,
    replication_harness,
    replication_settings,
)
from tests.support.waiting import eventually, wait_until

BLOBS = 3
FAILURE_TIMEOUT_S = 60.0


async def _eu(harness: Harness) -> LocationStatus:
    return next(entry for entry in (await harness.status()).locations if entry.location == "eu")


async def _attempts(harness: Harness) -> list[int]:
    rows = await harness.pool.fetch(
        "SELECT attempts FROM replication_task WHERE location = 'eu' ORDER BY digest"
    )
    return [row[0] for row in rows]


async def _failing(harness: Harness, count: int) -> LocationStatus:
    async def failing() -> LocationStatus | None:
        eu = await _eu(harness)
        return eu if eu.state == "FAIL" and eu.failed + eu.in_flight == count and eu.last_errors else None

    return await eventually(failing, FAILURE_TIMEOUT_S)


async def test_a_target_down_fails_with_its_error_is_retried_and_catches_up_when_back(
    database_url: str, us_location: S3Location, start_seaweed: Callable[[], SeaweedServer]
) -> None:
    eu_server = start_seaweed()
    settings = replication_settings(
        database_url,
        {"us": us_location, "eu": eu_server.location()},
        preference=["us"],
        defaults=["us", "eu"],
    )
    async with replication_harness(settings, registry_settings=push_only_settings(settings, "us")) as harness:
        owner = await harness.registry.user()
        eu_server.stop()
        digests = [await harness.push(owner, os.urandom(64 * 1024), f"app{n}") for n in range(BLOBS)]

        eu = await _failing(harness, BLOBS)
        assert all("Could not connect to the endpoint URL" in failure.error for failure in eu.last_errors), eu
        assert eu.lag_seconds > 0
        before = await _attempts(harness)
        await wait_until(
            lambda: _attempts_grew(harness, before), timeout_s=FAILURE_TIMEOUT_S
        )  # retried, with back-off
        for digest in digests:
            assert await harness.placements(digest) == {"us"}

        eu_server.start()
        for digest in digests:
            await harness.wait_placed(digest, "eu", timeout_s=FAILURE_TIMEOUT_S)
        eu = await _eu(harness)

    assert (eu.state, eu.pending, eu.failed, eu.blobs_copied) == ("OK", 0, 0, BLOBS)
    assert eu.last_errors == []


async def _attempts_grew(harness: Harness, before: list[int]) -> bool:
    now = await _attempts(harness)
    return len(now) == len(before) and all(
        later > earlier for later, earlier in zip(now, before, strict=True)
    )


async def test_wrong_credentials_fail_with_the_storage_error_and_lose_nothing(
    database_url: str, us_location: S3Location, eu_seaweed: SeaweedServer
) -> None:
    good = eu_seaweed.location()
    wrong = good.model_copy(update={"secret_key": "not-the-secret"})
    settings = replication_settings(
        database_url, {"us": us_location, "eu": wrong}, preference=["us"], defaults=["us", "eu"]
    )
    async with replication_harness(settings, registry_settings=push_only_settings(settings, "us")) as harness:
        owner = await harness.registry.user()
        digest = await harness.push(owner, b"credentials matter")

        eu = await _failing(harness, 1)
        assert await harness.placements(digest) == {"us"}
    [failure] = eu.last_errors
    assert failure.digest == digest
    assert (
        "403" in failure.error or "SignatureDoesNotMatch" in failure.error or "AccessDenied" in failure.error
    )

    fixed = settings.model_copy(update={"storage_locations": {"us": us_location, "eu": good}})
    async with replication_harness(fixed, registry_settings=push_only_settings(fixed, "us")) as harness:
        await harness.wait_placed(digest, "eu", timeout_s=FAILURE_TIMEOUT_S)


async def test_a_source_copy_that_does_not_match_its_digest_fails_and_stores_nothing(
    database_url: str, tmp_path: Path
) -> None:
    locations = {
        "us": FilesystemLocation(root=str(tmp_path / "us")),
        "eu": FilesystemLocation(root=str(tmp_path / "eu")),
    }
    settings = replication_settings(database_url, locations, preference=["us"], defaults=["us", "eu"])
    async with replication_harness(settings, copying=False) as harness:
        owner = await harness.registry.user()
        digest = await harness.push(owner, b"the bytes as pushed")
        await harness.wait_consumed()
        (tmp_path / "us" / blob_path(digest)).write_bytes(b"the bytes as PUSHED")  # same size, other bytes
        async with copying(harness.copier):
            eu = await _failing(harness, 1)
        placements = await harness.placements(digest)

    assert "the source copy does not match" in eu.last_errors[0].error
    assert placements == {"us"}
    assert not (tmp_path / "eu" / blob_path(digest)).exists()
    assert list((tmp_path / "eu").rglob("*")) == [] or all(
        path.is_dir() for path in (tmp_path / "eu").rglob("*")
    )


async def test_nothing_is_copied_while_the_registry_is_read_only(database_url: str, tmp_path: Path) -> None:
    locations = {name: FilesystemLocation(root=str(tmp_path / name)) for name in ("us", "eu")}
    settings = replication_settings(
        # No caching of the registry's state: the copier's first look sees the switch.
        database_url,
        locations,
        preference=["us"],
        defaults=["us", "eu"],
        registry_state_refresh_s=0,
    )
    async with replication_harness(settings, copying=False) as harness:
        owner = await harness.registry.user()
        digest = await harness.push(owner, b"waits for writable")
        await harness.wait_consumed()
        async with harness.pool.acquire() as conn:
            await set_registry_state(conn, read_only=True, reason="maintenance", changed_by="test")
        async with copying(harness.copier):
            await wait_until(lambda: harness.copier.paused_for_read_only)
            claimed_while_read_only = await harness.pool.fetchval(
                "SELECT claimed_by FROM replication_task WHERE digest = $1", digest
            )
            placements_while_read_only = await harness.placements(digest)
            async with harness.pool.acquire() as conn:
                await set_registry_state(conn, read_only=False, changed_by="test")
            await harness.wait_placed(digest, "eu")

    assert claimed_while_read_only is None
    assert placements_while_read_only == {"us"}
