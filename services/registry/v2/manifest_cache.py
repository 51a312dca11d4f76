"""A per-process cache of the manifests pulls ask for, kept exact by Postgres notifications.

Pulls are the registry's hot path and a manifest GET otherwise costs two database round trips.
Every change to a repository's tags, manifests or settings is announced at commit on the channel
'quayside_repository_changed' by triggers (migration 0006), whoever writes it; the cache evicts
that repository when told. It caches only while its listening connection is up: when the
connection drops it empties itself and stays off until it is listening again. Entries also
expire after a few seconds, which bounds how late a tag expiring by the clock is noticed.

An entry served in the second half of its life is read again in the background, once at a time
(``refresh_ahead``): a manifest pulled steadily then never expires under its callers. Before, every
five seconds all the pulls in flight missed it at once and each read the database, queueing for
the pool: the tail of bench/bench_auth.py's latency at 64 connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import asyncpg

log = logging.getLogger(__name__)

CHANNEL = "quayside_repository_changed"
_TTL_S = 5.0
# An entry served with less than this left is read again in the background.
_REFRESH_BEFORE_EXPIRY_S = _TTL_S / 2
_MAX_BYTES = 64 * 1024 * 1024
_MAX_ENTRY_BYTES = 256 * 1024
_RECONNECT_DELAY_S = 1.0


@dataclass(frozen=True, slots=True)
class CachedManifest:
    repository_id: int
    digest: str
    media_type: str
    content: bytes
    expires_at: float


ManifestRow = tuple[int, str, str, bytes]  # repository id, digest, media type, content
ReadManifest = Callable[[], Awaitable[ManifestRow | None]]


class ChangeFollower(Protocol):
    """Another per-process cache kept exact by the same announcements."""

    def evict_repository(self, repository_id: int) -> None: ...

    def clear(self) -> None: ...


class ManifestCache:
    """(repository name, reference) → the manifest served for it, least recently used evicted first.

    Its followers are evicted and cleared with it."""

    def __init__(self) -> None:
        self._entries: OrderedDict[tuple[str, str], CachedManifest] = OrderedDict()
        self._bytes = 0
        self.listening = False
        # Bumped by every notification: an entry read from the database before a change was
        # announced must not be stored after it.
        self.generation = 0
        self.followers: list[ChangeFollower] = []
        self._refreshing: dict[tuple[str, str], asyncio.Task[None]] = {}

    def get(self, name: str, reference: str) -> CachedManifest | None:
        key = (name, reference)
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires_at < time.monotonic():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry

    def put(self, name: str, reference: str, entry: ManifestRow, read_at_generation: int) -> None:
        """Store (repository id, digest, media type, content) read while generation was read_at_generation."""
        repository_id, digest, media_type, content = entry
        if not self.listening or read_at_generation != self.generation or len(content) > _MAX_ENTRY_BYTES:
            return
        key = (name, reference)
        self._drop(key)
        self._entries[key] = CachedManifest(
            repository_id, digest, media_type, content, time.monotonic() + _TTL_S
        )
        self._bytes += len(content)
        while self._bytes > _MAX_BYTES:
            self._drop(next(iter(self._entries)))

    def refresh_ahead(self, name: str, reference: str, served: CachedManifest, read: ReadManifest) -> None:
        """Read the served entry again with ``read`` (None: it names nothing any more) in the
        background when it is in the second half of its life and no such read is under way."""
        key = (name, reference)
        if served.expires_at - time.monotonic() > _REFRESH_BEFORE_EXPIRY_S or key in self._refreshing:
            return
        refresh = asyncio.create_task(self._refresh(key, read, self.generation))
        self._refreshing[key] = refresh
        refresh.add_done_callback(lambda _done: self._refreshing.pop(key, None))

    async def _refresh(self, key: tuple[str, str], read: ReadManifest, generation: int) -> None:
        try:
            found = await read()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            log.warning("manifest cache: %s:%s not read again, it expires as usual: %s", *key, error)
            return
        if found is None:
            self._drop(key)  # the next pull reads it, and answers what the database says
        else:
            self.put(*key, found, generation)

    async def close(self) -> None:
        """Stop the background reads (the app is shutting down)."""
        refreshes = list(self._refreshing.values())
        for refresh in refreshes:
            refresh.cancel()
        await asyncio.gather(*refreshes, return_exceptions=True)

    def evict_repository(self, repository_id: int) -> None:
        for key in [key for key, entry in self._entries.items() if entry.repository_id == repository_id]:
            self._drop(key)
        for follower in self.followers:
            follower.evict_repository(repository_id)

    def clear(self) -> None:
        self.generation += 1
        self._entries.clear()
        self._bytes = 0
        for follower in self.followers:
            follower.clear()

    def _drop(self, key: tuple[str, str]) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= len(entry.content)

    def _on_notification(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self.generation += 1
        if payload.isdigit():
            self.evict_repository(int(payload))
        else:
            self.clear()

    async def listen(self, dsn: str) -> None:
        """Follow the change channel until cancelled, reconnecting whenever the connection drops."""
        while True:
            try:
                await self._listen_until_lost(dsn)
            except (OSError, asyncpg.PostgresError) as error:
                log.warning("manifest cache off: cannot listen for changes (%s)", error)
            await asyncio.sleep(_RECONNECT_DELAY_S)

    async def _listen_until_lost(self, dsn: str) -> None:
        lost = asyncio.Event()
        conn = await asyncpg.connect(dsn)
        try:
            conn.add_termination_listener(lambda _conn: lost.set())
            await conn.add_listener(CHANNEL, self._on_notification)
            self.listening = True
            await lost.wait()
        finally:
            self.listening = False
            self.clear()
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)
