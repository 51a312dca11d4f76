"""The current user's API tokens: /api/v1/user/apitokens.

A token is shown once, when created. Credentials can only mint tokens with scopes they have
themselves, and 'super:user' only for a superuser.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
from fastapi import Depends, Response
from pydantic import AwareDatetime, Field

from services.registry.api.common import (
    ApiModel,
    api_router,
    bad_request,
    db_connection,
    forbidden,
    format_date,
)
from services.registry.api.security import ApiCaller, caller_user, user_with_scope
from shared.auth.api_tokens import (
    ApiToken,
    Scope,
    create_api_token,
    delete_api_token,
    expand_scopes,
    list_api_tokens,
)

router = api_router(tags=["API tokens"])
_token_admin = user_with_scope("user:admin")


class NewApiToken(ApiModel):
    name: str = Field(min_length=1, max_length=255)
    scopes: list[Scope] = Field(min_length=1)
    expiration: AwareDatetime | None = Field(
        default=None, strict=False, description="ISO 8601, with a time zone"
    )


def token_view(token: ApiToken) -> dict[str, Any]:
    return {
        "uuid": str(token.uuid),
        "name": token.name,
        "scopes": token.scopes,
        "created": format_date(token.created_at),
        "last_used": format_date(token.last_used_at),
        "expiration": format_date(token.expires_at),
    }


def check_grantable(caller: ApiCaller, scopes: list[Scope]) -> None:
    """403 unless the caller's credentials may grant these scopes (API tokens, OAuth access tokens)."""
    missing = sorted(expand_scopes(scopes) - caller.scopes)
    if missing:
        raise forbidden(f"these credentials cannot grant {', '.join(missing)}")
    if "super:user" in scopes and not caller_user(caller).is_superuser:
        raise forbidden("only superusers can grant super:user")


@router.post("/user/apitokens", status_code=201)
async def create_token(
    body: NewApiToken,
    caller: ApiCaller = Depends(_token_admin),
    conn: asyncpg.Connection = Depends(db_connection),
) -> dict[str, Any]:
    """Create an API token for the current user; the answer holds the token, shown this once."""
    check_grantable(caller, body.scopes)
    if body.expiration is not None and body.expiration <= datetime.now(UTC):
        raise bad_request("expiration must be in the future")
    issued = await create_api_token(conn, caller_user(caller).id, body.name, body.scopes, body.expiration)
    return token_view(issued) | {"token": issued.token}


@router.get("/user/apitokens")
async def list_tokens(
    caller: ApiCaller = Depends(_token_admin), conn: asyncpg.Connection = Depends(db_connection)
) -> dict[str, Any]:
    """The current user's API tokens, without their secrets."""
    return {"tokens": [token_view(token) for token in await list_api_tokens(conn, caller_user(caller).id)]}


@router.delete("/user/apitokens/{token_uuid}", status_code=204)
async def revoke_token(
    token_uuid: uuid.UUID,
    caller: ApiCaller = Depends(_token_admin),
    conn: asyncpg.Connection = Depends(db_connection),
) -> Response:
    """Revoke one of the current user's API tokens at once."""
    await delete_api_token(conn, caller_user(caller).id, token_uuid)
    return Response(status_code=204)
