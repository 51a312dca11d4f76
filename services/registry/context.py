"""What every request handler needs: settings, the database pool, the storage locations."""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg
from fastapi import Request

from services.registry.credentials_cache import CredentialsCache
from services.registry.v2.manifest_cache import ManifestCache
from services.registry.v2.upload_sessions import HasherCache
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


async def get_context(request: Request) -> RegistryContext:
    """FastAPI dependency; async so that FastAPI does not hop to its thread pool for it."""
    context: RegistryContext = request.app.state.context
    return context
