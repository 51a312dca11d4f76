"""`python -m services.registry`: the API and the outbox relay to RabbitMQ in one process."""

from __future__ import annotations

import httpx
import pytest

from shared.events.models import BlobPushed
from shared.events.outbox import enqueue
from tests.fixtures.live_registry import LiveRegistry
from tests.fixtures.rabbitmq import MessageCollector


@pytest.fixture
def live_registry_env(amqp_url: str, events_exchange: str) -> dict[str, str]:
    return {"QUAYSIDE_AMQP_URL": amqp_url, "QUAYSIDE_EVENTS_EXCHANGE": events_exchange}


async def test_serves_the_api_and_relays_events_until_sigterm(
    live_registry: LiveRegistry, events_collector: MessageCollector
) -> None:
    async with httpx.AsyncClient(base_url=live_registry.url) as http:
        challenge = (await http.get("/v2/")).headers["WWW-Authenticate"]
    assert challenge.startswith(f'Bearer realm="{live_registry.url}/v2/auth"')

    event = BlobPushed(
        namespace="acme", repository="app", digest="sha256:" + "0" * 64, size=1, location="local"
    )
    async with live_registry.pool.acquire() as conn, conn.transaction():
        await enqueue(conn, event)
    [message] = await events_collector.wait_for(1)
    assert message.routing_key == "blob.pushed"
    assert message.message_id == str(event.event_id)
    assert BlobPushed.model_validate_json(message.body) == event

    await live_registry.server.stop()
    assert live_registry.server.process.returncode == 0
