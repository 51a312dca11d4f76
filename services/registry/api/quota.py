"""Storage quotas, Quay's namespacequota API: /api/v1/organization/{orgname}/quota[/{quota_id}[/limit
[/{limit_id}]]] and the caller's own /api/v1/user/quota[...] (rules in
services.registry.domain.quota_management; the superuser variants are in superuser_quota).

As in Quay, only superusers (credentials with 'super:user') create, change and delete quotas and
limits; the organization's members read them. As in Quay, the paths of an existing quota and its
limits also take a user's namespace name (for superusers): that is where a user's quota, made with
/api/v1/superuser/users/{namespace}/quota, gets its Warning and Reject limits. A quota is ``{"limit_bytes": n}`` or
``{"limits": "10 Gi"}``; a limit ``{"type": "Warning" | "Reject", "threshold_percent": 1..100}``,
answered with Quay's field names (``limit_percent`` for the threshold). A namespace without a quota
of its own lists the system default (QUAYSIDE_DEFAULT_SYSTEM_REJECT_QUOTA_BYTES) with
``default_config: true``. Changes are recorded in the usage logs under Quay's kinds
(org_create_quota, org_change_quota_limit...).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, Path, Request, Response
from fastapi.responses import JSONResponse
from pydantic import Field

from services.registry.api.common import NO_NUL, ApiModel, api_router, bad_request, db_connection, not_found
from services.registry.api.security import (
    ApiCaller,
    caller_user,
    find_organization,
    member_organization,
    require_superuser,
    user_with_scope,
)
from services.registry.context import RegistryContext, get_context
from services.registry.domain import quota_management as quotas
from services.registry.domain.audit import client_ip
from shared.auth.accounts import Namespace, find_namespace
from shared.quota import check_crossings, lock_namespace, usage_bytes
from shared.usage_logs import record


async def quota_errors_as_http() -> AsyncIterator[None]:
    """Router dependency: refused changes answer 400, unknown quotas and limits 404."""
    try:
        yield
    except quotas.QuotaError as error:
        raise bad_request(str(error)) from error
    except quotas.QuotaNotFoundError as error:
        raise not_found(str(error)) from error


router = api_router(tags=["Quota"])
router.dependencies.append(Depends(quota_errors_as_http))

# Row ids are bigint: a path id beyond it is a 400, not a database error.
RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]
_ORGANIZATION_QUOTAS = "/organization/{orgname}/quota"
_ORGANIZATION_QUOTA = f"{_ORGANIZATION_QUOTAS}/{{quota_id}}"
_USER_QUOTAS = "/user/quota"
_USER_QUOTA = f"{_USER_QUOTAS}/{{quota_id}}"


class QuotaBody(ApiModel):
    """Quay's NewOrgQuota / UpdateOrgQuota: ``limit_bytes``, or ``limits`` as text ("10 Gi")."""

    limit_bytes: int | None = Field(
        default=None, ge=1, le=quotas.MAX_LIMIT_BYTES, description="The namespace's limit in bytes"
    )
    limits: str | None = Field(
        default=None,
        max_length=64,
        pattern=NO_NUL,
        description="The limit as text, when limit_bytes is left out: '10 Gi', '500 MiB', '2 TB'",
    )

    def size(self) -> int:
        if self.limit_bytes is not None:
            return self.limit_bytes
        if self.limits is not None:
            return quotas.parse_size(self.limits)
        raise bad_request("limit_bytes or limits is required")


class NewLimit(ApiModel):
    """Quay's NewOrgQuotaLimit."""

    type: quotas.LimitType = Field(description="'Warning' or 'Reject'")
    threshold_percent: int = Field(ge=1, le=100, description="Percent of the quota's limit")


class LimitChange(ApiModel):
    """Quay's UpdateOrgQuotaLimit: fields left out stay as they are."""

    type: quotas.LimitType | None = None
    threshold_percent: int | None = Field(default=None, ge=1, le=100)


def limit_view(limit: quotas.QuotaLimit) -> dict[str, Any]:
    return {"id": limit.id, "type": limit.limit_type, "limit_percent": limit.threshold_percent}


def quota_view(quota: quotas.Quota, default_reject_bytes: int | None) -> dict[str, Any]:
    return {
        "id": quota.id,
        "limit_bytes": quota.limit_bytes,
        "limit": quotas.format_size(quota.limit_bytes),
        "default_config": False,
        "limits": [limit_view(limit) for limit in quota.limits],
        "default_config_exists": default_reject_bytes is not None,
    }


def default_quota_view(default_reject_bytes: int) -> dict[str, Any]:
    """The system default of a namespace without a quota: a Reject limit at 100 %, no ids."""
    return {
        "id": None,
        "limit_bytes": default_reject_bytes,
        "limit": quotas.format_size(default_reject_bytes),
        "default_config": True,
        "limits": [{"id": None, "type": "Reject", "limit_percent": 100}],
        "default_config_exists": True,
    }


async def quota_list_view(
    conn: asyncpg.Connection, namespace_id: int, default_reject_bytes: int | None
) -> list[dict[str, Any]]:
    """Quay's list answer: the namespace's quota, or else the system default, or nothing."""
    found = await quotas.list_quotas(conn, namespace_id)
    if not found and default_reject_bytes is not None:
        return [default_quota_view(default_reject_bytes)]
    return [quota_view(quota, default_reject_bytes) for quota in found]


async def organization_quota_fields(
    conn: asyncpg.Connection, namespace_id: int, default_reject_bytes: int | None
) -> dict[str, Any]:
    """``quotas`` and ``quota_report`` of Quay's organization answer."""
    report = await quotas.namespace_quota_report(conn, namespace_id, default_reject_bytes)
    return {
        "quotas": [
            quota_view(quota, default_reject_bytes) for quota in await quotas.list_quotas(conn, namespace_id)
        ],
        "quota_report": report.model_dump(),
    }


def default_reject_bytes(context: RegistryContext) -> int | None:
    """QUAYSIDE_DEFAULT_SYSTEM_REJECT_QUOTA_BYTES: the limit of namespaces without a quota."""
    return context.settings.default_system_reject_quota_bytes


class QuotaChanges:
    """Superuser changes of one namespace's quota, each in a transaction with its usage log entry."""

    def __init__(
        self, conn: asyncpg.Connection, request: Request, caller: ApiCaller, namespace: Namespace
    ) -> None:
        self.conn = conn
        self.namespace = namespace
        self._caller = caller
        self._ip = client_ip(request)
        self._default_reject_bytes = default_reject_bytes(request.app.state.context)

    @contextlib.asynccontextmanager
    async def _changing(self) -> AsyncIterator[None]:
        """A transaction under the namespace's usage lock that ends by re-checking the limits'
        crossings: a limit lowered under the usage is announced at once, a removed one forgotten."""
        async with self.conn.transaction():
            await lock_namespace(self.conn, self.namespace.id)
            yield
            usage = await usage_bytes(self.conn, self.namespace.id)
            await check_crossings(self.conn, self.namespace.id, usage, self._default_reject_bytes)

    async def _log(self, kind: str, metadata: dict[str, Any]) -> None:
        await record(
            self.conn,
            kind,
            performer=self._caller.identity,
            ip=self._ip,
            namespace=self.namespace.name,
            metadata={"namespace": self.namespace.name, **metadata},
        )

    async def create_quota(self, body: QuotaBody) -> None:
        size = body.size()
        async with self._changing():
            quota = await quotas.create_quota(self.conn, self.namespace.id, self.namespace.name, size)
            await self._log("org_create_quota", {"quota_id": quota.id, "limit_bytes": size})

    async def change_quota(self, quota_id: int, body: QuotaBody) -> quotas.Quota:
        size = body.size()
        async with self._changing():
            quota = await quotas.change_quota(self.conn, self.namespace.id, quota_id, size)
            await self._log("org_change_quota", {"quota_id": quota.id, "limit_bytes": size})
        return quota

    async def delete_quota(self, quota_id: int) -> None:
        async with self._changing():
            quota = await quotas.delete_quota(self.conn, self.namespace.id, quota_id)
            await self._log("org_delete_quota", {"quota_id": quota.id, "limit_bytes": quota.limit_bytes})

    async def create_limit(self, quota_id: int, body: NewLimit) -> None:
        async with self._changing():
            quota = await quotas.get_quota(self.conn, self.namespace.id, quota_id)
            limit = await quotas.create_limit(self.conn, quota, body.type, body.threshold_percent)
            await self._log("org_create_quota_limit", _limit_metadata(quota, limit))

    async def change_limit(self, quota_id: int, limit_id: int, body: LimitChange) -> quotas.Quota:
        async with self._changing():
            quota = await quotas.get_quota(self.conn, self.namespace.id, quota_id)
            limit = await quotas.change_limit(self.conn, quota, limit_id, body.type, body.threshold_percent)
            await self._log("org_change_quota_limit", _limit_metadata(quota, limit))
        return await quotas.get_quota(self.conn, self.namespace.id, quota_id)

    async def delete_limit(self, quota_id: int, limit_id: int) -> None:
        async with self._changing():
            quota = await quotas.get_quota(self.conn, self.namespace.id, quota_id)
            limit = await quotas.delete_limit(self.conn, quota, limit_id)
            await self._log("org_delete_quota_limit", _limit_metadata(quota, limit))


def _limit_metadata(quota: quotas.Quota, limit: quotas.QuotaLimit) -> dict[str, Any]:
    return {
        "quota_id": quota.id,
        "limit_id": limit.id,
        "type": limit.limit_type,
        "threshold_percent": limit.threshold_percent,
    }


superuser_credentials = user_with_scope("super:user")


async def superuser(caller: ApiCaller = Depends(superuser_credentials)) -> ApiCaller:
    require_superuser(caller)
    return caller


async def _organization_changes(
    orgname: str,
    request: Request,
    caller: ApiCaller = Depends(superuser),
    conn: asyncpg.Connection = Depends(db_connection),
) -> QuotaChanges:
    """The superuser's changes of the organization (the caller is checked first: 401/403 before 404)."""
    return QuotaChanges(conn, request, caller, await find_organization(conn, orgname))


async def _namespace_changes(
    orgname: str,
    request: Request,
    caller: ApiCaller = Depends(superuser),
    conn: asyncpg.Connection = Depends(db_connection),
) -> QuotaChanges:
    """The superuser's changes of an existing quota of any namespace, a user's too: Quay looks the
    quota up by namespace name on these paths, which is how a user's quota gets its limits."""
    namespace = await find_namespace(conn, orgname)
    if namespace is None:
        raise not_found(f"no namespace {orgname!r}")
    return QuotaChanges(conn, request, caller, namespace)


def created() -> JSONResponse:
    return JSONResponse("Created", status_code=201)


# Organizations: members read (as Quay), superusers write.


@router.get(_ORGANIZATION_QUOTAS)
async def list_organization_quota(
    organization: Namespace = Depends(member_organization),
    conn: asyncpg.Connection = Depends(db_connection),
    context: RegistryContext = Depends(get_context),
) -> list[dict[str, Any]]:
    """The organization's quota (Quay's listOrganizationQuota), or the system default."""
    return await quota_list_view(conn, organization.id, default_reject_bytes(context))


@router.post(_ORGANIZATION_QUOTAS, status_code=201)
async def create_organization_quota(
    body: QuotaBody, changes: QuotaChanges = Depends(_organization_changes)
) -> JSONResponse:
    """Set the organization's quota (superusers; 400 when it has one already)."""
    await changes.create_quota(body)
    return created()


@router.get(_ORGANIZATION_QUOTA)
async def get_organization_quota(
    quota_id: RowId,
    organization: Namespace = Depends(member_organization),
    conn: asyncpg.Connection = Depends(db_connection),
    context: RegistryContext = Depends(get_context),
) -> dict[str, Any]:
    return quota_view(await quotas.get_quota(conn, organization.id, quota_id), default_reject_bytes(context))


@router.put(_ORGANIZATION_QUOTA)
async def change_organization_quota(
    quota_id: RowId,
    body: QuotaBody,
    changes: QuotaChanges = Depends(_namespace_changes),
    context: RegistryContext = Depends(get_context),
) -> dict[str, Any]:
    """Change the quota's limit (superusers)."""
    return quota_view(await changes.change_quota(quota_id, body), default_reject_bytes(context))


@router.delete(_ORGANIZATION_QUOTA, status_code=204)
async def delete_organization_quota(
    quota_id: RowId, changes: QuotaChanges = Depends(_namespace_changes)
) -> Response:
    """Delete the quota and its limits (superusers)."""
    await changes.delete_quota(quota_id)
    return Response(status_code=204)


@router.get(f"{_ORGANIZATION_QUOTA}/limit")
async def list_organization_quota_limits(
    quota_id: RowId,
    organization: Namespace = Depends(member_organization),
    conn: asyncpg.Connection = Depends(db_connection),
) -> list[dict[str, Any]]:
    quota = await quotas.get_quota(conn, organization.id, quota_id)
    return [limit_view(limit) for limit in quota.limits]


@router.post(f"{_ORGANIZATION_QUOTA}/limit", status_code=201)
async def create_organization_quota_limit(
    quota_id: RowId, body: NewLimit, changes: QuotaChanges = Depends(_namespace_changes)
) -> JSONResponse:
    """Add a Warning or Reject limit (superusers; 400 for a duplicate)."""
    await changes.create_limit(quota_id, body)
    return created()


@router.get(f"{_ORGANIZATION_QUOTA}/limit/{{limit_id}}")
async def get_organization_quota_limit(
    quota_id: RowId,
    limit_id: RowId,
    organization: Namespace = Depends(member_organization),
    conn: asyncpg.Connection = Depends(db_connection),
) -> dict[str, Any]:
    quota = await quotas.get_quota(conn, organization.id, quota_id)
    return limit_view(quotas.find_limit(quota, limit_id))


@router.put(f"{_ORGANIZATION_QUOTA}/limit/{{limit_id}}")
async def change_organization_quota_limit(
    quota_id: RowId,
    limit_id: RowId,
    body: LimitChange,
    changes: QuotaChanges = Depends(_namespace_changes),
    context: RegistryContext = Depends(get_context),
) -> dict[str, Any]:
    """Change a limit's type or threshold (superusers); answers the quota, as Quay."""
    return quota_view(await changes.change_limit(quota_id, limit_id, body), default_reject_bytes(context))


@router.delete(f"{_ORGANIZATION_QUOTA}/limit/{{limit_id}}", status_code=204)
async def delete_organization_quota_limit(
    quota_id: RowId, limit_id: RowId, changes: QuotaChanges = Depends(_namespace_changes)
) -> Response:
    await changes.delete_limit(quota_id, limit_id)
    return Response(status_code=204)


# The caller's own namespace (read only, as Quay's /user/quota).

_quota_reader = user_with_scope("user:read")


@router.get(_USER_QUOTAS)
async def list_user_quota(
    caller: ApiCaller = Depends(_quota_reader),
    conn: asyncpg.Connection = Depends(db_connection),
    context: RegistryContext = Depends(get_context),
) -> list[dict[str, Any]]:
    return await quota_list_view(conn, caller_user(caller).namespace_id, default_reject_bytes(context))


@router.get(_USER_QUOTA)
async def get_user_quota(
    quota_id: RowId,
    caller: ApiCaller = Depends(_quota_reader),
    conn: asyncpg.Connection = Depends(db_connection),
    context: RegistryContext = Depends(get_context),
) -> dict[str, Any]:
    quota = await quotas.get_quota(conn, caller_user(caller).namespace_id, quota_id)
    return quota_view(quota, default_reject_bytes(context))


@router.get(f"{_USER_QUOTA}/limit")
async def list_user_quota_limits(
    quota_id: RowId,
    caller: ApiCaller = Depends(_quota_reader),
    conn: asyncpg.Connection = Depends(db_connection),
) -> list[dict[str, Any]]:
    quota = await quotas.get_quota(conn, caller_user(caller).namespace_id, quota_id)
    return [limit_view(limit) for limit in quota.limits]


@router.get(f"{_USER_QUOTA}/limit/{{limit_id}}")
async def get_user_quota_limit(
    quota_id: RowId,
    limit_id: RowId,
    caller: ApiCaller = Depends(_quota_reader),
    conn: asyncpg.Connection = Depends(db_connection),
) -> dict[str, Any]:
    quota = await quotas.get_quota(conn, caller_user(caller).namespace_id, quota_id)
    return limit_view(quotas.find_limit(quota, limit_id))
