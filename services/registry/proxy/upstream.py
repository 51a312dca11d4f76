"""The cache organizations' upstream clients, kept open across requests (connections, tokens), and
how upstream failures are answered on /v2 (seed 003's rule: outages may be covered by the cache,
a missing image or refused access is passed on)."""

from __future__ import annotations

import collections
import contextlib
from collections import OrderedDict
from collections.abc import AsyncIterator

import asyncpg

from services.registry.proxy.config import ProxyCacheConfig
from services.registry.v2.errors import RegistryError
from shared.config import Settings
from shared.oci.upstream_client import ProxyConfig, UpstreamError, UpstreamRegistry, UpstreamSession
from shared.readonly_state import READ_ONLY_MESSAGE, registry_read_only
from shared.secret_box import SecretBox

_MAX_IDLE_SESSIONS = 64


class ReadOnlyFillError(UpstreamError):
    """The registry is read-only: nothing new is cached (as far as pulls go, an outage)."""

    def __init__(self) -> None:
        super().__init__(
            f"{READ_ONLY_MESSAGE} Content the cache does not hold yet cannot be fetched meanwhile.",
            "unreachable",
        )


async def refuse_fills_while_read_only(pool: asyncpg.Pool, settings: Settings) -> None:
    """ReadOnlyFillError while the registry is read-only: a cached tag is then served stale, and
    uncached content answers 503 with the read-only message."""
    if await registry_read_only(pool, settings):
        raise ReadOnlyFillError()


def is_outage(error: UpstreamError) -> bool:
    """Unreachable, 5xx or 429: the cached copy may be served while it has not expired."""
    return error.reason in ("unreachable", "upstream")


def upstream_failure(
    error: UpstreamError, name: str, reference: str, unknown_code: str = "MANIFEST_UNKNOWN"
) -> RegistryError:
    """The OCI error a client gets for an upstream failure the cache cannot cover; ``unknown_code``
    answers the upstream's 404."""
    if isinstance(error, ReadOnlyFillError):
        return RegistryError("UNAVAILABLE", str(error), detail={"name": name}, status=503)
    detail = {"name": name, "reference": reference[:200], "upstream": str(error)[:500]}
    match error.reason:
        case "not_found":
            return RegistryError(
                unknown_code, f"not found in the upstream registry: {error}", detail=detail, status=404
            )
        case "auth":
            return RegistryError(
                "UNAUTHORIZED", f"the upstream registry refused access: {error}", detail=detail, status=401
            )
        case "invalid":
            return RegistryError(
                "UNKNOWN", f"the upstream registry answered garbage: {error}", detail=detail, status=502
            )
    return RegistryError(
        "UNAVAILABLE", f"the upstream registry is unavailable: {error}", detail=detail, status=503
    )


class UpstreamClients:
    """One UpstreamSession per cache configuration: its connections (kept alive) and its tokens (per
    upstream repository, until they expire) serve every request and repository of the cache.
    Sessions of configurations not in use beyond a few dozen are closed, least recently used first
    (a changed configuration is a new one)."""

    def __init__(self, secrets: SecretBox, timeout_s: float) -> None:
        self._secrets = secrets
        self._timeout_s = timeout_s
        self._sessions: OrderedDict[ProxyCacheConfig, UpstreamSession] = OrderedDict()
        self._in_use: collections.Counter[ProxyCacheConfig] = collections.Counter()

    @contextlib.asynccontextmanager
    async def use(self, config: ProxyCacheConfig, repository: str) -> AsyncIterator[UpstreamRegistry]:
        """The client of the cache repository's upstream (UnreadableSecretError for lost credentials)."""
        reference = config.upstream_reference(repository)
        session = self._sessions.get(config)
        if session is None:
            session = UpstreamSession(
                reference.registry,
                reference.scheme,
                username=self._secrets.decrypt(config.username_encrypted),
                password=self._secrets.decrypt(config.password_encrypted),
                verify_tls=not config.insecure,
                proxy=ProxyConfig(),
                timeout_s=self._timeout_s,
            )
            self._sessions[config] = session
        self._sessions.move_to_end(config)
        self._in_use[config] += 1
        try:
            yield UpstreamRegistry.on_session(reference, session)
        finally:
            self._in_use[config] -= 1
            if not self._in_use[config]:
                del self._in_use[config]
            await self._close_idle_beyond_limit()

    async def _close_idle_beyond_limit(self) -> None:
        idle = [config for config in self._sessions if config not in self._in_use]
        for config in idle[: max(len(self._sessions) - _MAX_IDLE_SESSIONS, 0)]:
            await self._sessions.pop(config).aclose()

    async def close(self) -> None:
        sessions, self._sessions = self._sessions, OrderedDict()
        for session in sessions.values():
            await session.aclose()
