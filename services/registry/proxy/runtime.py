"""What a registry process keeps for its cache organizations: their configurations, the open
upstream clients, the fills it leads, and the blob fills running on after their client left."""

from __future__ import annotations

import asyncio

import asyncpg

from services.registry.proxy.coalescing import Flights
from services.registry.proxy.config import CacheNamespaces, ProxyCacheConfig
from services.registry.proxy.upstream import UpstreamClients
from services.registry.v2.manifest_cache import ManifestCache
from shared.config import Settings
from shared.oci.names import is_valid_repository_name, split_repository_name
from shared.secret_box import SecretBox


class ProxyRuntime:
    def __init__(self, settings: Settings) -> None:
        self.namespaces = CacheNamespaces()
        self.clients = UpstreamClients(
            SecretBox.from_settings(settings), settings.proxy_cache_upstream_timeout_s
        )
        self.flights = Flights(settings.database_url)
        self.fills: set[asyncio.Task[None]] = set()

    async def config_for(
        self, pool: asyncpg.Pool, manifests: ManifestCache, full_name: str
    ) -> ProxyCacheConfig | None:
        """The configuration of the repository name's organization when it is a cache (None for
        invalid names: the usual path refuses them)."""
        if not is_valid_repository_name(full_name):
            return None
        namespace, _ = split_repository_name(full_name)
        return await self.namespaces.config_for(pool, namespace, manifests.generation, manifests.listening)

    def keep(self, fill: asyncio.Task[None]) -> None:
        self.fills.add(fill)
        fill.add_done_callback(self.fills.discard)

    async def close(self) -> None:
        for fill in list(self.fills):
            fill.cancel()
        await asyncio.gather(*self.fills, return_exceptions=True)
        await self.clients.close()
        await self.flights.locks.close()
