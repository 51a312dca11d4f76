"""The superuser API of replication targets and status (registry), and the replication service's
own status, health and metrics."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from services.replication.app import create_app
from shared.config import FilesystemLocation, Settings
from tests.replication.support import Harness, replication_harness, replication_settings

TARGETS = "/api/v1/superuser/replication/{}"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    locations = {
        "us": FilesystemLocation(root=str(tmp_path / "us")),
        "eu": FilesystemLocation(root=str(tmp_path / "eu")),
    }
    return replication_settings(database_url, locations, preference=["us"], defaults=["us"])


async def _log_kinds(harness: Harness, namespace: str) -> list[str]:
    rows = await harness.pool.fetch(
        "SELECT l.kind FROM log_entry l JOIN namespace n ON n.id = l.namespace_id WHERE n.name = $1 ORDER BY l.id",
        namespace,
    )
    return [row[0] for row in rows]


async def test_targets_replace_the_defaults_and_queue_the_copies_of_blobs_already_there(
    settings: Settings,
) -> None:
    async with replication_harness(settings) as harness:
        root = await harness.registry.user(superuser=True)
        owner = await harness.registry.user()
        digest = await harness.push(owner, b"pushed before the targets")
        await harness.wait_consumed()
        assert await harness.placements(digest) == {"us"}

        async with harness.registry.client(root) as client:
            before = (await client.get(TARGETS.format(owner.username))).json()
            changed = await client.put(
                TARGETS.format(owner.username), json={"locations": ["us", "eu"], "extra": 1}
            )
            await harness.wait_placed(digest, "eu")
            current = (await client.get(TARGETS.format(owner.username))).json()
            deleted = await client.delete(TARGETS.format(owner.username))
            status = await client.get(TARGETS.format("status"))
        kinds = await _log_kinds(harness, owner.username)

    assert before == {
        "namespace": owner.username,
        "replication_enabled": True,
        "uses_defaults": True,
        "targets": [],
        "locations": ["us"],
        "enqueued": 0,
    }
    assert changed.status_code == 200, changed.text
    assert changed.json()["enqueued"] == 1
    assert (current["targets"], current["locations"], current["uses_defaults"]) == (
        ["eu", "us"],
        ["eu", "us"],
        False,
    )
    assert deleted.status_code == 200
    assert (deleted.json()["uses_defaults"], deleted.json()["locations"]) == (True, ["us"])
    assert status.status_code == 200
    eu = next(entry for entry in status.json()["locations"] if entry["location"] == "eu")
    assert (eu["state"], eu["blobs_copied"]) == ("OK", 1)
    assert kinds == ["change_replication_targets", "delete_replication_targets"]


async def test_bad_requests_get_quay_errors(settings: Settings) -> None:
    async with replication_harness(settings, copying=False) as harness:
        root = await harness.registry.user(superuser=True)
        someone = await harness.registry.user()
        async with harness.registry.client(root) as client:
            unknown = await client.put(TARGETS.format(someone.username), json={"locations": ["eu", "mars"]})
            empty = await client.put(TARGETS.format(someone.username), json={"locations": []})
            nul = await client.put(TARGETS.format(someone.username), json={"locations": ["e\x00u"]})
            no_namespace = await client.get(TARGETS.format("nobody-here"))
            bad_name = await client.get(TARGETS.format("Not_A..Name"))
        async with harness.registry.client(someone) as client:
            not_super = await client.get(TARGETS.format(someone.username))
            not_super_put = await client.put(TARGETS.format(someone.username), json={"locations": ["us"]})
            not_super_status = await client.get(TARGETS.format("status"))
        async with harness.registry.client() as client:
            anonymous = await client.get(TARGETS.format("status"))

    assert unknown.status_code == 400
    assert isinstance(unknown.json()["detail"], str) and "'mars'" in unknown.json()["detail"]
    for response in (empty, nul, bad_name):
        assert response.status_code == 400, response.text
        assert isinstance(response.json()["detail"], str)
    assert no_namespace.status_code == 404
    assert isinstance(no_namespace.json()["detail"], str)
    assert [not_super.status_code, not_super_put.status_code, not_super_status.status_code] == [403, 403, 403]
    assert anonymous.status_code == 401


async def test_the_service_serves_the_status_health_and_metrics(settings: Settings) -> None:
    both = settings.model_copy(update={"distributed_storage_default_locations": ["us", "eu"]})
    async with replication_harness(both) as harness:
        owner = await harness.registry.user()
        digest = await harness.push(owner, b"x" * 4321)
        await harness.wait_placed(digest, "eu")
        app = create_app(both)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://replication.test"
            ) as client,
        ):
            status = await client.get("/api/v1/replication/status")
            instance = await client.get("/health/instance")
            endtoend = await client.get("/health/endtoend")
            metrics = await client.get("/metrics")

    eu = next(entry for entry in status.json()["locations"] if entry["location"] == "eu")
    assert (eu["state"], eu["blobs_copied"], eu["bytes_copied"], eu["pending"]) == ("OK", 1, 4321, 0)
    assert instance.status_code == 200
    assert endtoend.status_code == 200
    assert endtoend.json()["data"]["services"] == {"database": True, "storage:us": True, "storage:eu": True}
    assert 'quayside_replication_copied_bytes_total{location="eu"} 4321.0' in metrics.text
    assert 'quayside_replication_pending{location="eu"} 0.0' in metrics.text
    assert 'quayside_replication_lag_seconds{location="eu"} 0.0' in metrics.text
