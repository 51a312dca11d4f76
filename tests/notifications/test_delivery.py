"""Delivery of notifications by the worker's dispatcher, against real receivers and a real database."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import httpx
import pytest

from services.registry.domain.notification_delivery import (
    CONSUMER_NAME,
    DELIVERY_TIMEOUT_S,
    Deliverer,
    NotificationDispatcher,
)
from shared.config import Settings
from shared.events.consumer import IdempotentConsumer, Outcome, Verdict
from shared.events.models import (
    Event,
    ManifestPushed,
    MirrorFailed,
    NotificationTestRequested,
    QuotaWarning,
)
from tests.notifications.helpers import Place, add_notification, organization_with_repository, stored
from tests.support.process import free_port
from tests.support.receivers import HttpReceiver, SmtpServer, http_receiver

PUBLIC_URL = "https://registry.example.com"


def pushed(place: Place, *tags: str, repository: str | None = None) -> ManifestPushed:
    return ManifestPushed(
        namespace=place.namespace,
        repository=repository or place.repository,
        digest="sha256:" + "a" * 64,
        media_type="application/vnd.oci.image.manifest.v1+json",
        size=100,
        tags=list(tags),
    )


class Worker:
    """The notification consumer as the worker runs it, fed events by hand."""

    def __init__(self, consumer: IdempotentConsumer) -> None:
        self.consumer = consumer

    async def handle(self, event: Event) -> Verdict:
        return await self.consumer.process(event.routing_key, event.model_dump_json().encode())


@asynccontextmanager
async def notification_worker(pool: asyncpg.Pool, smtp_port: int = 25) -> AsyncIterator[Worker]:
    settings = Settings(public_url=PUBLIC_URL, smtp_host="127.0.0.1", smtp_port=smtp_port)
    async with httpx.AsyncClient() as http:
        dispatcher = NotificationDispatcher(settings, Deliverer(settings, http))
        yield Worker(IdempotentConsumer(CONSUMER_NAME, pool, dispatcher, max_attempts=1))


@pytest.fixture
async def worker(db_pool: asyncpg.Pool) -> AsyncIterator[Worker]:
    async with notification_worker(db_pool) as running:
        yield running


async def test_webhook_receives_quays_repo_push_data(
    db_pool: asyncpg.Pool, worker: Worker, receiver: HttpReceiver
) -> None:
    place = await organization_with_repository(db_pool)
    await add_notification(db_pool, place, "repo_push", "webhook", {"url": receiver.url()})

    verdict = await worker.handle(pushed(place, "latest", "v1"))

    assert verdict.outcome is Outcome.HANDLED
    [request] = await receiver.wait_for(1)
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {
        "repository": f"{place.namespace}/app",
        "namespace": place.namespace,
        "name": "app",
        "docker_url": f"registry.example.com/{place.namespace}/app",
        "homepage": f"{PUBLIC_URL}/repository/{place.namespace}/app",
        "updated_tags": ["latest", "v1"],
    }


async def test_organization_notifications_watch_every_repository_and_others_stay_quiet(
    db_pool: asyncpg.Pool, worker: Worker, receiver: HttpReceiver
) -> None:
    place = await organization_with_repository(db_pool)
    other = await organization_with_repository(db_pool)
    await add_notification(
        db_pool, place, "repo_push", "webhook", {"url": receiver.url("/org")}, organization_level=True
    )
    await add_notification(db_pool, place, "repo_push", "webhook", {"url": receiver.url("/repo")})
    await add_notification(db_pool, other, "repo_push", "webhook", {"url": receiver.url("/other")})
    await add_notification(
        db_pool, place, "repo_mirror_sync_failed", "webhook", {"url": receiver.url("/mirror")}
    )

    await worker.handle(pushed(place, "latest", repository="another"))
    await worker.handle(pushed(place, "latest"))

    org_requests = await receiver.wait_for(2, "/org")
    assert sorted(request.json()["name"] for request in org_requests) == ["another", "app"]
    assert [request.json()["name"] for request in await receiver.wait_for(1, "/repo")] == ["app"]
    assert receiver.received("/other") == []
    assert receiver.received("/mirror") == []


async def test_push_by_digest_alone_raises_no_repo_push(
    db_pool: asyncpg.Pool, worker: Worker, receiver: HttpReceiver
) -> None:
    place = await organization_with_repository(db_pool)
    await add_notification(db_pool, place, "repo_push", "webhook", {"url": receiver.url()})

    assert (await worker.handle(pushed(place))).outcome is Outcome.HANDLED

    assert receiver.requests == []


async def test_webhook_template_is_filled_with_event_data(
    db_pool: asyncpg.Pool, worker: Worker, receiver: HttpReceiver
) -> None:
    place = await organization_with_repository(db_pool)
    template = '{"msg": "pushed ${repository}: ${updated_tags}", "tags": "${updated_tags}", "x": "${nope}"}'
    await add_notification(
        db_pool, place, "repo_push", "webhook", {"url": receiver.url(), "template": template}
    )

    await worker.handle(pushed(place, "a", "b"))

    [request] = await receiver.wait_for(1)
    assert request.json() == {"msg": f"pushed {place.namespace}/app: a,b", "tags": ["a", "b"], "x": None}


async def test_slack_gets_an_incoming_webhook_message(
    db_pool: asyncpg.Pool, worker: Worker, receiver: HttpReceiver
) -> None:
    place = await organization_with_repository(db_pool)
    await add_notification(db_pool, place, "repo_mirror_sync_failed", "slack", {"url": receiver.url()})

    await worker.handle(
        MirrorFailed(
            namespace=place.namespace,
            repository=place.repository,
            external_reference="quay.io/upstream/app",
            error="upstream refused",
        )
    )

    [request] = await receiver.wait_for(1)
    homepage = f"{PUBLIC_URL}/repository/{place.namespace}/app"
    assert request.json() == {
        "text": f"Repository Mirror failed for quay.io/upstream/app: upstream refused (<{homepage}|open>)"
    }


async def test_email_arrives_at_the_smtp_server(db_pool: asyncpg.Pool, smtp: SmtpServer) -> None:
    place = await organization_with_repository(db_pool)
    await add_notification(
        db_pool, place, "quota_warning", "email", {"email": "ops@example.com"}, organization_level=True
    )

    async with notification_worker(db_pool, smtp.port) as worker:
        await worker.handle(
            QuotaWarning(namespace=place.namespace, usage_bytes=850, limit_bytes=1000, threshold_percent=80)
        )

    [message] = await smtp.wait_for(1)
    assert message["To"] == "ops@example.com"
    assert message["Subject"] == f"Quota warning for namespace {place.namespace}: 85.0% used"
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    assert '"limit_bytes": 1000' in body.get_content()


async def test_three_failures_in_a_row_disable_the_notification(
    db_pool: asyncpg.Pool, worker: Worker, receiver: HttpReceiver
) -> None:
    place = await organization_with_repository(db_pool)
    notification = await add_notification(db_pool, place, "repo_push", "webhook", {"url": receiver.url()})
    receiver.status = 500

    await worker.handle(pushed(place, "1"))
    await worker.handle(pushed(place, "2"))
    assert (await stored(db_pool, notification)).view.number_of_failures == 2
    receiver.status = 200
    await worker.handle(pushed(place, "3"))
    assert (await stored(db_pool, notification)).view.number_of_failures == 0
    receiver.status = 404
    for tag in ("4", "5", "6"):
        await worker.handle(pushed(place, tag))
    await worker.handle(pushed(place, "7"))

    view = (await stored(db_pool, notification)).view
    assert (view.enabled, view.number_of_failures) == (False, 3)
    assert view.disabled_reason is not None
    assert "3 failed deliveries" in view.disabled_reason
    assert "404 response" in view.disabled_reason
    assert [request.json()["updated_tags"] for request in receiver.received()] == [
        [str(n)] for n in range(1, 7)
    ]


async def test_unreachable_receivers_count_as_failures(db_pool: asyncpg.Pool, worker: Worker) -> None:
    place = await organization_with_repository(db_pool)
    notification = await add_notification(
        db_pool, place, "repo_push", "webhook", {"url": f"http://127.0.0.1:{free_port()}/closed"}
    )

    await worker.handle(pushed(place, "latest"))

    view = (await stored(db_pool, notification)).view
    assert view.number_of_failures == 1
    assert view.enabled


async def test_a_hanging_receiver_times_out_without_holding_up_the_others(
    db_pool: asyncpg.Pool, worker: Worker, receiver: HttpReceiver
) -> None:
    place = await organization_with_repository(db_pool)
    hanging = await add_notification(db_pool, place, "repo_push", "webhook", {"url": receiver.url()})
    receiver.hang = True
    async with http_receiver() as healthy:
        await add_notification(db_pool, place, "repo_push", "webhook", {"url": healthy.url()})

        started = time.monotonic()
        await worker.handle(pushed(place, "latest"))
        elapsed = time.monotonic() - started

        assert len(healthy.received()) == 1
    assert DELIVERY_TIMEOUT_S <= elapsed < DELIVERY_TIMEOUT_S + 3
    assert (await stored(db_pool, hanging)).view.number_of_failures == 1


async def test_the_test_event_sends_sample_data_to_one_notification(
    db_pool: asyncpg.Pool, worker: Worker, receiver: HttpReceiver
) -> None:
    place = await organization_with_repository(db_pool)
    target = await add_notification(db_pool, place, "repo_push", "webhook", {"url": receiver.url("/target")})
    await add_notification(db_pool, place, "repo_push", "webhook", {"url": receiver.url("/bystander")})

    await worker.handle(NotificationTestRequested(notification_uuid=target.view.uuid))

    [request] = await receiver.wait_for(1, "/target")
    assert request.json()["updated_tags"] == ["latest", "foo"]
    assert request.json()["repository"] == f"{place.namespace}/app"
    assert receiver.received("/bystander") == []


async def test_the_same_event_twice_is_delivered_once(
    db_pool: asyncpg.Pool, worker: Worker, receiver: HttpReceiver
) -> None:
    place = await organization_with_repository(db_pool)
    await add_notification(db_pool, place, "repo_push", "webhook", {"url": receiver.url()})
    event = pushed(place, "latest")

    first = await worker.handle(event)
    second = await worker.handle(event)

    assert (first.outcome, second.outcome) == (Outcome.HANDLED, Outcome.DUPLICATE)
    assert len(receiver.received()) == 1


async def test_a_notification_is_not_told_of_events_older_than_itself(
    db_pool: asyncpg.Pool, worker: Worker, receiver: HttpReceiver
) -> None:
    place = await organization_with_repository(db_pool)
    earlier = pushed(place, "before")
    await add_notification(db_pool, place, "repo_push", "webhook", {"url": receiver.url()})

    await worker.handle(earlier)
    await worker.handle(pushed(place, "after"))

    [request] = await receiver.wait_for(1)
    assert request.json()["updated_tags"] == ["after"]
