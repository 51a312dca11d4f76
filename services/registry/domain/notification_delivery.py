"""Delivering notifications: the worker side, fed by events, never by the requests that cause them.

A push only writes its event to the outbox; the worker consumes it (queue
`QUAYSIDE_NOTIFICATIONS_QUEUE` on RabbitMQ, or the in-process bus in embedded mode), finds the
notifications watching it and delivers them concurrently, each within DELIVERY_TIMEOUT_S. A slow
or dead receiver delays only its own delivery. Every delivery is counted on its notification (see
notifications.record_delivery): a failure is an HTTP status outside 2xx, a connection error, a
timeout or an SMTP error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx

from services.registry.domain import notifications
from services.registry.domain.mail import MailError, send_email
from services.registry.domain.notifications import (
    EmailConfig,
    Notification,
    Occurrence,
    SlackConfig,
    WebhookConfig,
)
from shared.config import Settings
from shared.events.bus import InProcessBus, Publisher
from shared.events.consumer import IdempotentConsumer, consuming_from_amqp, subscribe_in_process
from shared.events.models import (
    Event,
    ManifestPushed,
    MirrorFailed,
    MirrorStarted,
    MirrorSucceeded,
    NotificationTestRequested,
    QuotaExceeded,
    QuotaWarning,
    TagExpired,
)

log = logging.getLogger(__name__)

DELIVERY_TIMEOUT_S = 5.0
CONSUMER_NAME = "registry.notifications"
BINDING_KEYS: tuple[str, ...] = tuple(
    event.routing_key
    for event in (
        ManifestPushed,
        TagExpired,
        MirrorStarted,
        MirrorSucceeded,
        MirrorFailed,
        QuotaWarning,
        QuotaExceeded,
        NotificationTestRequested,
    )
)


class DeliveryError(Exception):
    """A delivery that did not reach its receiver; the message says what went wrong."""


def slack_message(occurrence: Occurrence) -> dict[str, Any]:
    """A Slack incoming-webhook message: the summary, linked to the page it is about."""
    text = notifications.summary(occurrence)
    homepage = occurrence.data.get("homepage")
    return {"text": f"{text} (<{homepage}|open>)" if homepage else text}


def email_body(occurrence: Occurrence) -> str:
    return f"{notifications.summary(occurrence)}\n\n{json.dumps(occurrence.data, indent=2, sort_keys=True)}\n"


class Deliverer:
    """Sends one occurrence by one notification's method."""

    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        self._settings = settings
        self._http = http

    async def deliver(self, notification: Notification, occurrence: Occurrence) -> None:
        """Raise DeliveryError unless the receiver accepted the message."""
        match notification.method_config:
            case WebhookConfig(url=url, template=template):
                body = (
                    notifications.render_template(template, occurrence.data) if template else occurrence.data
                )
                await self._post(url, body)
            case SlackConfig(url=url):
                await self._post(url, slack_message(occurrence))
            case EmailConfig(email=address):
                try:
                    await send_email(
                        self._settings, address, notifications.summary(occurrence), email_body(occurrence)
                    )
                except MailError as error:
                    raise DeliveryError(str(error)) from error

    async def _post(self, url: str, body: Any) -> None:
        try:
            response = await self._http.post(url, json=body, timeout=DELIVERY_TIMEOUT_S)
        except httpx.HTTPError as error:
            raise DeliveryError(f"POST {url} failed: {error!r}") from error
        if not response.is_success:
            raise DeliveryError(f"{response.status_code} response from {url}")


class NotificationDispatcher:
    """The notification consumer's handler: an event in, deliveries out, each counted.

    Runs in the consumer's transaction (see shared.events.consumer), so the failure counts commit
    together with the event's "processed" mark.
    """

    def __init__(self, settings: Settings, deliverer: Deliverer) -> None:
        self._settings = settings
        self._deliverer = deliverer

    async def __call__(self, conn: asyncpg.Connection, event: Event) -> None:
        targets = await self._targets(conn, event)
        errors = await asyncio.gather(
            *(self._attempt(notification, occurrence) for notification, occurrence in targets)
        )
        for (notification, _), error in zip(targets, errors, strict=True):
            await notifications.record_delivery(conn, notification.id, error)

    async def _targets(self, conn: asyncpg.Connection, event: Event) -> list[tuple[Notification, Occurrence]]:
        if isinstance(event, NotificationTestRequested):
            notification = await notifications.find_by_uuid(conn, event.notification_uuid)
            if notification is None:  # deleted since the test was asked for
                return []
            return [(notification, notifications.sample_occurrence(self._settings, notification))]
        occurrence = notifications.occurrence_for(self._settings, event)
        if occurrence is None:
            return []
        watching = await notifications.watching(conn, occurrence, event.occurred_at)
        return [(notification, occurrence) for notification in watching]

    async def _attempt(self, notification: Notification, occurrence: Occurrence) -> str | None:
        """None when delivered, else why not."""
        try:
            await self._deliverer.deliver(notification, occurrence)
        except DeliveryError as error:
            log.warning(
                "notification %s (%s) not delivered: %s", notification.view.uuid, occurrence.event, error
            )
            return str(error)
        return None


@contextlib.asynccontextmanager
async def delivering_notifications(
    settings: Settings, pool: asyncpg.Pool, publisher: Publisher
) -> AsyncIterator[None]:
    """Deliver notifications for the block's duration.

    With QUAYSIDE_AMQP_URL the events come from the durable queue QUAYSIDE_NOTIFICATIONS_QUEUE
    (declared on entry, so nothing published afterwards is missed); otherwise `publisher` must be
    the in-process bus, which the dispatcher subscribes to.
    """
    async with httpx.AsyncClient(follow_redirects=False, timeout=DELIVERY_TIMEOUT_S) as http:
        consumer = IdempotentConsumer(
            CONSUMER_NAME, pool, NotificationDispatcher(settings, Deliverer(settings, http))
        )
        if settings.amqp_url:
            async with consuming_from_amqp(
                consumer,
                amqp_url=settings.amqp_url,
                exchange=settings.events_exchange,
                queue=settings.notifications_queue,
                binding_keys=BINDING_KEYS,
            ):
                yield
            return
        if not isinstance(publisher, InProcessBus):
            raise TypeError("without QUAYSIDE_AMQP_URL, notifications need the in-process bus")
        subscribe_in_process(publisher, consumer, BINDING_KEYS)
        yield
