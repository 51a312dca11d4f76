"""Whether a Basic or anonymous caller may pull from a repository, remembered for a second per process.

Bearer tokens carry their grants; other callers' permissions are read from the database, which
made each of their pulls several round trips dearer than a token's. A decision is kept for
``ttl_s`` at most, and dropped:

- by every write request this process answers (/v2 or /api/v1), before its answer leaves, so that
  a caller never sees its own change ignored (``ForgetOnWrites``);
- as soon as this process hears of a change made elsewhere: repositories (0006) and permissions,
  teams, robots, users and namespaces (0011) announce theirs on the manifest cache's channel,
  whose generation every decision is checked against.

Concurrent requests for one decision share one read, and a decision in steady use is read again
ahead of its expiry (shared/remembered_reads.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.registry.domain.repositories import Repository
from shared.auth.identity import Identity
from shared.remembered_reads import RememberedReads

Allowed = tuple[set[str], int | None, Repository | None]
Compute = Callable[[], Coroutine[Any, Any, Allowed]]


class PullPermissions:
    def __init__(
        self, ttl_s: float = 1.0, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._decisions: RememberedReads[tuple[Identity | None, str], Allowed] = RememberedReads(
            ttl_s, max_entries, clock
        )

    async def allowed(
        self, identity: Identity | None, repository: str, generation: int, compute: Compute
    ) -> Allowed:
        """What ``compute`` answers for the caller and repository, or its recent answer if still valid.

        ``generation`` is the manifest cache's: a decision read before a change was announced is stale.
        """
        return await self._decisions.get((identity, repository), compute, generation)

    def clear(self) -> None:
        self._decisions.clear()


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
