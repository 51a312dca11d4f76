from __future__ import annotations

import pytest

from shared.events.bus import BusMessage, InProcessBus, PublishError, topic_matches


@pytest.mark.parametrize(
    ("pattern", "routing_key", "expected"),
    [
        ("blob.pushed", "blob.pushed", True),
        ("blob.pushed", "blob.deleted", False),
        ("blob.*", "blob.pushed", True),
        ("blob.*", "blob", False),
        ("blob.*", "blob.pushed.eu", False),
        ("*.pushed", "manifest.pushed", True),
        ("#", "blob.pushed", True),
        ("#", "blob", True),
        ("blob.#", "blob", True),
        ("blob.#", "blob.pushed.eu", True),
        ("blob.#", "manifest.pushed", False),
        ("#.pushed", "pushed", True),
        ("#.pushed", "a.b.pushed", True),
        ("#.pushed", "a.pushed.b", False),
        ("mirror.#.failed", "mirror.failed", True),
        ("mirror.#.failed", "mirror.sync.step.failed", True),
        ("*.*", "blob", False),
        ("blob.pushed", "blob.pushed.eu", False),
    ],
)
def test_topic_patterns_follow_amqp_semantics(pattern: str, routing_key: str, expected: bool) -> None:
    assert topic_matches(pattern, routing_key) is expected


async def test_publish_reaches_every_matching_handler_only() -> None:
    bus = InProcessBus()
    received: dict[str, list[BusMessage]] = {"blobs": [], "all": [], "manifests": []}
    for name, pattern in (("blobs", "blob.*"), ("all", "#"), ("manifests", "manifest.pushed")):

        async def handler(message: BusMessage, sink: list[BusMessage] = received[name]) -> None:
            sink.append(message)

        bus.subscribe(pattern, handler)

    await bus.publish("blob.pushed", b'{"n": 1}', "id-1")

    expected = BusMessage(routing_key="blob.pushed", body=b'{"n": 1}', message_id="id-1")
    assert received == {"blobs": [expected], "all": [expected], "manifests": []}


async def test_a_failing_handler_fails_the_publish_but_the_others_still_run() -> None:
    bus = InProcessBus()
    delivered: list[str] = []

    async def broken(message: BusMessage) -> None:
        raise RuntimeError("handler bug")

    async def working(message: BusMessage) -> None:
        delivered.append(message.message_id)

    bus.subscribe("#", broken)
    bus.subscribe("blob.pushed", working)

    with pytest.raises(PublishError):
        await bus.publish("blob.pushed", b"{}", "id-1")
    assert delivered == ["id-1"]


async def test_a_closed_bus_refuses_to_publish() -> None:
    bus = InProcessBus()
    delivered: list[str] = []

    async def handler(message: BusMessage) -> None:
        delivered.append(message.message_id)

    bus.subscribe("#", handler)
    await bus.close()

    with pytest.raises(PublishError):
        await bus.publish("blob.pushed", b"{}", "id-1")
    assert delivered == []
