"""One upstream fetch per manifest or blob, however many requests miss it at once, across processes.

A fill is led by whoever holds its key: first an in-process claim (a dict entry, so the requests of
one process never even try the database), then a PostgreSQL session advisory lock taken with
pg_try_advisory_lock on a connection of its own (not from the pool: a leader also needs pool
connections for its work, and a pool full of lock holders would starve it). A process that dies
loses its connection and so its lock. The others poll: the result being there (``done``) ends the
wait; a key nobody leads any more (the leader failed) lets the next one lead and try again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

from services.registry.proxy import metrics

T = TypeVar("T")
_POLL_S = 0.05
_LOCK = "SELECT pg_try_advisory_lock(hashtextextended($1, 0))"


class Lead:
    """The right to fetch one key's content; release() (or the async with block's end) hands it on."""

    def __init__(self, flights: Flights, key: str, conn: asyncpg.Connection, event: asyncio.Event) -> None:
        self._flights = flights
        self._key = key
        self._conn = conn
        self._event = event
        self._released = False

    async def release(self) -> None:
        if self._released:
            return
        self._released = True
        try:
            with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await self._conn.close(timeout=5)  # closing the session releases its advisory lock
        finally:
            self._flights.forget(self._key, self._event)

    async def __aenter__(self) -> Lead:
        return self

    async def __aexit__(self, *_exc_info: object) -> None:
        await self.release()


class Flights:
    """The fills this process leads, and the way to join or lead one."""

    def __init__(self, database_url: str) -> None:
        self._database_url = database_url
        self._local: dict[str, asyncio.Event] = {}

    def forget(self, key: str, event: asyncio.Event) -> None:
        if self._local.get(key) is event:
            del self._local[key]
        event.set()

    async def _try_lead(self, key: str) -> Lead | None:
        if key in self._local:
            return None
        event = asyncio.Event()
        self._local[key] = event
        try:
            conn = await asyncpg.connect(self._database_url)
        except BaseException:
            self.forget(key, event)
            raise
        try:
            locked = await conn.fetchval(_LOCK, key)
        except BaseException:
            await conn.close()
            self.forget(key, event)
            raise
        if not locked:
            await conn.close()
            self.forget(key, event)
            return None
        return Lead(self, key, conn, event)

    async def claim(self, key: str, done: Callable[[], Awaitable[T | None]], timeout_s: float) -> T | Lead:
        """done()'s answer once it has one, or the Lead when this caller is to do the work itself.

        The leader calls done() again before its work: a fill may have ended since its first look.
        TimeoutError when neither happens within timeout_s.
        """
        waited = False
        async with asyncio.timeout(timeout_s):
            while True:
                result = await done()
                if result is not None:
                    if waited:
                        metrics.COALESCED_WAITS.inc()
                    return result
                local = self._local.get(key)
                if local is not None:
                    waited = True
                    await local.wait()
                    continue
                lead = await self._try_lead(key)
                if lead is not None:
                    result = await done()
                    if result is None:
                        return lead
                    await lead.release()
                    return result
                waited = True
                await asyncio.sleep(_POLL_S)
