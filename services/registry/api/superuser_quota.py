"""The superuser's quota paths: Quay's /api/v1/superuser/organization/{namespace}/quota[/{quota_id}]
and /api/v1/superuser/users/{namespace}/quota[/{quota_id}] (listUserQuotaSuperUser,
createUserQuotaSuperUser, changeUserQuotaSuperUser, deleteUserQuotaSuperUser), and Quayside's
report of every namespace's usage against its limits, /api/v1/superuser/quotareport
(docs/api-extras.md).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from fastapi import Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from services.registry.api.common import api_router, bad_request, db_connection, not_found
from services.registry.api.page_tokens import MAX_TOKEN_LENGTH, decode_token, encode_token
from services.registry.api.quota import (
    QuotaBody,
    QuotaChanges,
    RowId,
    created,
    default_reject_bytes,
    quota_errors_as_http,
    quota_list_view,
    quota_view,
    superuser,
)
from services.registry.api.security import ApiCaller, find_organization
from services.registry.context import RegistryContext, get_context
from services.registry.domain import quota_management as quotas
from shared.auth.accounts import Namespace, find_namespace

router = api_router(tags=["Quota"])
router.dependencies.append(Depends(quota_errors_as_http))

REPORT_PAGE_MAX = 100
_ORGANIZATION_QUOTAS = "/superuser/organization/{namespace}/quota"
_USER_QUOTAS = "/superuser/users/{namespace}/quota"


async def _find_user_namespace(conn: asyncpg.Connection, name: str) -> Namespace:
    found = await find_namespace(conn, name)
    if found is None or found.kind != "user":
        raise not_found(f"no user {name[:255]!r}")
    return found


def _quota_routes(path: str, find: Callable[[asyncpg.Connection, str], Awaitable[Namespace]]) -> None:
    """The superuser's list, create, change and delete of the quota of the namespaces at ``path``,
    ``find`` reading its {namespace} (the caller is checked first: 401/403 before 404)."""

    async def changes_of(
        namespace: str,
        request: Request,
        caller: ApiCaller = Depends(superuser),
        conn: asyncpg.Connection = Depends(db_connection),
    ) -> QuotaChanges:
        return QuotaChanges(conn, request, caller, await find(conn, namespace))

    @router.get(path)
    async def list_quota_superuser(
        changes: QuotaChanges = Depends(changes_of), context: RegistryContext = Depends(get_context)
    ) -> list[dict[str, Any]]:
        return await quota_list_view(changes.conn, changes.namespace.id, default_reject_bytes(context))

    @router.post(path, status_code=201)
    async def create_quota_superuser(
        body: QuotaBody, changes: QuotaChanges = Depends(changes_of)
    ) -> JSONResponse:
        await changes.create_quota(body)
        return created()

    @router.put(f"{path}/{{quota_id}}")
    async def change_quota_superuser(
        quota_id: RowId,
        body: QuotaBody,
        changes: QuotaChanges = Depends(changes_of),
        context: RegistryContext = Depends(get_context),
    ) -> dict[str, Any]:
        return quota_view(await changes.change_quota(quota_id, body), default_reject_bytes(context))

    @router.delete(f"{path}/{{quota_id}}", status_code=204)
    async def delete_quota_superuser(
        quota_id: RowId, changes: QuotaChanges = Depends(changes_of)
    ) -> Response:
        await changes.delete_quota(quota_id)
        return Response(status_code=204)


_quota_routes(_ORGANIZATION_QUOTAS, find_organization)
_quota_routes(_USER_QUOTAS, _find_user_namespace)


@router.get("/superuser/quotareport")
async def quota_report(
    sort: quotas.ReportSort = Query(default="usage", description="'usage' (biggest first) or 'name'"),
    only: quotas.ReportFilter = Query(
        default="all",
        alias="filter",
        description="'all', 'with_quota', 'over_quota' (at or over the limit), or 'over_without_reject'"
        " (over a quota that has no Reject limit: nothing stops its growth)",
    ),
    limit: int = Query(default=REPORT_PAGE_MAX, ge=1, le=REPORT_PAGE_MAX),
    next_page: str | None = Query(default=None, max_length=MAX_TOKEN_LENGTH),
    _caller: ApiCaller = Depends(superuser),
    conn: asyncpg.Connection = Depends(db_connection),
    context: RegistryContext = Depends(get_context),
) -> dict[str, Any]:
    """Every live namespace's usage, limit and state, a page at a time (Quayside extra)."""
    after = decode_token(quotas.ReportPosition, next_page) if next_page is not None else None
    if after is not None and after.sort != sort:
        raise bad_request("Invalid next_page token")
    entries, position = await quotas.quota_report(
        conn,
        sort=sort,
        only=only,
        default_reject_bytes=default_reject_bytes(context),
        after=after,
        limit=limit,
    )
    answer: dict[str, Any] = {"namespaces": [entry.model_dump() for entry in entries]}
    if position is not None:
        answer["next_page"] = encode_token(position)
    return answer
