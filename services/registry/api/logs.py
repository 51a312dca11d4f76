"""Usage logs, Quay's API: list, aggregate and export the logs of an organization (its admins), a
repository (its admins) or the caller's own namespace.

    GET  /api/v1/organization/{orgname}/logs | aggregatelogs,   POST .../exportlogs
    GET  /api/v1/repository/{namespace}/{repository}/logs | aggregatelogs,   POST .../exportlogs
    GET  /api/v1/user/logs | aggregatelogs,   POST /api/v1/user/exportlogs
    GET  /exportedlogs/{name}   an exported file (the unguessable name is the capability, as in Quay)

`starttime` and `endtime` are Quay's `%m/%d/%Y` (UTC days, the end day included) or ISO 8601; the
default range is the last day. Lists are newest first, PAGE_SIZE entries a page; an answer with more
after it carries `next_page`, passed back as the `next_page` parameter. Logs never cross their
namespace: every query is bound to the namespace the caller administers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import aiofiles.os
import asyncpg
from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request
from fastapi.responses import FileResponse
from pydantic import AfterValidator, Field, model_validator

from services.registry.api.common import ApiModel, api_router, bad_request, db_connection, not_found
from services.registry.api.notifications import require_repository_admin
from services.registry.api.security import ApiCaller, caller_user, require_organization_admin, require_user
from services.registry.context import RegistryContext, get_context
from services.registry.domain import log_export
from services.registry.domain.audit import client_ip
from services.registry.domain.usage_log_queries import (
    InvalidLogQueryError,
    LogScope,
    TimeRange,
    aggregated_counts,
    page_of_logs,
    rfc822,
    time_range,
)
from shared.auth.names import EmailAddress
from shared.usage_logs import record

router = api_router(tags=["Usage logs"])
exported_router = APIRouter(tags=["Usage logs"])

StartTime = Annotated[
    str | None, Query(max_length=64, description='Earliest day, "%m/%d/%Y" (UTC) or ISO 8601')
]
EndTime = Annotated[
    str | None, Query(max_length=64, description='Latest day (included), "%m/%d/%Y" or ISO 8601')
]
Performer = Annotated[str | None, Query(max_length=255, description="Only the logs of this user or robot")]
NextPage = Annotated[str | None, Query(max_length=512, description="The next_page of the previous answer")]


def _check_callback_url(url: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise ValueError("Invalid callback URL")
    return url


class ExportLogsRequest(ApiModel):
    """Where to report the export: a URL receiving Quay's report, an e-mail address, or both."""

    callback_url: Annotated[str, Field(max_length=2048), AfterValidator(_check_callback_url)] | None = None
    callback_email: EmailAddress | None = None

    @model_validator(mode="after")
    def _somewhere(self) -> ExportLogsRequest:
        if not self.callback_url and not self.callback_email:
            raise ValueError("callback_url or callback_email is required")
        return self


class _Target:
    """Whose logs: a namespace, narrowed to a repository for repository logs."""

    def __init__(self, namespace: str, namespace_id: int, repository: str | None = None) -> None:
        self.namespace = namespace
        self.namespace_id = namespace_id
        self.repository = repository

    def scope(self, performer: str | None = None) -> LogScope:
        return LogScope(self.namespace_id, self.repository, performer)


async def _organization_target(
    orgname: str, caller: ApiCaller = Depends(require_user), conn: asyncpg.Connection = Depends(db_connection)
) -> _Target:
    caller.require_scope("org:admin")
    organization = await require_organization_admin(conn, caller, orgname)
    return _Target(organization.name, organization.id)


async def _repository_target(
    namespace: str,
    repository: str,
    caller: ApiCaller = Depends(require_user),
    conn: asyncpg.Connection = Depends(db_connection),
) -> _Target:
    found = await require_repository_admin(conn, caller, namespace, repository)
    return _Target(found.namespace, found.namespace_id, found.name)


async def _user_target(caller: ApiCaller = Depends(require_user)) -> _Target:
    caller.require_scope("user:admin")
    identity = caller_user(caller)
    return _Target(identity.name, identity.namespace_id)


def _range(starttime: str | None, endtime: str | None) -> TimeRange:
    try:
        return time_range(starttime, endtime, datetime.now(UTC))
    except InvalidLogQueryError as error:
        raise bad_request(str(error)) from error


async def _list(
    conn: asyncpg.Connection,
    scope: LogScope,
    starttime: str | None,
    endtime: str | None,
    next_page: str | None,
) -> dict[str, Any]:
    span = _range(starttime, endtime)
    try:
        logs, following = await page_of_logs(conn, scope, span, next_page)
    except InvalidLogQueryError as error:
        raise bad_request(str(error)) from error
    answer: dict[str, Any] = {"start_time": rfc822(span.start), "end_time": rfc822(span.end), "logs": logs}
    if following is not None:
        answer["next_page"] = following
    return answer


async def _aggregate(
    conn: asyncpg.Connection, scope: LogScope, starttime: str | None, endtime: str | None
) -> dict[str, Any]:
    return {"aggregated": await aggregated_counts(conn, scope, _range(starttime, endtime))}


async def _export(
    target: _Target,
    body: ExportLogsRequest,
    starttime: str | None,
    endtime: str | None,
    *,
    caller: ApiCaller,
    request: Request,
    conn: asyncpg.Connection,
    context: RegistryContext,
    tasks: BackgroundTasks,
) -> dict[str, str]:
    """Queue the export (it runs once the answer is sent) and log the request, as Quay does."""
    export = log_export.ExportRequest(
        export_id=log_export.new_export_id(),
        scope=target.scope(),
        span=_range(starttime, endtime),
        namespace=target.namespace,
        repository=target.repository,
        callback_url=body.callback_url,
        callback_email=body.callback_email,
        base_url=context.settings.public_url or str(request.base_url),
    )
    await record(
        conn,
        "export_logs_success",
        performer=caller.identity,
        ip=client_ip(request),
        namespace=target.namespace,
        repository=target.repository,
        metadata={"export_id": export.export_id, "url": body.callback_url, "email": body.callback_email},
    )
    tasks.add_task(log_export.run_export, context.pool, context.settings, export)
    return {"export_id": export.export_id}


def _add_log_routes(prefix: str, target_of: Callable[..., Awaitable[_Target]], whose: str) -> None:
    """The list, aggregate and export routes of one kind of log owner (organization, repository, user)."""

    async def list_logs(
        starttime: StartTime = None,
        endtime: EndTime = None,
        performer: Performer = None,
        next_page: NextPage = None,
        target: _Target = Depends(target_of),
        conn: asyncpg.Connection = Depends(db_connection),
    ) -> dict[str, Any]:
        return await _list(conn, target.scope(performer), starttime, endtime, next_page)

    async def aggregate_logs(
        starttime: StartTime = None,
        endtime: EndTime = None,
        performer: Performer = None,
        target: _Target = Depends(target_of),
        conn: asyncpg.Connection = Depends(db_connection),
    ) -> dict[str, Any]:
        return await _aggregate(conn, target.scope(performer), starttime, endtime)

    async def export_logs(
        body: ExportLogsRequest,
        request: Request,
        tasks: BackgroundTasks,
        starttime: StartTime = None,
        endtime: EndTime = None,
        target: _Target = Depends(target_of),
        caller: ApiCaller = Depends(require_user),
        conn: asyncpg.Connection = Depends(db_connection),
        context: RegistryContext = Depends(get_context),
    ) -> dict[str, str]:
        return await _export(
            target,
            body,
            starttime,
            endtime,
            caller=caller,
            request=request,
            conn=conn,
            context=context,
            tasks=tasks,
        )

    router.add_api_route(f"{prefix}/logs", list_logs, methods=["GET"], summary=f"List {whose} usage logs")
    router.add_api_route(
        f"{prefix}/aggregatelogs",
        aggregate_logs,
        methods=["GET"],
        summary=f"Count {whose} logs per kind and day",
    )
    router.add_api_route(
        f"{prefix}/exportlogs", export_logs, methods=["POST"], summary=f"Export {whose} logs"
    )


_add_log_routes("/organization/{orgname}", _organization_target, "an organization's")
_add_log_routes("/repository/{namespace}/{repository:path}", _repository_target, "a repository's")
_add_log_routes("/user", _user_target, "the caller's namespace")


@exported_router.get(
    "/exportedlogs/{name}", summary="Download exported usage logs", response_class=FileResponse
)
async def exported_logs(name: str, context: RegistryContext = Depends(get_context)) -> FileResponse:
    path = log_export.exported_file(context.settings, name)
    if path is None or not await aiofiles.os.path.isfile(path):
        raise not_found("no such export")
    return FileResponse(path, media_type="application/json")
