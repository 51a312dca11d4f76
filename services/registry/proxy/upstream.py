"""The cache organizations' upstream clients, kept open across requests (connections, tokens), and
how upstream failures are answered on /v2 (seed 003's rule: outages may be covered by the cache,
a missing image or refused access is passed on)."""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import AsyncIterator

import asyncpg

from services.registry.proxy.config import ProxyCacheConfig
from services.registry.v2.errors import RegistryError
from shared.config import Settings
from shared.oci.upstream_client import ExternalReference, ProxyConfig, UpstreamError, UpstreamRegistry
from shared.readonly_state import registry_read_only
from shared.secret_box import SecretBox

_MAX_IDLE_CLIENTS = 256


async def refuse_fills_while_read_only(pool: asyncpg.Pool, settings: Settings) -> None:
    """While the registry is read-only nothing new is cached: an outage, as far as pulls go (a
    cached tag is served stale, uncached content answers 503)."""
    if await registry_read_only(pool, settings):
        raise UpstreamError("the registry is read-only: no new content is cached", "unreachable")


def is_outage(error: UpstreamError) -> bool:
    """Unreachable, 5xx or 429: the cached copy may be served while it has not expired."""
    return error.reason in ("unreachable", "upstream")


def upstream_failure(
    error: UpstreamError, name: str, reference: str, unknown_code: str = "MANIFEST_UNKNOWN"
) -> RegistryError:
    """The OCI error a client gets for an upstream failure the cache cannot cover; ``unknown_code``
    answers the upstream's 404."""
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
    """UpstreamRegistry clients per (configuration, upstream repository); idle ones beyond a few
    hundred are closed, least recently used first."""

    def __init__(self, secrets: SecretBox, timeout_s: float) -> None:
        self._secrets = secrets
        self._timeout_s = timeout_s
        self._clients: OrderedDict[tuple[ProxyCacheConfig, ExternalReference], UpstreamRegistry] = (
            OrderedDict()
        )
        self._in_use: dict[tuple[ProxyCacheConfig, ExternalReference], int] = {}

    @contextlib.asynccontextmanager
    async def use(self, config: ProxyCacheConfig, repository: str) -> AsyncIterator[UpstreamRegistry]:
        """The client of the cache repository's upstream (UnreadableSecretError for lost credentials)."""
        key = (config, config.upstream_reference(repository))
        client = self._clients.get(key)
        if client is None:
            client = UpstreamRegistry(
                key[1],
                username=self._secrets.decrypt(config.username_encrypted),
                password=self._secrets.decrypt(config.password_encrypted),
                verify_tls=not config.insecure,
                proxy=ProxyConfig(),
                timeout_s=self._timeout_s,
            )
            self._clients[key] = client
        self._clients.move_to_end(key)
        self._in_use[key] = self._in_use.get(key, 0) + 1
        try:
            yield client
        finally:
            self._in_use[key] -= 1
            if not self._in_use[key]:
                del self._in_use[key]
            await self._close_idle_beyond_limit()

    async def _close_idle_beyond_limit(self) -> None:
        idle = [key for key in self._clients if key not in self._in_use]
        for key in idle[: max(len(self._clients) - _MAX_IDLE_CLIENTS, 0)]:
            await self._clients.pop(key).__aexit__(None, None, None)

    async def close(self) -> None:
        clients, self._clients = self._clients, OrderedDict()
        for client in clients.values():
            await client.__aexit__(None, None, None)
