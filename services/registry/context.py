"""What every request handler needs: settings, the database pool, the storage locations."""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg
from fastapi import Request

from services.registry.credentials_cache import CredentialsCache
from services.registry.domain.history_page_starts import HistoryPageStarts
from services.registry.domain.pull_stats import PullStats
from services.registry.proxy.runtime import ProxyRuntime
from services.registry.v2.manifest_cache import ManifestCache
from services.registry.v2.pull_permissions import PullPermissions
from services.registry.v2.upload_sessions import HasherCache
from shared.auth.login_limits import LoginLimiter, LoginLimits
from shared.config import Settings
from shared.storage import Locations


@dataclass
class RegistryContext:
    settings: Settings
    pool: asyncpg.Pool
    locations: Locations
    credentials: CredentialsCache = field(default_factory=CredentialsCache)
    upload_hashers: HasherCache = field(default_factory=HasherCache)
    manifests: ManifestCache = field(default_factory=ManifestCache)
    pull_permissions: PullPermissions = field(default_factory=PullPermissions)
    pull_stats: PullStats = field(default_factory=PullStats)
    logins: LoginLimiter = field(init=False)
    proxy: ProxyRuntime = field(init=False)
    history_pages: HistoryPageStarts = field(init=False)

    def __post_init__(self) -> None:
        self.history_pages = HistoryPageStarts(self.manifests)
        self.manifests.followers.append(self.history_pages)
        self.logins = LoginLimiter(self.pool, LoginLimits.from_settings(self.settings))
        self.proxy = ProxyRuntime(self.settings)


async def get_context(request: Request) -> RegistryContext:
    """FastAPI dependency; async so that FastAPI does not hop to its thread pool for it."""
    context: RegistryContext = request.app.state.context
    return context
