"""The current user's app-specific tokens: /api/v1/user/apptoken (Quay's listAppTokens,
createAppToken, getAppToken, revokeAppToken).

A token is the password of the username '$app' on /v2 (Basic and the token endpoint, so
`docker login -u '$app'` works) and on /api/v1 (Basic); it acts as its user. Only its digest is
stored, so ``token_code`` is answered once, at creation; Quay also answers it on GET of one token,
which a stored digest cannot.
"""

from __future__ import annotations

import math
import uuid
from datetime import timedelta
from typing import Any

import asyncpg
from fastapi import Depends, Query, Request, Response
from pydantic import Field

from services.registry.api.common import (
    NO_NUL,
    ApiModel,
    api_router,
    bad_request,
    db_connection,
    format_date,
    not_found,
)
from services.registry.api.security import ApiCaller, caller_user, user_with_scope
from services.registry.context import RegistryContext, get_context
from services.registry.domain.audit import client_ip
from shared.auth.app_tokens import (
    AppToken,
    TooManyAppTokensError,
    create_app_token,
    get_app_token,
    list_app_tokens,
    revoke_app_token,
)
from shared.auth.identity import Identity
from shared.usage_logs import record

router = api_router(tags=["App-specific tokens"])
_token_admin = user_with_scope("user:admin")
# Quay's window when no token lifetime is configured: 'expiring' tokens end within 10% of it.
_DEFAULT_EXPIRATION_WINDOW = timedelta(weeks=4)


class NewAppToken(ApiModel):
    title: str = Field(min_length=1, max_length=255, pattern=NO_NUL, description="What the token is for")


def token_view(token: AppToken) -> dict[str, Any]:
    return {
        "uuid": str(token.uuid),
        "title": token.title,
        "last_accessed": format_date(token.last_accessed_at),
        "created": format_date(token.created_at),
        "expiration": format_date(token.expires_at),
    }


def _expiring_window(context: RegistryContext) -> timedelta:
    lifetime_s = context.settings.app_token_expiration_s
    lifetime = timedelta(seconds=lifetime_s) if lifetime_s else _DEFAULT_EXPIRATION_WINDOW
    return timedelta(seconds=math.ceil(lifetime.total_seconds() * 0.1) or 1)


async def _log(
    conn: asyncpg.Connection, request: Request, kind: str, user: Identity, token: AppToken
) -> None:
    await record(
        conn,
        kind,
        performer=user,
        ip=client_ip(request),
        namespace=user.name,
        metadata={"app_specific_token_title": token.title, "app_specific_token": str(token.uuid)},
    )


@router.get("/user/apptoken")
async def list_tokens(
    expiring: bool = Query(default=False, description="Only the tokens expiring soon"),
    caller: ApiCaller = Depends(_token_admin),
    conn: asyncpg.Connection = Depends(db_connection),
    context: RegistryContext = Depends(get_context),
) -> dict[str, Any]:
    """The current user's app-specific tokens, without their secrets (listAppTokens)."""
    window = _expiring_window(context) if expiring else None
    tokens = await list_app_tokens(conn, caller_user(caller).id, expiring_within=window)
    return {"tokens": [token_view(token) for token in tokens], "only_expiring": expiring}


@router.post("/user/apptoken", status_code=201)
async def create_token(
    body: NewAppToken,
    request: Request,
    caller: ApiCaller = Depends(_token_admin),
    conn: asyncpg.Connection = Depends(db_connection),
    context: RegistryContext = Depends(get_context),
) -> dict[str, Any]:
    """Create an app-specific token (createAppToken); ``token_code`` is shown this once."""
    user = caller_user(caller)
    lifetime_s = context.settings.app_token_expiration_s
    lifetime = timedelta(seconds=lifetime_s) if lifetime_s else None
    async with conn.transaction():
        try:
            issued = await create_app_token(conn, user.id, body.title, lifetime)
        except TooManyAppTokensError as error:
            raise bad_request(f"{error}: revoke one first") from error
        await _log(conn, request, "create_app_specific_token", user, issued)
    return {"token": token_view(issued) | {"token_code": issued.token_code}}


@router.get("/user/apptoken/{token_uuid}")
async def get_token(
    token_uuid: uuid.UUID,
    caller: ApiCaller = Depends(_token_admin),
    conn: asyncpg.Connection = Depends(db_connection),
) -> dict[str, Any]:
    """One of the current user's app-specific tokens (getAppToken), without its secret."""
    token = await get_app_token(conn, caller_user(caller).id, token_uuid)
    if token is None:
        raise not_found("no such app-specific token")
    return {"token": token_view(token)}


@router.delete("/user/apptoken/{token_uuid}", status_code=204)
async def revoke_token(
    token_uuid: uuid.UUID,
    request: Request,
    caller: ApiCaller = Depends(_token_admin),
    conn: asyncpg.Connection = Depends(db_connection),
) -> Response:
    """Revoke one of the current user's app-specific tokens (revokeAppToken). It is refused at once
    by every process: app tokens are checked against the database on every request, never cached."""
    user = caller_user(caller)
    async with conn.transaction():
        token = await revoke_app_token(conn, user.id, token_uuid)
        if token is None:
            raise not_found("no such app-specific token")
        await _log(conn, request, "revoke_app_specific_token", user, token)
    return Response(status_code=204)
