"""Helpers for the event tests: writing events, running a relay."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import asyncpg

from shared.events.bus import Publisher, PublishError
from shared.events.models import BlobPushed, Event
from shared.events.outbox import enqueue


def blob_pushed(number: int) -> BlobPushed:
    return BlobPushed(
        namespace="acme",
        repository="app",
        digest=f"sha256:{number:064x}",
        size=number,
        location="local",
    )


async def enqueue_committed(pool: asyncpg.Pool, *events: Event) -> None:
    """Write the events into the outbox in one committed transaction."""
    async with pool.acquire() as conn, conn.transaction():
        for event in events:
            await enqueue(conn, event)


@contextlib.asynccontextmanager
async def running(work: Coroutine[Any, Any, None]) -> AsyncIterator[asyncio.Task[None]]:
    """Run `work` in the background for the block; cancel it after, re-raising what it raised."""
    task = asyncio.create_task(work)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class FailureCountingPublisher(Publisher):
    """Delegates to a real publisher and counts the publishes it refused."""

    def __init__(self, inner: Publisher) -> None:
        self.inner = inner
        self.failures = 0

    async def publish(self, routing_key: str, body: bytes, message_id: str) -> None:
        try:
            await self.inner.publish(routing_key, body, message_id)
        except PublishError:
            self.failures += 1
            raise

    async def close(self) -> None:
        await self.inner.close()
