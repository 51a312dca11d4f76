"""Setting up namespaces, repositories and notifications directly in the database."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from services.registry.domain import notifications
from services.registry.domain.notifications import Notification, NotificationCreateRequest
from services.registry.domain.repositories import ensure_repository
from shared.auth.accounts import create_organization, create_user


@dataclass(frozen=True)
class Place:
    """An organization with one repository in it."""

    namespace: str
    namespace_id: int
    repository: str
    repository_id: int


async def organization_with_repository(pool: asyncpg.Pool, repository: str = "app") -> Place:
    owner = f"owner{uuid.uuid4().hex[:8]}"
    org = f"org{uuid.uuid4().hex[:8]}"
    async with pool.acquire() as conn:
        await create_user(conn, owner, uuid.uuid4().hex)
        namespace_id = await create_organization(conn, org, owner)
        created = await ensure_repository(conn, namespace_id, org, repository)
    return Place(org, namespace_id, repository, created.id)


async def add_notification(
    pool: asyncpg.Pool,
    place: Place,
    event: str,
    method: str,
    config: dict[str, Any],
    *,
    organization_level: bool = False,
) -> Notification:
    request = NotificationCreateRequest.model_validate({"event": event, "method": method, "config": config})
    method_config = notifications.validated_request(request, repository_level=not organization_level)
    async with pool.acquire() as conn:
        return await notifications.create(
            conn,
            place.namespace_id,
            None if organization_level else place.repository_id,
            request,
            method_config,
        )


async def stored(pool: asyncpg.Pool, notification: Notification) -> Notification:
    async with pool.acquire() as conn:
        found = await notifications.find_by_uuid(conn, notification.view.uuid)
    assert found is not None
    return found
