"""The management API under /api/v1, following Quay's paths and JSON shapes.

``routers`` lists every /api/v1 router; the registry app includes them all, and adds the
``DeclaredBodyLimit`` middleware. A new API module builds its router with ``common.api_router``
(body limit, error mapping) and adds it here. ``repositories.item_router`` (the routes of
/repository/{namespace}/{repository:path} itself, which would also match every sub-resource path of
a repository) is kept after all of them.
"""

from __future__ import annotations

from fastapi import APIRouter

from services.registry.api import (
    applications,
    apptokens,
    autoprune,
    entities,
    immutability,
    labels,
    logs,
    manifests,
    messages,
    notifications,
    organizations,
    permissions,
    placements,
    prototypes,
    proxycache,
    pull_statistics,
    quota,
    registry_state,
    replication,
    repositories,
    robots,
    session,
    superuser,
    superuser_quota,
    tags,
    teams,
    tokens,
    users,
)
from services.registry.api.limits import DeclaredBodyLimit

routers: list[APIRouter] = [
    users.router,
    tokens.router,
    organizations.router,
    teams.router,
    robots.router,
    prototypes.router,
    logs.router,
    logs.exported_router,
    notifications.router,
    repositories.router,
    permissions.router,
    tags.router,
    labels.router,
]
routers += [entities.router, superuser.router, messages.router, manifests.router]
routers += [apptokens.router, applications.router, pull_statistics.router]
routers.append(immutability.router)
routers.append(proxycache.router)
routers += [quota.router, superuser_quota.router]
routers.append(autoprune.router)
routers += [session.router, session.csrf_router]
routers.append(registry_state.router)
routers.append(replication.router)
routers.append(placements.router)
routers.append(repositories.item_router)

__all__ = ["DeclaredBodyLimit", "routers"]
