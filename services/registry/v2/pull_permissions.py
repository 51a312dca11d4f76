"""Whether a Basic or anonymous caller may pull from a repository, remembered for a second per process.

Bearer tokens carry their grants; other callers' permissions are read from the database, which
made each of their pulls several round trips dearer than a token's. A decision is kept for
``ttl_s`` at most, and dropped:

- by every write request this process answers (/v2 or /api/v1), before its answer leaves, so that
  a caller never sees its own change ignored (``ForgetOnWrites``);
- as soon as this process hears of a change made elsewhere: repositories (0006) and permissions,
  teams, robots, users and namespaces (0011) announce theirs on the manifest cache's channel,
  whose generation every decision is checked against.

Concurrent requests for one decision share one read.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.registry.domain.repositories import Repository
from shared.auth.identity import Identity

Allowed = tuple[set[str], int | None, Repository | None]
Compute = Callable[[], Coroutine[Any, Any, Allowed]]


@dataclass(frozen=True)
class _Decision:
    read_at: float
    generation: int
    allowed: asyncio.Task[Allowed]


class PullPermissions:
    def __init__(
        self, ttl_s: float = 1.0, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._clock = clock
        self._decisions: dict[tuple[Identity | None, str], _Decision] = {}

    async def allowed(
        self, identity: Identity | None, repository: str, generation: int, compute: Compute
    ) -> Allowed:
        """What ``compute`` answers for the caller and repository, or its recent answer if still valid.

        ``generation`` is the manifest cache's: a decision read before a change was announced is stale.
        """
        key = (identity, repository)
        decision = self._decisions.get(key)
        if decision is None or not self._fresh(decision, generation):
            decision = _Decision(self._clock(), generation, asyncio.create_task(compute()))
            self._store(key, decision)
        try:
            # Shielded: a caller that goes away does not cancel the read others wait for.
            return await asyncio.shield(decision.allowed)
        except Exception:
            if self._decisions.get(key) is decision:
                del self._decisions[key]
            raise

    def clear(self) -> None:
        self._decisions.clear()

    def _fresh(self, decision: _Decision, generation: int) -> bool:
        return decision.generation == generation and self._clock() - decision.read_at < self._ttl_s

    def _store(self, key: tuple[Identity | None, str], decision: _Decision) -> None:
        self._decisions.pop(key, None)
        if len(self._decisions) >= self._max_entries:
            del self._decisions[next(iter(self._decisions))]
        self._decisions[key] = decision


class ForgetOnWrites:
    """Pure ASGI middleware: a request other than GET or HEAD drops the app's remembered pull
    permissions when its answer starts, after its changes are committed."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return

        async def forgetting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                scope["app"].state.context.pull_permissions.clear()
            await send(message)

        await self.app(scope, receive, forgetting_send)
