"""GET /metrics: requests by route template and status, latency, blob bytes pushed and pulled,
events published and failed, the outbox backlog; totals over every HTTP process of a live server.

Metrics are process-wide counters: tests compare a scrape before and after what they do.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared.events.bus import BusMessage, InProcessBus, PublishError
from shared.events.models import BlobPushed
from shared.events.outbox import enqueue
from shared.events.relay import OutboxRelay
from shared.oci.digest import digest_bytes
from tests.fixtures.live_registry import LiveRegistry
from tests.fixtures.registry import Account, Registry
from tests.support.oci import push_blob, push_image, random_image
from tests.support.waiting import wait_until

MANIFEST_ROUTE = "/v2/{name:path}/manifests/{reference}"


@pytest.fixture
async def owner(registry: Registry) -> Account:
    return await registry.user()


@pytest.fixture
async def client(registry: Registry, owner: Account) -> AsyncIterator[httpx.AsyncClient]:
    async with registry.client(owner) as client:
        yield client


class Scrape:
    """One /metrics answer, parsed."""

    def __init__(self, exposition: str) -> None:
        self._samples = [
            sample for family in text_string_to_metric_families(exposition) for sample in family.samples
        ]

    def value(self, name: str, **labels: str) -> float:
        """The sample's value (0 when absent); labels must match all of the sample's labels."""
        for sample in self._samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
        return 0.0

    def has(self, name: str) -> bool:
        return any(sample.name == name for sample in self._samples)


async def scrape(client: httpx.AsyncClient) -> Scrape:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return Scrape(response.text)


def requests(scrape: Scrape, method: str, route: str, status: int) -> float:
    return scrape.value(
        "quayside_http_requests_total", service="registry", method=method, route=route, status=str(status)
    )


def latency_count(scrape: Scrape, method: str, route: str) -> float:
    return scrape.value(
        "quayside_http_request_duration_seconds_count", service="registry", method=method, route=route
    )


async def test_requests_are_counted_and_timed_by_route_template_and_status(
    registry: Registry, client: httpx.AsyncClient, owner: Account
) -> None:
    repo = f"{owner.username}/app"
    image = random_image()
    await push_image(client, repo, image, "v1")
    before = await scrape(client)

    for reference in ("v1", image.digest, "missing"):
        await client.get(f"/v2/{repo}/manifests/{reference}")
    async with registry.client() as anonymous:
        await anonymous.get("/v2/")
        await anonymous.get("/no/such/path")
    after = await scrape(client)

    assert requests(after, "GET", MANIFEST_ROUTE, 200) - requests(before, "GET", MANIFEST_ROUTE, 200) == 2
    assert requests(after, "GET", MANIFEST_ROUTE, 404) - requests(before, "GET", MANIFEST_ROUTE, 404) == 1
    assert latency_count(after, "GET", MANIFEST_ROUTE) - latency_count(before, "GET", MANIFEST_ROUTE) == 3
    assert requests(after, "GET", "/v2/", 401) - requests(before, "GET", "/v2/", 401) == 1
    assert requests(after, "GET", "<unmatched>", 404) - requests(before, "GET", "<unmatched>", 404) == 1


async def test_blob_bytes_pushed_and_pulled_are_counted(client: httpx.AsyncClient, owner: Account) -> None:
    repo = f"{owner.username}/app"
    monolithic, first_chunk, second_chunk = os.urandom(3000), os.urandom(1000), os.urandom(500)
    before = await scrape(client)

    digest = await push_blob(client, repo, monolithic)
    started = await client.post(f"/v2/{repo}/blobs/uploads/")
    patched = await client.patch(started.headers["location"], content=first_chunk)
    chunked_digest = digest_bytes(first_chunk + second_chunk)
    finished = await client.put(
        patched.headers["location"], params={"digest": chunked_digest}, content=second_chunk
    )
    refused = await client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=b"not it")
    await client.get(f"/v2/{repo}/blobs/{digest}")
    await client.head(f"/v2/{repo}/blobs/{digest}")
    await client.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": "bytes=0-99"})
    after = await scrape(client)

    assert finished.status_code == 201 and refused.status_code == 400
    pushed = after.value("quayside_registry_blob_pushed_bytes_total") - before.value(
        "quayside_registry_blob_pushed_bytes_total"
    )
    pulled = after.value("quayside_registry_blob_pulled_bytes_total") - before.value(
        "quayside_registry_blob_pulled_bytes_total"
    )
    assert pushed == len(monolithic) + len(first_chunk) + len(second_chunk)
    assert pulled == len(monolithic) + 100


async def test_the_outbox_backlog_is_read_at_scrape_time(
    registry: Registry, client: httpx.AsyncClient, owner: Account
) -> None:
    await push_image(client, f"{owner.username}/app", random_image(), "v1")
    pending = await registry.context.pool.fetchval(
        "SELECT count(*) FROM event_outbox WHERE published_at IS NULL"
    )

    scraped = await scrape(client)

    assert pending > 0
    assert scraped.value("quayside_outbox_backlog") == pending


async def test_events_published_and_refused_by_the_bus_are_counted(
    registry: Registry, client: httpx.AsyncClient, db_pool: asyncpg.Pool, database_url: str
) -> None:
    bus = InProcessBus()
    refusing = True

    async def handler(message: BusMessage) -> None:
        if refusing:
            raise RuntimeError(f"handler refuses {message.message_id}")

    bus.subscribe("blob.pushed", handler)
    async with db_pool.acquire() as conn:
        await enqueue(
            conn,
            BlobPushed(namespace="acme", repository="app", digest="sha256:" + "1" * 64, size=1, location="x"),
        )
    relay = OutboxRelay(db_pool, bus, listen_dsn=database_url)
    before = await scrape(client)

    with pytest.raises(PublishError):
        await relay.drain_once()
    refusing = False
    await relay.drain_once()
    after = await scrape(client)

    def delta(name: str) -> float:
        return after.value(name, routing_key="blob.pushed") - before.value(name, routing_key="blob.pushed")

    assert delta("quayside_events_publish_failures_total") == 1
    assert delta("quayside_events_published_total") == 1


@pytest.fixture
def live_registry_env(tmp_path: Path) -> dict[str, str]:
    """Two HTTP processes sharing a Prometheus multiprocess folder."""
    folder = tmp_path / "prometheus"
    folder.mkdir()
    return {"PROMETHEUS_MULTIPROC_DIR": str(folder), "QUAYSIDE_HTTP_PROCESSES": "2"}


def processes_with_metrics(folder: Path) -> set[str]:
    return {match.group(1) for path in folder.iterdir() if (match := re.search(r"_(\d+)\.db$", path.name))}


async def test_metrics_total_every_http_process(live_registry: LiveRegistry, tmp_path: Path) -> None:
    folder = tmp_path / "prometheus"
    # Each process writes its metric files once it has imported the app: both are up then.
    await wait_until(lambda: len(processes_with_metrics(folder)) >= 2)
    async with httpx.AsyncClient(base_url=live_registry.url) as client:
        before = requests(await scrape(client), "GET", "/v2/", 401)

    # A connection per request, so that the kernel spreads them over both processes.
    for _ in range(40):
        async with httpx.AsyncClient(base_url=live_registry.url) as client:
            assert (await client.get("/v2/")).status_code == 401
    for _ in range(5):
        async with httpx.AsyncClient(base_url=live_registry.url) as client:
            assert requests(await scrape(client), "GET", "/v2/", 401) - before == 40
