"""Who calls a management API (/api/v1) and what the call may do: the rules every service's API shares.

Credentials: a bearer API token (scoped, see shared.auth.api_tokens), or Basic with a user's
password or a robot's token, or none (anonymous). Password callers may use every scope, robots the
repository scopes; a token only its own. Refusals are HTTP errors answered as ``{"detail": ...}``:
401 for missing or bad credentials, 403 for a missing scope.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg
from fastapi import HTTPException
from pydantic import BaseModel

from shared.auth.api_tokens import SCOPES, ApiTokenExpiredError, Scope, authenticate_api_token
from shared.auth.identity import Identity

ROBOT_SCOPES: frozenset[Scope] = frozenset({"repo:read", "repo:write", "repo:admin", "repo:create"})

# Checks a Basic username and secret (a user's password or a robot's token); None when they are wrong.
BasicAuthenticator = Callable[[str, str], Awaitable[Identity | None]]


class ApiCaller(BaseModel):
    """The caller: ``identity`` is None for anonymous calls; ``scopes`` bound what credentials may do.

    A superuser's identity carries ``is_superuser`` only when its credentials have 'super:user'.
    """

    identity: Identity | None
    scopes: frozenset[Scope]

    def require_scope(self, scope: Scope) -> None:
        if scope not in self.scopes:
            raise HTTPException(status_code=403, detail=f"these credentials lack the '{scope}' scope")


def unauthorized(detail: str, scheme: str = "Bearer") -> HTTPException:
    return HTTPException(
        status_code=401, detail=detail, headers={"WWW-Authenticate": f'{scheme} realm="Quayside"'}
    )


async def authenticate_api_caller(
    conn: asyncpg.Connection,
    *,
    bearer: str | None,
    basic: tuple[str, str] | None,
    has_authorization: bool,
    authenticate_basic: BasicAuthenticator,
) -> ApiCaller:
    """The caller of a request with these credentials; 401 for bad ones, anonymous without any.

    ``has_authorization`` tells that the request carried an Authorization header at all (one of
    another scheme than Bearer or Basic is refused rather than taken as anonymous).
    """
    if bearer is not None:
        try:
            holder = await authenticate_api_token(conn, bearer)
        except ApiTokenExpiredError as error:
            raise unauthorized(str(error)) from error
        if holder is None:
            raise unauthorized("invalid API token")
        return ApiCaller(identity=holder.identity, scopes=holder.scopes)
    if basic is not None:
        # No account has a NUL in its name or secret (PostgreSQL stores none): refused unlooked-up.
        identity = None if "\0" in "".join(basic) else await authenticate_basic(*basic)
        if identity is None:
            raise unauthorized("invalid username or password", "Basic")
        return ApiCaller(identity=identity, scopes=SCOPES if identity.kind == "user" else ROBOT_SCOPES)
    if has_authorization:
        raise unauthorized("unsupported authorization scheme")
    return ApiCaller(identity=None, scopes=SCOPES)
