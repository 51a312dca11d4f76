"""A broker outage delays the registry's events and loses none: pushes made while RabbitMQ is
unreachable succeed, and every BlobPushed/ManifestPushed arrives once the broker is back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from yarl import URL

from shared.events.models import BlobPushed, Event, ManifestPushed, parse_event
from tests.e2e.helpers import TAG, image_layout, push
from tests.fixtures.live_registry import LiveRegistry
from tests.fixtures.rabbitmq import MessageCollector
from tests.support.tcpproxy import TcpProxy
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

PUSHES_DURING_OUTAGE = 3
DELIVERY_TIMEOUT_S = 60.0


@pytest.fixture
async def broker_proxy(amqp_url: str) -> AsyncIterator[TcpProxy]:
    """A proxy in front of the test broker: stop() it to make the broker unreachable."""
    broker = URL(amqp_url)
    async with TcpProxy(broker.host or "127.0.0.1", broker.port or 5672) as proxy:
        yield proxy


@pytest.fixture
def live_registry_env(amqp_url: str, broker_proxy: TcpProxy, events_exchange: str) -> dict[str, str]:
    """The live registry publishes to the test's exchange through the proxy."""
    proxied = URL(amqp_url).with_host("127.0.0.1").with_port(broker_proxy.port)
    return {"QUAYSIDE_AMQP_URL": str(proxied), "QUAYSIDE_EVENTS_EXCHANGE": events_exchange}


async def test_pushes_during_a_broker_outage_succeed_and_their_events_all_arrive_after(
    live_registry: LiveRegistry, broker_proxy: TcpProxy, events_collector: MessageCollector, tmp_path: Path
) -> None:
    owner = await live_registry.user()
    await broker_proxy.stop()

    blob_digests: set[str] = set()
    manifest_digests: set[str] = set()
    for number in range(PUSHES_DURING_OUTAGE):
        layout, image = await image_layout(tmp_path / f"image{number}")
        await push(layout, live_registry.reference(f"{owner.username}/app{number}", TAG), owner)
        blob_digests |= await asyncio.to_thread(layout.blob_digests) - {image.digest}
        manifest_digests.add(image.digest)

    outbox = await live_registry.pool.fetch("SELECT event_id, published_at FROM event_outbox")
    assert events_collector.messages == []
    assert all(row["published_at"] is None for row in outbox)

    await broker_proxy.start()

    def received_events() -> list[Event]:
        return [parse_event(message.routing_key, message.body) for message in events_collector.messages]

    async def all_arrived() -> bool:
        return {event.event_id for event in received_events()} >= {row["event_id"] for row in outbox}

    await wait_until(all_arrived, timeout_s=DELIVERY_TIMEOUT_S)
    events = received_events()
    assert {event.event_id for event in events} == {row["event_id"] for row in outbox}
    assert {event.digest for event in events if isinstance(event, BlobPushed)} == blob_digests
    assert {event.digest for event in events if isinstance(event, ManifestPushed)} == manifest_digests
