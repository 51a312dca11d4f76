"""One upstream fetch per manifest or blob, however many requests miss it at once, across processes.

A fill is led by whoever holds its key: first an in-process claim (a dict entry, so the requests of
one process never even try the database), then a PostgreSQL session advisory lock taken with
pg_try_advisory_lock. Every lock of a process is held by one connection of its own (not from the
pool: a leader also needs pool connections for its work), opened once and reopened when it breaks,
rather than one connection per fill (connecting costs a round of authentication each time and fails
when the server has no connection slot left). A process that dies loses its connection and so its
locks. The others poll: the result being there (``done``) ends the wait; a key nobody leads any more
(the leader failed) lets the next one lead and try again. A database that cannot be reached is
DatabaseUnavailableError (503 to the client).
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
_UNLOCK = "SELECT pg_advisory_unlock(hashtextextended($1, 0))"
_CONNECT_TIMEOUT_S = 10.0
_QUERY_TIMEOUT_S = 10.0


class DatabaseUnavailableError(Exception):
    """The advisory-lock connection could not be opened or used."""


# What a fill answers 503 for: this lock connection, or a pool connection, could not be had.
DATABASE_UNAVAILABLE = (
    DatabaseUnavailableError,
    asyncpg.TooManyConnectionsError,
    asyncpg.CannotConnectNowError,
    asyncpg.PostgresConnectionError,
)


class _LockSession:
    """The one connection holding this process's fill locks; its queries take turns."""

    def __init__(self, database_url: str) -> None:
        self._database_url = database_url
        self._conn: asyncpg.Connection | None = None
        self._turn = asyncio.Lock()

    async def try_lock(self, key: str) -> bool:
        async with self._turn:
            try:
                if self._conn is None or self._conn.is_closed():
                    self._conn = await asyncpg.connect(self._database_url, timeout=_CONNECT_TIMEOUT_S)
                return bool(await self._conn.fetchval(_LOCK, key, timeout=_QUERY_TIMEOUT_S))
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                self._drop()
                raise DatabaseUnavailableError(f"the fill lock could not be taken: {error}") from error
            except asyncio.CancelledError:
                self._drop()  # the lock may have been taken: nobody would ever release it
                raise

    async def unlock(self, key: str) -> None:
        async with self._turn:
            if self._conn is None or self._conn.is_closed():
                return  # the locks went with the session
            try:
                await self._conn.fetchval(_UNLOCK, key, timeout=_QUERY_TIMEOUT_S)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                self._drop()  # ending the session releases its locks
            except asyncio.CancelledError:
                self._drop()
                raise

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()

    async def close(self) -> None:
        async with self._turn:
            if self._conn is not None:
                with contextlib.suppress(
                    OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError
                ):
                    await self._conn.close(timeout=_QUERY_TIMEOUT_S)
                self._conn = None


class Lead:
    """The right to fetch one key's content; release() (or the async with block's end) hands it on."""

    def __init__(self, flights: Flights, key: str, event: asyncio.Event) -> None:
        self._flights = flights
        self._key = key
        self._event = event
        self._released = False

    async def release(self) -> None:
        if self._released:
            return
        self._released = True
        try:
            await self._flights.locks.unlock(self._key)
        finally:
            self._flights.forget(self._key, self._event)

    async def __aenter__(self) -> Lead:
        return self

    async def __aexit__(self, *_exc_info: object) -> None:
        await self.release()


class Flights:
    """The fills this process leads, and the way to join or lead one."""

    def __init__(self, database_url: str) -> None:
        self.locks = _LockSession(database_url)
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
            locked = await self.locks.try_lock(key)
        except BaseException:
            self.forget(key, event)
            raise
        if not locked:
            self.forget(key, event)
            return None
        return Lead(self, key, event)

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
