"""Who calls /api/v1 and what the call may do.

Credentials: a bearer API token (scoped, see shared.auth.api_tokens), or Basic with a user's
password or a robot's token, or (without an Authorization header) a web session's cookie, or none
(anonymous). Password and session callers may use every scope, robots the repository scopes; a
token only its own. Session writes need the session's CSRF token (shared.auth.sessions). Failures
answer Quay's error JSON: 401 for missing or bad credentials, 403 for a missing scope, permission or
CSRF token, 404 for an unknown namespace.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBasic, HTTPBasicCredentials, HTTPBearer

from services.registry.api.common import db_connection, forbidden, not_found
from services.registry.context import RegistryContext, get_context
from services.registry.domain.audit import client_ip
from services.registry.v2.access import identify_basic
from shared.auth.accounts import Namespace, find_namespace
from shared.auth.api_callers import ROBOT_SCOPES, ApiCaller, authenticate_api_caller
from shared.auth.api_callers import unauthorized as _unauthorized
from shared.auth.api_tokens import Scope
from shared.auth.identity import Identity
from shared.auth.login_limits import LoginLockedError
from shared.auth.permissions import namespace_role
from shared.auth.sessions import session_api_caller

__all__ = ["ROBOT_SCOPES", "ApiCaller"]

_bearer = HTTPBearer(auto_error=False, description="An API token (POST /api/v1/user/apitokens).")
_basic = HTTPBasic(
    auto_error=False,
    realm="Quayside",
    description="A user's password, or a robot '<namespace>+<name>' and its token.",
)


async def api_caller(
    request: Request,
    bearer: HTTPAuthorizationCredentials | None = Depends(_bearer),
    basic: HTTPBasicCredentials | None = Depends(_basic),
    context: RegistryContext = Depends(get_context),
    conn: asyncpg.Connection = Depends(db_connection),
) -> ApiCaller:
    """FastAPI dependency: authenticate the request (401 for bad credentials, anonymous without any,
    429 while failed logins lock the credentials out)."""

    async def authenticate_basic(username: str, secret: str) -> Identity | None:
        return await identify_basic(context, request, username, secret, "api")

    session = await session_api_caller(request, conn)
    if session is not None:
        return session
    token = bearer.credentials if bearer is not None else None
    address = client_ip(request) or ""
    try:
        if token is not None:
            await context.logins.check(None, address)
        return await authenticate_api_caller(
            conn,
            bearer=token,
            basic=(basic.username, basic.password) if basic is not None else None,
            has_authorization=bool(request.headers.get("authorization")),
            authenticate_basic=authenticate_basic,
        )
    except LoginLockedError as error:
        raise HTTPException(
            status_code=429, detail=str(error), headers={"Retry-After": str(error.retry_after_s)}
        ) from error
    except HTTPException as error:
        if token is not None and error.status_code == 401:  # a wrong API token counts for its address
            await context.logins.record_failure(None, address)
        raise


async def require_user(caller: ApiCaller = Depends(api_caller)) -> ApiCaller:
    """FastAPI dependency: an authenticated user (401 anonymous, 403 robots)."""
    if caller.identity is None:
        raise _unauthorized("authentication required")
    if caller.identity.kind != "user":
        raise forbidden("robot accounts cannot use this endpoint")
    return caller


def user_with_scope(scope: Scope) -> Callable[..., Awaitable[ApiCaller]]:
    """FastAPI dependency factory: an authenticated user whose credentials carry ``scope``."""

    async def dependency(caller: ApiCaller = Depends(require_user)) -> ApiCaller:
        caller.require_scope(scope)
        return caller

    return dependency


org_admin_user = user_with_scope("org:admin")


async def administered_organization(
    orgname: str,
    caller: ApiCaller = Depends(org_admin_user),
    conn: asyncpg.Connection = Depends(db_connection),
) -> Namespace:
    """FastAPI dependency of /organization/{orgname}/... paths: the organization, if the caller is a
    user whose credentials have 'org:admin' and who administers it (404 unknown, 403 otherwise)."""
    return await require_organization_admin(conn, caller, orgname)


async def member_organization(
    orgname: str,
    caller: ApiCaller = Depends(org_admin_user),
    conn: asyncpg.Connection = Depends(db_connection),
) -> Namespace:
    """As administered_organization, for any member of the organization (a role from one of its
    teams), as Quay's OrganizationMemberPermission."""
    organization = await find_organization(conn, orgname)
    if await namespace_role(conn, caller.identity, organization.id) is None:
        raise forbidden(f"membership of {orgname!r} required")
    return organization


def caller_user(caller: ApiCaller) -> Identity:
    """The identity of a caller that require_user admitted."""
    assert caller.identity is not None
    return caller.identity


def require_superuser(caller: ApiCaller) -> None:
    if caller.identity is None or not caller.identity.is_superuser:
        raise forbidden("superuser permission required")


async def require_namespace_admin(conn: asyncpg.Connection, caller: ApiCaller, namespace: str) -> Namespace:
    """The live namespace if the caller administers it (its user, org admin teams, superusers); 404/403 else."""
    found = await find_namespace(conn, namespace)
    if found is None:
        raise not_found(f"no namespace {namespace!r}")
    return await _administered(conn, caller, found)


async def require_organization_admin(conn: asyncpg.Connection, caller: ApiCaller, orgname: str) -> Namespace:
    """As require_namespace_admin, for organizations only (a user's namespace answers 404)."""
    return await _administered(conn, caller, await find_organization(conn, orgname))


async def find_organization(conn: asyncpg.Connection, orgname: str) -> Namespace:
    """A live organization by name; 404 otherwise."""
    found = await find_namespace(conn, orgname)
    if found is None or found.kind != "organization":
        raise not_found(f"no organization {orgname!r}")
    return found


async def _administered(conn: asyncpg.Connection, caller: ApiCaller, namespace: Namespace) -> Namespace:
    if await namespace_role(conn, caller.identity, namespace.id) != "admin":
        raise forbidden(f"administrator permission on {namespace.name!r} required")
    return namespace
