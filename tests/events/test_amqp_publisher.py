from __future__ import annotations

import pytest

from shared.events.bus import AmqpPublisher, PublishError
from tests.fixtures.rabbitmq import MessageCollector
from tests.support.tcpproxy import TcpProxy


async def test_publishes_persistent_json_with_routing_key_and_message_id(
    amqp_publisher: AmqpPublisher, events_collector: MessageCollector
) -> None:
    await amqp_publisher.publish("manifest.pushed", b'{"digest": "sha256:ab"}', "event-1")

    [message] = await events_collector.wait_for(1)
    assert message.routing_key == "manifest.pushed"
    assert message.body == b'{"digest": "sha256:ab"}'
    assert message.message_id == "event-1"
    assert message.content_type == "application/json"
    assert message.persistent


async def test_unreachable_broker_raises_publish_error(
    proxied_amqp_url: str, broker_proxy: TcpProxy, events_exchange: str
) -> None:
    await broker_proxy.stop()
    publisher = AmqpPublisher(proxied_amqp_url, events_exchange, timeout_s=5)
    try:
        with pytest.raises(PublishError):
            await publisher.publish("blob.pushed", b"{}", "event-1")
    finally:
        await publisher.close()


async def test_reconnects_after_the_connection_was_lost(
    proxied_amqp_url: str,
    broker_proxy: TcpProxy,
    events_exchange: str,
    events_collector: MessageCollector,
) -> None:
    publisher = AmqpPublisher(proxied_amqp_url, events_exchange, timeout_s=5)
    try:
        await publisher.publish("blob.pushed", b"{}", "before-outage")
        await broker_proxy.stop()
        with pytest.raises(PublishError):
            await publisher.publish("blob.pushed", b"{}", "during-outage")

        await broker_proxy.start()
        await publisher.publish("blob.pushed", b"{}", "after-outage")
    finally:
        await publisher.close()

    messages = await events_collector.wait_for(2)
    assert [message.message_id for message in messages] == ["before-outage", "after-outage"]
