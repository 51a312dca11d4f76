"""What a pass tells: the pass record and status API, BlobsCollected, metrics, dry runs; and the
switches that turn each kind of collection off."""

from __future__ import annotations

from datetime import timedelta

import httpx
from prometheus_client import REGISTRY

from services.gc.app import create_app
from services.gc.passes import PassOptions, run_pass
from shared.backup_lease import release_lease, take_lease
from shared.oci.digest import digest_bytes
from tests.fixtures.registry import Account, Registry
from tests.gc.conftest import Collector
from tests.gc.scan import scan
from tests.support.oci import push_image, random_image


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_dry_run_deletes_nothing_and_tells_what_the_pass_then_deletes(
    registry: Registry, collector: Collector, owner: Account
) -> None:
    image = random_image()
    async with registry.client(owner) as client:
        await push_image(client, f"{owner.username}/app", image, "v1")
        await client.delete(f"/v2/{owner.username}/app/manifests/{image.digest}")
    before = await scan(registry)
    iterations = _metric("quayside_gc_iterations_total")

    dry = await collector.run(dry_run=True)
    assert await scan(registry) == before
    assert _metric("quayside_gc_iterations_total") == iterations
    async with registry.context.pool.acquire() as conn:
        assert (
            await conn.fetchval("SELECT count(*) FROM event_outbox WHERE routing_key = 'gc.blobs-collected'")
            == 0
        )

    real = await collector.run()
    assert dry.record is not None and dry.record.dry_run and real.record is not None
    assert {blob.digest for blob in dry.tally.blobs} == {blob.digest for blob in real.tally.blobs}
    assert (
        dry.record.bytes_reclaimed
        == real.record.bytes_reclaimed
        == sum(len(blob) for blob in (image.config, *image.layers))
    )
    assert dry.record.rows_by_table == real.record.rows_by_table


async def test_a_pass_announces_the_digests_of_removed_manifests_and_moves_the_metrics(
    registry: Registry, collector: Collector, owner: Account
) -> None:
    shared_layer = random_image(layer_count=1).layers[0]
    removed, kept = random_image(layer_count=1), random_image(layer_count=1)
    removed.layers.append(shared_layer)
    kept.layers.append(shared_layer)
    name = f"{owner.username}/app"
    async with registry.client(owner) as client:
        await push_image(client, name, removed, "old")
        await push_image(client, name, kept, "new")
        await client.delete(f"/v2/{name}/manifests/old")
    location = registry.context.locations.preferred
    before = {
        "iterations": _metric("quayside_gc_iterations_total"),
        "blobs": _metric("quayside_gc_storage_blobs_deleted_total"),
        "bytes": _metric("quayside_gc_bytes_reclaimed_total", location=location),
        "manifest_rows": _metric("quayside_gc_rows_deleted_total", table="manifest"),
    }
    outcome = await collector.run(days_later=15)  # past the two weeks of the time machine
    async with registry.context.pool.acquire() as conn:
        payloads = [
            row[0]
            for row in await conn.fetch(
                "SELECT payload FROM event_outbox WHERE routing_key = 'gc.blobs-collected' ORDER BY id"
            )
        ]
    removed_digests = {digest_bytes(blob) for blob in (removed.config, *removed.layers)}
    deleted_digests = removed_digests - {digest_bytes(shared_layer)}
    [repository] = [entry for payload in payloads for entry in payload["repositories"]]
    assert repository["namespace"] == owner.username and repository["repository"] == "app"
    assert set(repository["digests"]) == removed_digests
    assert {digest for payload in payloads for digest in payload["blobs_deleted"]} == deleted_digests
    freed = sum(len(blob) for blob in (removed.config, removed.layers[0]))
    assert sum(payload["bytes_reclaimed"] for payload in payloads) == freed
    assert outcome.tally.bytes_by_location == {location: freed}

    assert _metric("quayside_gc_iterations_total") == before["iterations"] + 1
    assert _metric("quayside_gc_storage_blobs_deleted_total") == before["blobs"] + 2
    assert _metric("quayside_gc_bytes_reclaimed_total", location=location) == before["bytes"] + freed
    assert _metric("quayside_gc_rows_deleted_total", table="manifest") == before["manifest_rows"] + 1


async def test_the_status_api_health_and_metrics_of_the_gc_service(
    registry: Registry, collector: Collector, owner: Account
) -> None:
    image = random_image()
    async with registry.client(owner) as client:
        await push_image(client, f"{owner.username}/app", image, image.digest)
    outcome = await collector.run()
    app = create_app(registry.settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gc.test") as client:
            status = await client.get("/api/v1/gc/status", params={"limit": 1})
            refused = await client.get("/api/v1/gc/status", params={"limit": 0})
            instance = await client.get("/health/instance")
            endtoend = await client.get("/health/endtoend")
            metrics = await client.get("/metrics")
    assert status.status_code == 200
    [last] = status.json()["passes"]
    assert outcome.record is not None and last["id"] == outcome.record.id
    assert last["blobs_deleted"] == 3 and last["bytes_reclaimed"] == outcome.tally.bytes_reclaimed
    assert last["bytes_by_location"] == {"local": outcome.tally.bytes_reclaimed}
    assert status.json()["settings"]["push_temp_tag_expiration_s"] == 3600
    assert refused.status_code == 400 and isinstance(refused.json()["detail"], str)
    assert instance.status_code == 200 and instance.json()["data"]["services"]["database"] is True
    assert endtoend.status_code == 200 and endtoend.json()["data"]["services"]["storage:local"] is True
    assert "quayside_gc_iterations_total" in metrics.text


async def test_switched_off_kinds_are_left_alone_and_read_only_mode_stops_every_pass(
    registry: Registry, owner: Account
) -> None:
    image = random_image()
    async with registry.client(owner) as client:
        await push_image(client, f"{owner.username}/loose", image, image.digest)
        await push_image(client, f"{owner.username}/gone", random_image(), "v1")
        await client.delete(f"/api/v1/repository/{owner.username}/gone")
    context = registry.context
    off = registry.settings.model_copy(
        update={"feature_garbage_collection": False, "feature_repository_garbage_collection": False}
    )
    untouched = await run_pass(context.pool, context.locations, off, PassOptions(grace_s=0))
    assert untouched.record is not None
    assert (untouched.tally.repositories_purged, untouched.tally.manifests) == (0, [])

    read_only = registry.settings.model_copy(update={"registry_state": "readonly"})
    refused = await run_pass(context.pool, context.locations, read_only, PassOptions(grace_s=0))
    assert refused.record is None and refused.reason == "the registry is read-only"

    done = await run_pass(context.pool, context.locations, registry.settings, PassOptions(grace_s=0))
    assert done.tally.repositories_purged == 1
    assert [manifest.digest for manifest in done.tally.manifests] == [image.digest]


async def test_no_blob_is_deleted_while_a_backup_holds_its_lease(
    registry: Registry, collector: Collector, owner: Account
) -> None:
    image = random_image()
    async with registry.client(owner) as client:
        await push_image(client, f"{owner.username}/app", image, "v1")
        await client.delete(f"/v2/{owner.username}/app/manifests/{image.digest}")
    async with registry.context.pool.acquire() as conn:
        lease = await take_lease(conn, "test backup", timedelta(minutes=5))
    held = await collector.run()
    assert held.tally.blobs == [] and len((await scan(registry)).blobs) == 3
    async with registry.context.pool.acquire() as conn:
        await release_lease(conn, lease)
    freed = await collector.run()
    assert len(freed.tally.blobs) == 3 and (await scan(registry)).stored == set()
