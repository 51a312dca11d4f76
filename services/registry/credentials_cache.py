"""Verified Basic credentials, remembered briefly: argon2 verification is slow by design.

- Single flight: requests with the same username and secret share the one verification running.
- Refresh ahead: a verdict is served for ``ttl_s``; once it is ``refresh_after_s`` old, requests
  still get it at once while one background verification renews it, so a busy credential never
  stalls at expiry. A refresh that fails (robot deleted, password changed) drops the entry: a
  revocation made elsewhere takes effect within ``ttl_s``, as before.
- ``forget`` drops an account at once (a robot deleted or given a new token in this process), and
  verifications that began before it do not store their verdict.

Only successful verdicts are kept; wrong credentials are the login limiter's business.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from shared.auth.identity import Identity

Verify = Callable[[], Awaitable[Identity | None]]


@dataclass(frozen=True)
class _Verdict:
    username: str
    identity: Identity
    verified_at: float


class CredentialsCache:
    def __init__(
        self,
        ttl_s: float = 30.0,
        refresh_after_s: float = 20.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._ttl_s = ttl_s
        self._refresh_after_s = refresh_after_s
        self._max_entries = max_entries
        self._verdicts: dict[bytes, _Verdict] = {}
        self._running: dict[bytes, tuple[str, asyncio.Task[Identity | None]]] = {}
        self._generation = 0

    @staticmethod
    def _key(username: str, secret: str) -> bytes:
        return hashlib.sha256(f"{username}\0{secret}".encode()).digest()

    async def verified(self, username: str, secret: str, verify: Verify) -> Identity | None:
        """The identity these credentials prove, by ``verify`` unless a recent verdict stands."""
        key = self._key(username, secret)
        verdict = self._verdicts.get(key)
        age = self._clock() - verdict.verified_at if verdict is not None else self._ttl_s
        if verdict is not None and age < self._ttl_s:
            if age >= self._refresh_after_s:
                self._verification(key, username, verify)
            return verdict.identity
        # Shielded: a caller that goes away does not cancel the verification others wait for.
        return await asyncio.shield(self._verification(key, username, verify))

    def forget(self, username: str) -> None:
        """Drop every remembered secret of the account (a robot deleted or given a new token)."""
        self._generation += 1
        for key in [key for key, verdict in self._verdicts.items() if verdict.username == username]:
            del self._verdicts[key]
        for key in [key for key, (running_for, _) in self._running.items() if running_for == username]:
            del self._running[key]

    async def close(self) -> None:
        """Cancel the verifications still running (the app is shutting down)."""
        tasks = [task for _, task in self._running.values()]
        self._running.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _verification(self, key: bytes, username: str, verify: Verify) -> asyncio.Task[Identity | None]:
        running = self._running.get(key)
        if running is not None:
            return running[1]
        task = asyncio.create_task(self._verify_and_remember(key, username, verify))
        self._running[key] = (username, task)
        task.add_done_callback(lambda done: self._finished(key, done))
        return task

    def _finished(self, key: bytes, task: asyncio.Task[Identity | None]) -> None:
        if key in self._running and self._running[key][1] is task:
            del self._running[key]
        if not task.cancelled():
            task.exception()  # retrieved: a failed background refresh keeps the verdict until it expires

    async def _verify_and_remember(self, key: bytes, username: str, verify: Verify) -> Identity | None:
        generation = self._generation
        identity = await verify()
        if generation != self._generation:
            return identity
        self._verdicts.pop(key, None)
        if identity is not None:
            if len(self._verdicts) >= self._max_entries:
                del self._verdicts[next(iter(self._verdicts))]
            self._verdicts[key] = _Verdict(username, identity, self._clock())
        return identity
