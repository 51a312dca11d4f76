"""Geo-replication targets and status, a Quayside extra (Quay has no API for them: its per-namespace
locations are set by support staff), superusers only:

- GET /api/v1/superuser/replication/status: the replication service's status answer
  (shared.replication.ReplicationStatus).
- GET|PUT|DELETE /api/v1/superuser/replication/{namespace}: the locations the namespace's blobs must
  reach. PUT ``{"locations": ["eu", ...]}`` replaces its targets (400 naming an unknown location) and
  queues the missing copies of the blobs the namespace already holds; DELETE puts it back on
  DISTRIBUTED_STORAGE_DEFAULT_LOCATIONS (copies already made stay). With
  FEATURE_STORAGE_REPLICATION off, targets are kept but nothing is copied.

The status path is matched first: a namespace named ``status`` cannot be managed here.
"""

from __future__ import annotations

from typing import Annotated

import asyncpg
from fastapi import Depends, Request
from pydantic import BaseModel, Field

from services.registry.api.common import NO_NUL, ApiModel, api_router, bad_request, db_connection, not_found
from services.registry.api.security import ApiCaller, caller_user, require_superuser, user_with_scope
from services.registry.context import RegistryContext, get_context
from services.registry.domain.audit import client_ip
from shared.auth.accounts import Namespace, find_namespace
from shared.auth.names import check_namespace_name
from shared.replication import (
    ReplicationStatus,
    UnknownLocationError,
    check_location_names,
    enqueue_for_namespace,
    namespace_targets,
    replication_status,
    required_locations,
    set_namespace_targets,
)
from shared.usage_logs import record

PATH = "/superuser/replication"
# More targets than any deployment has locations.
MAX_LOCATIONS = 64

router = api_router(tags=["Replication"])
_superuser_credentials = user_with_scope("super:user")


LocationName = Annotated[str, Field(min_length=1, max_length=255, pattern=NO_NUL)]


class ReplicationTargets(ApiModel):
    locations: list[LocationName] = Field(min_length=1, max_length=MAX_LOCATIONS)


class NamespaceReplication(BaseModel):
    """``locations``: where the namespace's blobs must be placed now; ``targets``: its own, empty when
    it uses the defaults; ``enqueued``: copies a PUT queued for blobs it already holds."""

    namespace: str
    replication_enabled: bool
    uses_defaults: bool
    targets: list[str]
    locations: list[str]
    enqueued: int = 0


async def _superuser(caller: ApiCaller = Depends(_superuser_credentials)) -> ApiCaller:
    require_superuser(caller)
    return caller


async def _namespace(conn: asyncpg.Connection, name: str) -> Namespace:
    check_namespace_name(name)
    found = await find_namespace(conn, name)
    if found is None:
        raise not_found(f"no namespace {name!r}")
    return found


async def _view(
    conn: asyncpg.Connection, context: RegistryContext, namespace: Namespace
) -> NamespaceReplication:
    targets = await namespace_targets(conn, namespace.id)
    return NamespaceReplication(
        namespace=namespace.name,
        replication_enabled=context.settings.feature_storage_replication,
        uses_defaults=not targets,
        targets=targets,
        locations=await required_locations(conn, context.settings, namespace.id),
    )


@router.get(f"{PATH}/status", response_model=ReplicationStatus)
async def get_replication_status(
    _caller: ApiCaller = Depends(_superuser),
    conn: asyncpg.Connection = Depends(db_connection),
    context: RegistryContext = Depends(get_context),
) -> ReplicationStatus:
    """Per location: copies pending, in flight and failing (with why), lag, blobs and bytes copied."""
    return await replication_status(conn, context.settings)


@router.get(f"{PATH}/{{namespace}}", response_model=NamespaceReplication)
async def get_namespace_replication(
    namespace: str,
    _caller: ApiCaller = Depends(_superuser),
    conn: asyncpg.Connection = Depends(db_connection),
    context: RegistryContext = Depends(get_context),
) -> NamespaceReplication:
    """The locations the namespace's blobs must reach, and whether they are its own targets."""
    return await _view(conn, context, await _namespace(conn, namespace))


@router.put(f"{PATH}/{{namespace}}", response_model=NamespaceReplication)
async def set_namespace_replication(
    namespace: str,
    body: ReplicationTargets,
    request: Request,
    caller: ApiCaller = Depends(_superuser),
    conn: asyncpg.Connection = Depends(db_connection),
    context: RegistryContext = Depends(get_context),
) -> NamespaceReplication:
    """Replace the namespace's targets, then queue the copies its blobs lack there."""
    found = await _namespace(conn, namespace)
    try:
        locations = check_location_names(context.settings, body.locations)
    except UnknownLocationError as error:
        raise bad_request(str(error)) from error
    async with conn.transaction():
        await set_namespace_targets(conn, found.id, locations)
        await record(
            conn,
            "change_replication_targets",
            performer=caller.identity,
            ip=client_ip(request),
            namespace=found.name,
            metadata={"superuser": caller_user(caller).name, "locations": locations},
        )
    view = await _view(conn, context, found)
    view.enqueued = await enqueue_for_namespace(context.pool, found.id, view.locations)
    return view


@router.delete(f"{PATH}/{{namespace}}", response_model=NamespaceReplication)
async def delete_namespace_replication(
    namespace: str,
    request: Request,
    caller: ApiCaller = Depends(_superuser),
    conn: asyncpg.Connection = Depends(db_connection),
    context: RegistryContext = Depends(get_context),
) -> NamespaceReplication:
    """Put the namespace back on the default locations."""
    found = await _namespace(conn, namespace)
    async with conn.transaction():
        await set_namespace_targets(conn, found.id, [])
        await record(
            conn,
            "delete_replication_targets",
            performer=caller.identity,
            ip=client_ip(request),
            namespace=found.name,
            metadata={"superuser": caller_user(caller).name},
        )
    return await _view(conn, context, found)
