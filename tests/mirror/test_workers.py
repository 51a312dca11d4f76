"""Scheduling, claims and leases: syncs on schedule, never two workers on a mirror, cancel, and a
worker killed in the middle of a sync."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from services.mirror.api import DATE_FORMAT
from services.mirror.leases import claim_next
from services.mirror.local import live_tags
from tests.fixtures.live_registry import REPOSITORY_ROOT, LiveRegistry
from tests.fixtures.upstream import ImageFactory, Upstream
from tests.mirror.helpers import LONG_AGO, TOKEN_SECRET, MirrorService, Scenario, mirror_body
from tests.support.process import ServerProcess, free_port
from tests.support.waiting import eventually

REPOSITORY = "library/app"


async def _upstream_tags(upstream: Upstream, tmp_path: Path, tags: list[str]) -> dict[str, str]:
    factory = await asyncio.to_thread(ImageFactory, tmp_path / "layout")
    digests = {}
    for tag in tags:
        await asyncio.to_thread(factory.tagged_image, tag)
        digests[tag] = await upstream.push(factory.layout, tag, REPOSITORY)
    return digests


async def _local(mirror: MirrorService, scenario: Scenario) -> dict[str, str]:
    return await live_tags(mirror.pool, scenario.repository_id)


async def test_scheduled_syncs_run_at_intervals_from_the_start_date(
    mirror: MirrorService, upstream: Upstream, tmp_path: Path
) -> None:
    digests = await _upstream_tags(upstream, tmp_path, ["v1"])
    scenario = await mirror.scenario()
    body = mirror_body(upstream.reference(REPOSITORY), scenario.robot.username, interval=2, start=LONG_AGO)
    await mirror.create(scenario, body)
    async with mirror.workers():
        first = await mirror.wait_for_result(scenario)  # no sync-now: the start date is past
        assert await _local(mirror, scenario) == digests
        next_start = datetime.strptime(first["sync_start_date"], DATE_FORMAT).replace(tzinfo=UTC)
        assert next_start > datetime.fromisoformat(first["last_sync"]["started_at"])
        assert (
            next_start - datetime.strptime(LONG_AGO, DATE_FORMAT).replace(tzinfo=UTC)
        ).total_seconds() % 2 == 0

        factory_digests = await _upstream_tags(upstream, tmp_path / "more", ["v2"])

        async def v2_arrived() -> bool:
            return (await _local(mirror, scenario)).get("v2") == factory_digests["v2"]

        await eventually(v2_arrived, timeout_s=30)
        async with mirror.client() as client:
            metrics = (await client.get("http://mirror.test/metrics")).text
    status = f'quayside_mirror_last_sync_status{{repository_id="{scenario.repository_id}"}}'
    # With a 2 s interval the next scheduled sync may already be running (2.0) when metrics are read.
    assert f"{status} 1.0" in metrics or f"{status} 2.0" in metrics
    assert 'quayside_mirror_tags_total{result="synced"}' in metrics
    assert scenario.organization not in metrics


async def test_only_due_mirrors_are_claimed_and_never_twice(mirror_api: MirrorService) -> None:
    reference = "registry.example.com/library/app"
    future = await mirror_api.scenario("future")
    await mirror_api.create(future, mirror_body(reference, future.robot.username))
    disabled = await mirror_api.scenario("disabled")
    await mirror_api.create(
        disabled, {**mirror_body(reference, disabled.robot.username, start=LONG_AGO), "is_enabled": False}
    )
    assert await claim_next(mirror_api.pool, 30) is None

    due = []
    for name in ("one", "two", "three"):
        scenario = await mirror_api.scenario(name)
        await mirror_api.create(scenario, mirror_body(reference, scenario.robot.username, start=LONG_AGO))
        due.append(scenario.repository_id)
    assert (await mirror_api.post(future, "/sync-now")).status_code == 204
    claims = await asyncio.gather(*(claim_next(mirror_api.pool, 30) for _ in range(10)))
    claimed = [job for job in claims if job is not None]
    assert sorted(job.repository_id for job in claimed) == sorted([*due, future.repository_id])
    assert len({job.owner for job in claimed}) == 4
    # Claimed mirrors are SYNCING under a live lease: nobody claims them again.
    assert await claim_next(mirror_api.pool, 30) is None
    view = await mirror_api.view(future)
    assert view["sync_status"] == "SYNCING"
    assert view["sync_expiration_date"] is not None


async def test_cancel_stops_a_running_sync_and_pauses_the_schedule(
    mirror: MirrorService, upstream: Upstream, tmp_path: Path
) -> None:
    digests = await _upstream_tags(upstream, tmp_path, ["t1", "t2", "t3", "t4"])
    scenario = await mirror.scenario()
    body = mirror_body(upstream.reference(REPOSITORY), scenario.robot.username, interval=3600, start=LONG_AGO)
    upstream.proxy.hold_blobs()
    await mirror.create(scenario, body)
    async with mirror.workers():
        # Every blob of t1 (two base layers, its own, its config) is under way, so its copy is past
        # its last checkpoint: the cancel stops the sync before t2.
        await upstream.proxy.wait_until_holding(blobs=4)
        view = await mirror.view(scenario)
        assert view["sync_status"] == "SYNCING"
        assert view["sync_expiration_date"] is not None
        assert (view["sync_progress"]["tags_total"], view["sync_progress"]["current_tag"]) == (4, "t1")

        assert (await mirror.post(scenario, "/sync-cancel")).status_code == 204
        upstream.proxy.release_blobs()
        cancelled = await mirror.wait_for_result(scenario)
    assert cancelled["sync_status"] == "CANCEL"
    assert cancelled["last_sync"]["status"] == "CANCEL"
    assert cancelled["last_sync"]["error"] == "the sync was cancelled"
    kept = await _local(mirror, scenario)
    assert kept == {"t1": digests["t1"]}  # the tag under way finished, no other was started
    assert await claim_next(mirror.pool, 30) is None  # the schedule waits for sync-now or re-enabling

    async with mirror.workers():
        resumed = await mirror.sync_and_wait(scenario)
    assert resumed["sync_status"] == "SUCCESS"
    assert await _local(mirror, scenario) == digests


def _worker_environment(live_registry: LiveRegistry, lease_s: float) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("QUAYSIDE_")}
    env.update(
        QUAYSIDE_DATABASE_URL=live_registry.database_url,
        QUAYSIDE_REGISTRY_URL=live_registry.url,
        QUAYSIDE_TOKEN_SECRET=TOKEN_SECRET,
        QUAYSIDE_LISTEN=f"127.0.0.1:{free_port()}",
        QUAYSIDE_MIRROR_LEASE_S=str(lease_s),
        QUAYSIDE_MIRROR_WORKERS="1",
        QUAYSIDE_REPO_MIRROR_INTERVAL_S="0.2",
        PYTHONUNBUFFERED="1",
    )
    return env


async def _start_worker_process(live_registry: LiveRegistry, lease_s: float) -> ServerProcess:
    env = _worker_environment(live_registry, lease_s)
    process = await ServerProcess.start([sys.executable, "-m", "services.mirror"], env, REPOSITORY_ROOT)
    await process.wait_until_serving(f"http://{env['QUAYSIDE_LISTEN']}/health/instance")
    return process


async def _started_logs(mirror: MirrorService, scenario: Scenario) -> list[dict[str, object]]:
    rows = await mirror.pool.fetch(
        "SELECT l.metadata FROM log_entry l JOIN namespace n ON n.id = l.namespace_id"
        " WHERE n.name = $1 AND l.kind = 'repo_mirror_sync_started' ORDER BY l.id",
        scenario.organization,
    )
    return [row["metadata"] for row in rows]


async def test_a_worker_killed_mid_sync_loses_its_lease_and_another_finishes(
    mirror: MirrorService, upstream: Upstream, live_registry: LiveRegistry, tmp_path: Path
) -> None:
    digests = await _upstream_tags(upstream, tmp_path, ["t1", "t2", "t3"])
    scenario = await mirror.scenario()
    await mirror.create(scenario, mirror_body(upstream.reference(REPOSITORY), scenario.robot.username))
    worker = await _start_worker_process(live_registry, lease_s=2.0)
    try:
        upstream.proxy.hold_blobs()
        assert (await mirror.post(scenario, "/sync-now")).status_code == 204
        await upstream.proxy.wait_until_holding()
        worker.process.kill()  # kill -9, in the middle of copying t1
        await worker.process.wait()
    finally:
        await worker.stop()
    upstream.proxy.release_blobs()
    view = await mirror.view(scenario)
    assert (view["sync_status"], view["sync_progress"]["current_tag"]) == ("SYNCING", "t1")

    async with mirror.workers(mirror_lease_s=2.0):
        finished = await mirror.wait_for_result(scenario, timeout_s=30)
    assert finished["sync_status"] == "SUCCESS"
    assert await _local(mirror, scenario) == digests
    started = await _started_logs(mirror, scenario)
    assert [entry.get("resumed", False) for entry in started] == [False, True]


async def test_a_stopping_worker_hands_its_mirror_back_at_once(
    mirror: MirrorService, upstream: Upstream, live_registry: LiveRegistry, tmp_path: Path
) -> None:
    digests = await _upstream_tags(upstream, tmp_path, ["t1", "t2"])
    scenario = await mirror.scenario()
    await mirror.create(scenario, mirror_body(upstream.reference(REPOSITORY), scenario.robot.username))
    worker = await _start_worker_process(live_registry, lease_s=600.0)
    try:
        upstream.proxy.hold_blobs()
        assert (await mirror.post(scenario, "/sync-now")).status_code == 204
        await upstream.proxy.wait_until_holding()
    finally:
        await worker.stop()  # SIGTERM
        upstream.proxy.release_blobs()
    # With a 600 s lease, only the hand-back lets another worker take the mirror within the test.
    async with mirror.workers(mirror_lease_s=600.0):
        finished = await mirror.wait_for_result(scenario, timeout_s=30)
    assert finished["sync_status"] == "SUCCESS"
    assert await _local(mirror, scenario) == digests
