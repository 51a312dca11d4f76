from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from yarl import URL

from shared.events.bus import AmqpPublisher
from tests.support.tcpproxy import TcpProxy


@pytest.fixture
async def amqp_publisher(amqp_url: str, events_exchange: str) -> AsyncIterator[AmqpPublisher]:
    publisher = AmqpPublisher(amqp_url, events_exchange)
    yield publisher
    await publisher.close()


@pytest.fixture
async def broker_proxy(amqp_url: str) -> AsyncIterator[TcpProxy]:
    """A proxy in front of the test broker: stop() it to make the broker unreachable."""
    broker = URL(amqp_url)
    async with TcpProxy(broker.host or "127.0.0.1", broker.port or 5672) as proxy:
        yield proxy


@pytest.fixture
def proxied_amqp_url(amqp_url: str, broker_proxy: TcpProxy) -> str:
    return str(URL(amqp_url).with_host("127.0.0.1").with_port(broker_proxy.port))
