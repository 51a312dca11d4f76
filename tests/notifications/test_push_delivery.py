"""End to end: a /v2 push, the outbox, the worker (RabbitMQ or the in-process bus), a real receiver."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aio_pika
import pytest

from services.registry.domain.notification_delivery import DELIVERY_TIMEOUT_S
from services.registry.worker import publisher_for, run_worker
from shared.config import Settings
from shared.events.bus import InProcessBus
from shared.events.consumer import dead_letter_queue_name
from tests.events.helpers import running
from tests.fixtures.registry import Account, Registry, registry_settings
from tests.support.oci import push_image, random_image
from tests.support.receivers import HttpReceiver
from tests.support.registry_app import running_registry
from tests.support.waiting import wait_until


@asynccontextmanager
async def registry_with_worker(settings: Settings) -> AsyncIterator[Registry]:
    """The registry app and its worker (relay + notification delivery), as `python -m services.registry` runs them."""
    publisher = InProcessBus() if settings.amqp_url is None else publisher_for(settings)
    async with running_registry(settings) as registry, running(run_worker(settings, publisher)):
        yield registry


@pytest.fixture
async def amqp_settings(
    database_url: str, tmp_path: Path, amqp_url: str, events_exchange: str
) -> AsyncIterator[Settings]:
    queue = f"quayside.test.notifications.{uuid.uuid4().hex[:12]}"
    yield registry_settings(
        database_url,
        tmp_path / "storage",
        amqp_url=amqp_url,
        events_exchange=events_exchange,
        notifications_queue=queue,
        public_url="http://registry.test",
    )
    async with await aio_pika.connect(amqp_url) as connection:
        channel = await connection.channel()
        for name in (queue, dead_letter_queue_name(queue)):
            await channel.queue_delete(name)


async def organization_with_webhook(registry: Registry, receiver: HttpReceiver) -> tuple[Account, str, str]:
    """An owner, its organization, and the uuid of a repo_push webhook on '<org>/app'."""
    owner = await registry.user()
    org = await registry.organization(owner)
    async with registry.client(owner) as client:
        await push_image(client, f"{org}/app", random_image(), "first")
        created = await client.post(
            f"/api/v1/repository/{org}/app/notification/",
            json={
                "event": "repo_push",
                "method": "webhook",
                "config": {"url": receiver.url()},
                "eventConfig": {},
            },
        )
    assert created.status_code == 201, created.text
    return owner, org, created.json()["uuid"]


async def test_a_push_reaches_the_webhook_through_rabbitmq(
    amqp_settings: Settings, receiver: HttpReceiver
) -> None:
    async with registry_with_worker(amqp_settings) as registry:
        owner, org, _ = await organization_with_webhook(registry, receiver)
        async with registry.client(owner) as client:
            await push_image(client, f"{org}/app", random_image(), "latest")

        [request] = await receiver.wait_for(1)

    assert request.json() == {
        "repository": f"{org}/app",
        "namespace": org,
        "name": "app",
        "docker_url": f"registry.test/{org}/app",
        "homepage": f"http://registry.test/repository/{org}/app",
        "updated_tags": ["latest"],
    }


async def test_a_dead_receiver_never_slows_a_push_and_ends_disabled(
    amqp_settings: Settings, receiver: HttpReceiver
) -> None:
    receiver.hang = True
    async with registry_with_worker(amqp_settings) as registry:
        owner, org, notification_uuid = await organization_with_webhook(registry, receiver)
        async with registry.client(owner) as client:
            for tag in ("a", "b", "c"):
                started = time.monotonic()
                await push_image(client, f"{org}/app", random_image(), tag)
                assert time.monotonic() - started < DELIVERY_TIMEOUT_S

            async def disabled() -> bool:
                view = (
                    await client.get(f"/api/v1/repository/{org}/app/notification/{notification_uuid}")
                ).json()
                return view["enabled"] is False

            await wait_until(disabled, timeout_s=4 * DELIVERY_TIMEOUT_S + 10)
            view = (await client.get(f"/api/v1/repository/{org}/app/notification/{notification_uuid}")).json()

    assert view["number_of_failures"] == 3
    assert "ReadTimeout" in view["disabled_reason"]


async def test_the_test_endpoint_delivers_a_sample_in_embedded_mode(
    database_url: str, tmp_path: Path, receiver: HttpReceiver
) -> None:
    settings = registry_settings(database_url, tmp_path / "storage")
    async with registry_with_worker(settings) as registry:
        owner, org, notification_uuid = await organization_with_webhook(registry, receiver)
        async with registry.client(owner) as client:
            response = await client.post(
                f"/api/v1/repository/{org}/app/notification/{notification_uuid}/test"
            )
            await push_image(client, f"{org}/app", random_image(), "v2")

        requests = await receiver.wait_for(2)

    assert response.status_code == 200
    assert sorted(tuple(request.json()["updated_tags"]) for request in requests) == [
        ("latest", "foo"),
        ("v2",),
    ]
