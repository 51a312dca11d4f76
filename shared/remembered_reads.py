"""Reads remembered per key for a short while, renewed ahead of expiry.

For a hot path that must not read the database per request but may act on what it read a moment
ago (who may pull, whether a login is locked out). Concurrent callers of one key share one read. A
value used in the second half of its life is read again in the background, once at a time, and
replaces the old one when it comes: callers that keep coming never wait for the read. Without
that, every expiry made all the requests in flight wait for one read at once, the tail of
bench/bench_auth.py's latency at 64 connections. A failed read is not remembered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
Read = Callable[[], Coroutine[Any, Any, V]]


@dataclass(frozen=True)
class _Entry(Generic[V]):
    read_at: float
    version: int
    value: asyncio.Future[V]


class RememberedReads(Generic[K, V]):
    """key → the value ``read`` gave, for ``ttl_s`` at most, and only while the caller's
    ``version`` (a change counter: a value read before a change is stale) is the one it was read at."""

    def __init__(self, ttl_s: float, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._clock = clock
        self._entries: dict[K, _Entry[V]] = {}
        self._renewals: dict[K, _Entry[V]] = {}

    async def get(self, key: K, read: Read[V], version: int = 0) -> V:
        entry = self._entries.get(key)
        age = self._clock() - entry.read_at if entry is not None else self._ttl_s
        if entry is None or entry.version != version or age >= self._ttl_s:
            entry = _Entry(self._clock(), version, asyncio.ensure_future(read()))
            self._store(key, entry)
        elif age >= self._ttl_s / 2 and entry.value.done():
            self._renew(key, read, version)
        try:
            # Shielded: a caller that goes away does not cancel the read others wait for.
            return await asyncio.shield(entry.value)
        except Exception:
            if self._entries.get(key) is entry:  # a failed read is not remembered
                del self._entries[key]
            raise

    def remember(self, key: K, value: V, version: int = 0) -> None:
        """A value known now, without a read (a read under way does not replace it)."""
        known: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        known.set_result(value)
        self._store(key, _Entry(self._clock(), version, known))

    def clear(self) -> None:
        self._entries.clear()
        self._renewals.clear()  # a read under way may predate what made the caller clear: dropped

    def _renew(self, key: K, read: Read[V], version: int) -> None:
        if key in self._renewals:
            return
        renewal = _Entry(self._clock(), version, asyncio.ensure_future(read()))
        self._renewals[key] = renewal

        def finished(value: asyncio.Future[V]) -> None:
            if self._renewals.get(key) is not renewal:
                return  # cleared meanwhile
            del self._renewals[key]
            current = self._entries.get(key)
            newer = current is not None and current.read_at > renewal.read_at
            if not value.cancelled() and value.exception() is None and not newer:
                self._store(key, renewal)

        renewal.value.add_done_callback(finished)

    def _store(self, key: K, entry: _Entry[V]) -> None:
        self._entries.pop(key, None)
        if len(self._entries) >= self._max_entries:
            del self._entries[next(iter(self._entries))]
        self._entries[key] = entry
