"""Writing events into the transactional outbox."""

from __future__ import annotations

import asyncpg

from shared.events.models import Event

OUTBOX_CHANNEL = "quayside_outbox"


async def enqueue(conn: asyncpg.Connection, event: Event) -> None:
    """Record the event in the caller's transaction; the relay publishes it after commit."""
    await conn.execute(
        "INSERT INTO event_outbox (event_id, routing_key, payload) VALUES ($1, $2, $3)",
        event.event_id,
        event.routing_key,
        event.model_dump(mode="json"),
    )
    # Delivered at commit only: wakes the relay without polling delay.
    await conn.execute("SELECT pg_notify($1, '')", OUTBOX_CHANNEL)
