"""The storage circuit breaker (shared/storage/health.py) and its use by Locations: failures open a
location, answers about paths do not, a probe closes it again, and the write and read orders put
healthy locations first. Locations run on real filesystem folders, one of them made unwritable."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from shared.config import FilesystemLocation, Settings
from shared.storage import Locations, PathNotFoundError, StorageError
from shared.storage.health import StorageHealth, counts_as_failure
from tests.support.waiting import eventually


class ManualClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class CountedProbe:
    """A probe that passes or raises the error it is given, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.error: BaseException | None = StorageError("still down")

    async def __call__(self) -> None:
        self.calls += 1
        if self.error is not None:
            raise self.error


def breakers(probe: CountedProbe, clock: ManualClock, threshold: int = 3) -> StorageHealth:
    return StorageHealth(
        {"eu": probe, "us": probe}, failure_threshold=threshold, probe_interval_s=5.0, clock=clock
    )


async def test_a_location_opens_after_the_threshold_of_failures_in_a_row() -> None:
    health = breakers(CountedProbe(), ManualClock())

    health.record_failure("eu", StorageError("timeout"))
    health.record_failure("eu", StorageError("timeout"))
    assert health.is_healthy("eu")
    health.record_failure("eu", StorageError("connection refused"))

    assert not health.is_healthy("eu")
    assert health.is_healthy("us")
    state = health.state("eu")
    assert (state.healthy, state.failures, state.reason) == (False, 3, "connection refused")


async def test_a_success_resets_the_count_and_closes_an_open_location() -> None:
    health = breakers(CountedProbe(), ManualClock(), threshold=2)
    health.record_failure("eu", StorageError("down"))
    health.record_success("eu")
    health.record_failure("eu", StorageError("down"))
    assert health.is_healthy("eu")

    health.record_failure("eu", StorageError("down"))
    assert not health.is_healthy("eu")
    assert REGISTRY.get_sample_value("quayside_storage_location_healthy", {"location": "eu"}) == 0
    health.record_success("eu")

    assert health.state("eu").model_dump() == {"healthy": True, "failures": 0, "reason": None}
    assert REGISTRY.get_sample_value("quayside_storage_location_healthy", {"location": "eu"}) == 1


def test_answers_about_a_path_are_not_failures() -> None:
    assert not counts_as_failure(PathNotFoundError("blobs/x"))
    assert counts_as_failure(StorageError("blobs/x: Could not connect to the endpoint URL"))
    assert not counts_as_failure(ValueError("not a storage error"))


async def test_an_open_location_is_probed_once_per_interval_and_closed_by_a_passing_probe() -> None:
    probe, clock = CountedProbe(), ManualClock()
    health = breakers(probe, clock, threshold=1)
    health.record_failure("eu", StorageError("down"))

    assert not health.is_healthy("eu")
    assert probe.calls == 0  # not before the interval
    clock.now += 5.0
    assert not health.is_healthy("eu")  # the probe runs in the background
    assert not health.is_healthy("eu")  # one probe at a time
    await eventually(
        lambda: probe.calls == 1 and not health.state("eu").healthy and health.state("eu").failures == 2
    )
    assert not health.is_healthy("eu")
    assert probe.calls == 1  # the failed probe waits out another interval

    probe.error = PathNotFoundError("_health/breaker")  # "not found" is the location answering
    clock.now += 5.0
    health.is_healthy("eu")

    await eventually(lambda: health.is_healthy("eu"))
    assert probe.calls == 2
    await health.close()


async def test_a_probe_that_does_not_answer_in_time_fails() -> None:
    clock = ManualClock()

    async def hangs() -> None:
        await eventually(lambda: False, timeout_s=60)

    health = StorageHealth(
        {"eu": hangs}, failure_threshold=1, probe_interval_s=1.0, probe_timeout_s=0.2, clock=clock
    )
    health.record_failure("eu", StorageError("down"))
    clock.now += 1.0
    health.is_healthy("eu")

    await eventually(lambda: health.state("eu").failures == 2, timeout_s=5)
    assert "not answered within" in (health.state("eu").reason or "")
    await health.close()


@pytest.fixture
def unwritable_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder nothing can be written in: mode 0555, and immutable for root (who ignores modes)."""
    folder = tmp_path / "frozen"
    folder.mkdir()
    folder.chmod(0o555)
    immutable = os.geteuid() == 0
    if immutable:
        subprocess.run(["chattr", "+i", str(folder)], check=True)
    try:
        yield folder
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(0o755)


@pytest.fixture
async def locations(tmp_path: Path, unwritable_folder: Path) -> AsyncIterator[Locations]:
    settings = Settings(
        storage_locations={
            "frozen": FilesystemLocation(root=str(unwritable_folder)),
            "ok": FilesystemLocation(root=str(tmp_path / "ok")),
        },
        storage_preference=["frozen", "ok"],
        storage_health_failure_threshold=2,
        storage_health_probe_interval_s=0.2,
    )
    opened = await Locations.open(settings)
    try:
        yield opened
    finally:
        await opened.close()


async def one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_failing_writes_move_a_location_behind_the_healthy_ones(locations: Locations) -> None:
    assert locations.write_order() == ["frozen", "ok"]
    frozen = locations.driver("frozen")
    for _ in range(2):
        with pytest.raises(StorageError):
            await frozen.put("blobs/a", one_chunk(b"a"))

    assert locations.write_order() == ["ok", "frozen"]
    assert locations.read_order({"frozen", "ok"}) == ["ok", "frozen"]
    assert locations.read_order({"frozen"}) == ["frozen"]  # the only copy stays a last resort
    assert locations.preferred == "frozen"
    assert "frozen" in (locations.health.state("frozen").reason or "")


async def test_a_missing_object_leaves_a_location_healthy(locations: Locations) -> None:
    for _ in range(3):
        with pytest.raises(PathNotFoundError):
            await locations.driver("ok").stat("blobs/absent")

    assert locations.health.state("ok").healthy


async def test_the_probe_closes_a_location_that_answers_again(locations: Locations) -> None:
    frozen = locations.driver("frozen")
    for _ in range(2):
        with pytest.raises(StorageError):
            await frozen.put("blobs/a", one_chunk(b"a"))
    assert not locations.health.is_healthy("frozen")

    # The folder still reads (a stat answers "not found"): after the interval the probe closes it.
    await eventually(lambda: locations.write_order() == ["frozen", "ok"], timeout_s=5)
    assert locations.health.state("frozen").failures == 0
