"""End to end: skopeo pushing into an organization with a quota on the registry process, its events
through RabbitMQ, its notifications to a real webhook receiver. The Warning crossing and then the
Reject crossing are each delivered once; a push whose new blobs would take the organization over
fails at manifest PUT, and once at the limit every push fails at upload start, with skopeo printing
Quay's "Quota has been exceeded on namespace"; the refused pushes store no manifest."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika
import httpx
import pytest

from shared.events.consumer import dead_letter_queue_name
from tests.e2e.helpers import credentials
from tests.fixtures.live_registry import LiveRegistry
from tests.support.ocilayout import Descriptor, OciLayout
from tests.support.receivers import HttpReceiver, http_receiver
from tests.support.skopeo import SkopeoResult, run_skopeo

QUOTA_EXCEEDED = "Quota has been exceeded on namespace"


@pytest.fixture
async def notifications_queue(amqp_url: str) -> AsyncIterator[str]:
    queue = f"quayside.test.notifications.{uuid.uuid4().hex[:12]}"
    yield queue
    async with await aio_pika.connect(amqp_url) as connection:
        channel = await connection.channel()
        for name in (queue, dead_letter_queue_name(queue)):
            await channel.queue_delete(name)


@pytest.fixture
def live_registry_env(amqp_url: str, events_exchange: str, notifications_queue: str) -> dict[str, str]:
    return {
        "QUAYSIDE_AMQP_URL": amqp_url,
        "QUAYSIDE_EVENTS_EXCHANGE": events_exchange,
        "QUAYSIDE_NOTIFICATIONS_QUEUE": notifications_queue,
    }


@pytest.fixture
async def receiver() -> AsyncIterator[HttpReceiver]:
    async with http_receiver() as running:
        yield running


def _images(root: Path, layer_sizes: dict[str, int]) -> tuple[OciLayout, dict[str, int]]:
    """A layout with one single-layer image per tag, and the bytes each adds to a namespace's usage
    (its config and layer: the manifest itself is not a blob)."""
    layout = OciLayout(root)
    usage: dict[str, int] = {}
    for tag, size in layer_sizes.items():
        top: Descriptor = layout.add_image([size])
        layout.tag(top, tag)
        manifest = json.loads(layout.read_blob(top.digest))
        usage[tag] = manifest["config"]["size"] + sum(layer["size"] for layer in manifest["layers"])
    return layout, usage


async def _push(
    live_registry: LiveRegistry, layout: OciLayout, tag: str, owner: str, repository: str
) -> SkopeoResult:
    return await run_skopeo(
        "copy",
        "--dest-tls-verify=false",
        f"--dest-creds={owner}",
        f"oci:{layout.root}:{tag}",
        live_registry.reference(repository, tag),
    )


async def test_skopeo_is_refused_over_the_reject_limit_and_the_crossings_are_notified(
    live_registry: LiveRegistry, receiver: HttpReceiver, tmp_path: Path
) -> None:
    owner = await live_registry.user()
    superuser = await live_registry.user(superuser=True)
    org = await live_registry.organization(owner)
    layout, usage = await asyncio.to_thread(
        _images, tmp_path / "layout", {"first": 48 * 1024, "big": 96 * 1024, "exact": 24 * 1024, "late": 4096}
    )
    # first crosses the Warning limit (50 %), exact reaches the Reject limit (100 %) exactly.
    limit = usage["first"] + usage["exact"]

    async with httpx.AsyncClient(base_url=live_registry.url, auth=superuser.auth) as admin:
        assert (await admin.post(f"/api/v1/organization/{org}/quota", json={"limit_bytes": limit})).is_success
        [quota] = (await admin.get(f"/api/v1/organization/{org}/quota")).json()
        for kind, percent in [("Warning", 50), ("Reject", 100)]:
            body = {"type": kind, "threshold_percent": percent}
            assert (
                await admin.post(f"/api/v1/organization/{org}/quota/{quota['id']}/limit", json=body)
            ).is_success
    async with httpx.AsyncClient(base_url=live_registry.url, auth=owner.auth) as client:
        for event, path in [("quota_warning", "/warning"), ("quota_error", "/error")]:
            body = {
                "event": event,
                "method": "webhook",
                "config": {"url": receiver.url(path)},
                "eventConfig": {},
            }
            assert (
                await client.post(f"/api/v1/organization/{org}/notifications", json=body)
            ).status_code == 201

    login = credentials(owner)
    (await _push(live_registry, layout, "first", login, f"{org}/app")).check()
    [warning] = await receiver.wait_for(1, "/warning")
    assert warning.json() == {
        "namespace": org,
        "homepage": f"http://localhost/organization/{org}",
        "usage_bytes": usage["first"],
        "limit_bytes": limit,
        "threshold_percent": 50,
        "usage_percent": round(100 * usage["first"] / limit, 1),
    }

    refused_at_manifest = await _push(live_registry, layout, "big", login, f"{org}/app")
    assert not refused_at_manifest.ok
    assert f"uploading manifest big to {live_registry.host}/{org}/app: denied: {QUOTA_EXCEEDED}" in (
        refused_at_manifest.stderr
    )

    (await _push(live_registry, layout, "exact", login, f"{org}/other")).check()
    [error] = await receiver.wait_for(1, "/error")
    assert (error.json()["usage_bytes"], error.json()["threshold_percent"]) == (limit, 100)

    refused_at_upload = await _push(live_registry, layout, "late", login, f"{org}/app")
    assert not refused_at_upload.ok
    # As seed 003 shows podman printing it.
    assert (
        f"initiating layer upload to /v2/{org}/app/blobs/uploads/ in {live_registry.host}: denied: {QUOTA_EXCEEDED}"
        in (refused_at_upload.stderr)
    )

    async with live_registry.pool.acquire() as conn:
        tags = await conn.fetch(
            "SELECT r.name, t.name FROM tag t JOIN repository r ON r.id = t.repository_id"
            " JOIN namespace n ON n.id = r.namespace_id WHERE n.name = $1 ORDER BY 1, 2",
            org,
        )
        manifests = await conn.fetchval(
            "SELECT count(*) FROM manifest m JOIN repository r ON r.id = m.repository_id"
            " JOIN namespace n ON n.id = r.namespace_id WHERE n.name = $1",
            org,
        )
    assert [tuple(row) for row in tags] == [("app", "first"), ("other", "exact")]
    assert manifests == 2
    assert len(receiver.received("/warning")) == 1 and len(receiver.received("/error")) == 1
