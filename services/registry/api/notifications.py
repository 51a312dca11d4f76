"""Notifications, Quay's API: per repository (repository admins) and per organization (org admins).

    /api/v1/repository/{namespace}/{repository}/notification/          GET list, POST create
    /api/v1/repository/{namespace}/{repository}/notification/{uuid}    GET, DELETE, POST (reset failures)
    /api/v1/repository/{namespace}/{repository}/notification/{uuid}/test   POST (queue a sample delivery)
    /api/v1/organization/{orgname}/notifications[/{uuid}[/test]]       the same for the organization

An organization-level notification watches its namespace events (quota_warning, quota_error) and
the repository events of every repository in the organization. Deliveries are made by the worker;
the test endpoint only queues one (a NotificationTestRequested event).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import asyncpg
from fastapi import Body, Depends, Request, Response

from services.registry.api.common import api_router, bad_request, db_connection, forbidden, not_found
from services.registry.api.security import ApiCaller, caller_user, require_organization_admin, require_user
from services.registry.domain import notifications
from services.registry.domain.audit import client_ip
from services.registry.domain.notifications import Notification, NotificationCreateRequest, NotificationView
from services.registry.domain.repositories import Repository, find_repository
from shared.auth.accounts import find_namespace
from shared.auth.permissions import namespace_role, repository_role
from shared.events.models import NotificationTestRequested
from shared.events.outbox import enqueue
from shared.usage_logs import record

router = api_router(tags=["Notifications"])

_REPOSITORY_PATH = "/repository/{namespace}/{repository:path}/notification"
_ORGANIZATION_PATH = "/organization/{orgname}/notifications"


async def require_repository_admin(
    conn: asyncpg.Connection, caller: ApiCaller, namespace: str, repository: str
) -> Repository:
    """The repository if the caller administers it. As Quay: 403 without admin permission, whether or
    not the repository exists, so that nothing is revealed; 404 for admins of its namespace."""
    caller.require_scope("repo:admin")
    identity = caller_user(caller)
    found = await find_repository(conn, namespace, repository)
    if found is None:
        owner = await find_namespace(conn, namespace)
        if owner is not None and await namespace_role(conn, identity, owner.id) == "admin":
            raise not_found(f"no repository {namespace}/{repository}")
        raise forbidden("administrator permission on the repository required")
    role = await repository_role(conn, identity, found.id, found.namespace_id, found.visibility)
    if role != "admin":
        raise forbidden("administrator permission on the repository required")
    return found


def _missing(uuid_text: str) -> Exception:
    return not_found(f"No notification found for: {uuid_text}")


def _parse_uuid(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError as error:
        raise _missing(text) from error


class _Scope:
    """Where notifications are managed: a repository, or an organization (repository None)."""

    def __init__(self, namespace: str, namespace_id: int, repository: Repository | None) -> None:
        self.namespace = namespace
        self.namespace_id = namespace_id
        self.repository = repository

    @property
    def repository_id(self) -> int | None:
        return self.repository.id if self.repository else None

    @property
    def log_prefix(self) -> str:
        return "repo" if self.repository else "namespace"

    def log_kind(self, action: str) -> str:
        """Quay's kinds: add/delete/reset_repo_notification, create/delete/reset_namespace_notification."""
        if self.repository is None:
            action = "create" if action == "add" else action
        return f"{action}_{self.log_prefix}_notification"

    async def find(self, conn: asyncpg.Connection, uuid_text: str) -> Notification:
        found = await notifications.find(conn, self.namespace_id, self.repository_id, _parse_uuid(uuid_text))
        if found is None:
            raise _missing(uuid_text)
        return found


async def _repository_scope(
    namespace: str,
    repository: str,
    caller: ApiCaller = Depends(require_user),
    conn: asyncpg.Connection = Depends(db_connection),
) -> _Scope:
    found = await require_repository_admin(conn, caller, namespace, repository)
    return _Scope(found.namespace, found.namespace_id, found)


async def _organization_scope(
    orgname: str,
    caller: ApiCaller = Depends(require_user),
    conn: asyncpg.Connection = Depends(db_connection),
) -> _Scope:
    caller.require_scope("org:admin")
    organization = await require_organization_admin(conn, caller, orgname)
    return _Scope(organization.name, organization.id, None)


async def _list(conn: asyncpg.Connection, scope: _Scope) -> dict[str, list[NotificationView]]:
    found = await notifications.list_for(conn, scope.namespace_id, scope.repository_id)
    return {"notifications": [notification.view for notification in found]}


async def _create(
    conn: asyncpg.Connection,
    scope: _Scope,
    body: NotificationCreateRequest,
    caller: ApiCaller,
    request: Request,
) -> NotificationView:
    try:
        config = notifications.validated_request(body, repository_level=scope.repository is not None)
    except notifications.InvalidNotificationError as error:
        raise bad_request(str(error)) from error
    async with conn.transaction():
        created = await notifications.create(conn, scope.namespace_id, scope.repository_id, body, config)
        await _log(conn, scope, "add", created, caller, request)
    return created.view


async def _delete(
    conn: asyncpg.Connection, scope: _Scope, uuid_text: str, caller: ApiCaller, request: Request
) -> Response:
    async with conn.transaction():
        found = await scope.find(conn, uuid_text)
        await notifications.delete(conn, found.id)
        await _log(conn, scope, "delete", found, caller, request)
    return Response(status_code=204)


async def _reset(
    conn: asyncpg.Connection, scope: _Scope, uuid_text: str, caller: ApiCaller, request: Request
) -> Response:
    async with conn.transaction():
        found = await scope.find(conn, uuid_text)
        await notifications.reset_failures(conn, found.id)
        await _log(conn, scope, "reset", found, caller, request)
    return Response(status_code=204)


async def _queue_test(conn: asyncpg.Connection, scope: _Scope, uuid_text: str) -> dict[str, object]:
    async with conn.transaction():
        found = await scope.find(conn, uuid_text)
        await enqueue(conn, NotificationTestRequested(notification_uuid=found.view.uuid))
    return {}


async def _log(
    conn: asyncpg.Connection,
    scope: _Scope,
    action: str,
    notification: Notification,
    caller: ApiCaller,
    request: Request,
) -> None:
    await record(
        conn,
        scope.log_kind(action),
        performer=caller.identity,
        ip=client_ip(request),
        namespace=scope.namespace,
        repository=scope.repository.name if scope.repository else None,
        metadata={
            "notification_id": str(notification.view.uuid),
            "event": notification.view.event,
            "method": notification.view.method,
        },
    )


def _add_notification_routes(
    collection: str, items: str, scope_of: Callable[..., Awaitable[_Scope]], whose: str
) -> None:
    """The routes of one kind of notification owner: a repository or an organization."""

    async def list_notifications(
        scope: _Scope = Depends(scope_of), conn: asyncpg.Connection = Depends(db_connection)
    ) -> dict[str, list[NotificationView]]:
        return await _list(conn, scope)

    async def create_notification(
        request: Request,
        body: NotificationCreateRequest = Body(),
        scope: _Scope = Depends(scope_of),
        caller: ApiCaller = Depends(require_user),
        conn: asyncpg.Connection = Depends(db_connection),
    ) -> NotificationView:
        return await _create(conn, scope, body, caller, request)

    async def get_notification(
        uuid: str, scope: _Scope = Depends(scope_of), conn: asyncpg.Connection = Depends(db_connection)
    ) -> NotificationView:
        return (await scope.find(conn, uuid)).view

    async def delete_notification(
        uuid: str,
        request: Request,
        scope: _Scope = Depends(scope_of),
        caller: ApiCaller = Depends(require_user),
        conn: asyncpg.Connection = Depends(db_connection),
    ) -> Response:
        return await _delete(conn, scope, uuid, caller, request)

    async def reset_notification(
        uuid: str,
        request: Request,
        scope: _Scope = Depends(scope_of),
        caller: ApiCaller = Depends(require_user),
        conn: asyncpg.Connection = Depends(db_connection),
    ) -> Response:
        return await _reset(conn, scope, uuid, caller, request)

    async def test_notification(
        uuid: str, scope: _Scope = Depends(scope_of), conn: asyncpg.Connection = Depends(db_connection)
    ) -> dict[str, object]:
        return await _queue_test(conn, scope, uuid)

    item = items + "/{uuid}"
    router.add_api_route(
        collection, list_notifications, methods=["GET"], summary=f"List {whose} notifications"
    )
    router.add_api_route(
        collection,
        create_notification,
        methods=["POST"],
        status_code=201,
        summary=f"Create {whose} notification",
    )
    router.add_api_route(item, get_notification, methods=["GET"], summary=f"Get {whose} notification")
    router.add_api_route(
        item, delete_notification, methods=["DELETE"], status_code=204, summary=f"Delete {whose} notification"
    )
    router.add_api_route(
        item,
        reset_notification,
        methods=["POST"],
        status_code=204,
        summary=f"Reset {whose} notification's failures",
    )
    router.add_api_route(
        item + "/test",
        test_notification,
        methods=["POST"],
        summary=f"Queue a test delivery of {whose} notification",
    )


_add_notification_routes(_REPOSITORY_PATH + "/", _REPOSITORY_PATH, _repository_scope, "a repository")
_add_notification_routes(_ORGANIZATION_PATH, _ORGANIZATION_PATH, _organization_scope, "an organization")
