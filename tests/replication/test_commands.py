"""`quayside replication backfill | status | remove-location`, run as the commands they are."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from shared.config import FilesystemLocation, Settings
from tests.replication.support import REPOSITORY_ROOT, environment, replication_harness, replication_settings

COMMAND_TIMEOUT_S = 120.0


@pytest.fixture
def locations(tmp_path: Path) -> dict[str, FilesystemLocation]:
    return {
        "us": FilesystemLocation(root=str(tmp_path / "us")),
        "eu": FilesystemLocation(root=str(tmp_path / "eu")),
    }


async def _quayside(settings: Settings, *args: str, answer: str = "") -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "quayside",
        "replication",
        *args,
        "--database-url",
        settings.database_url,
        env={**environment(settings), "COLUMNS": "200"},
        cwd=REPOSITORY_ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(answer.encode()), COMMAND_TIMEOUT_S)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def test_backfill_after_adding_a_location_copies_every_blob_and_waits_until_done(
    database_url: str, locations: dict[str, FilesystemLocation]
) -> None:
    before = replication_settings(database_url, locations, preference=["us"], defaults=["us"])
    async with replication_harness(before) as harness:
        owner = await harness.registry.user()
        sizes = {await harness.push(owner, os.urandom(1000 + n), f"app{n}"): 1000 + n for n in range(3)}
        await harness.wait_consumed()
        for digest in sizes:
            assert await harness.placements(digest) == {"us"}

    after = replication_settings(database_url, locations, preference=["us"], defaults=["us", "eu"])
    async with replication_harness(after) as harness:
        status, out, err = await _quayside(after, "backfill")
        assert status == 0, err
        assert "3 copies queued" in out
        assert "every blob is in every location it must reach" in out
        for digest in sizes:
            assert await harness.placements(digest) == {"us", "eu"}

        again, out_again, _ = await _quayside(after, "backfill", "--no-wait")
        shown, status_json, _ = await _quayside(after, "status", "--json")
        table_status, table, _ = await _quayside(after, "status")

    assert (again, shown, table_status) == (0, 0, 0)
    assert "0 copies queued" in out_again
    eu = next(entry for entry in json.loads(status_json)["locations"] if entry["location"] == "eu")
    assert (eu["state"], eu["blobs_copied"], eu["bytes_copied"]) == ("OK", 3, sum(sizes.values()))
    assert "eu" in table and "OK" in table


async def test_backfill_refuses_while_replication_is_off(
    database_url: str, locations: dict[str, FilesystemLocation]
) -> None:
    off = replication_settings(
        database_url, locations, preference=["us"], defaults=[], feature_storage_replication=False
    )
    status, _, err = await _quayside(off, "backfill")
    assert status == 1
    assert "replication is off" in err


async def test_remove_location_refuses_while_it_holds_a_sole_copy_and_removes_placements_otherwise(
    database_url: str, locations: dict[str, FilesystemLocation]
) -> None:
    both = replication_settings(database_url, locations, preference=["us"], defaults=["us", "eu"])
    async with replication_harness(both) as harness:
        owner = await harness.registry.user()
        shared = await harness.push(owner, b"in both locations", "shared")
        await harness.wait_placed(shared, "eu")
        await harness.wait_consumed()
    us_only = replication_settings(database_url, locations, preference=["us"], defaults=["us"])
    async with replication_harness(us_only) as harness:
        sole = await harness.push(owner, b"only in us", "sole")
        await harness.wait_consumed()

        refused, _, refusal = await _quayside(us_only, "remove-location", "us", "--yes")
        declined, _, _ = await _quayside(us_only, "remove-location", "eu", answer="n\n")
        after_refusals = {digest: await harness.placements(digest) for digest in (shared, sole)}
        removed, out, err = await _quayside(both, "remove-location", "eu", "--yes")
        after_removal = {digest: await harness.placements(digest) for digest in (shared, sole)}

    assert refused == 1
    assert "holds the only copy of 1 blob(s)" in refusal and sole in refusal
    assert declined == 1
    assert after_refusals == {shared: {"us", "eu"}, sole: {"us"}}
    assert removed == 0, err
    assert f"removed {shared} from eu" in out
    assert "1 placement(s) removed from eu" in out
    assert "still in QUAYSIDE_DISTRIBUTED_STORAGE_DEFAULT_LOCATIONS" in out
    assert after_removal == {shared: {"us"}, sole: {"us"}}
