"""Bearer tokens for the management API: created by a user, limited to scopes, optionally expiring.

A token is 'qsat_' followed by 256 random bits, URL-safe. Only its SHA-256 digest is stored: with
that much entropy a fast digest is safe, and checking a token is one indexed lookup.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Literal, get_args

import asyncpg
from pydantic import BaseModel

from shared.auth.accounts import AccountNotFoundError
from shared.auth.identity import Identity

# Quay's OAuth scopes.
Scope = Literal[
    "repo:read",
    "repo:write",
    "repo:admin",
    "repo:create",
    "user:read",
    "user:admin",
    "org:admin",
    "super:user",
]
SCOPES: frozenset[Scope] = frozenset(get_args(Scope))
# A scope also grants the scopes it includes (Quay's implied scopes).
_INCLUDED: dict[str, tuple[Scope, ...]] = {
    "repo:admin": ("repo:write", "repo:read"),
    "repo:write": ("repo:read",),
    "user:admin": ("user:read",),
}
_PREFIX = "qsat_"
# last_used_at is refreshed at most this often, so a busy token does not write on every request.
_LAST_USED_RESOLUTION = "1 minute"


class ApiToken(BaseModel):
    uuid: uuid.UUID
    name: str
    scopes: list[Scope]
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None


class IssuedApiToken(ApiToken):
    """A token just created: the only time its secret is known."""

    token: str


class ApiTokenExpiredError(Exception):
    pass


class TokenHolder(BaseModel):
    """Who a valid token speaks for, and what it may be used for.

    ``identity.is_superuser`` is true only if the user is a superuser and the token has the
    'super:user' scope: a token without it never carries superuser power.
    """

    identity: Identity
    scopes: frozenset[Scope]


def expand_scopes(scopes: Iterable[Scope]) -> frozenset[Scope]:
    """The scopes with those they include (repo:admin -> repo:write -> repo:read, user:admin -> user:read)."""
    expanded: set[Scope] = set()
    for scope in scopes:
        expanded.add(scope)
        expanded.update(_INCLUDED.get(scope, ()))
    return frozenset(expanded)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


_COLUMNS = "uuid, name, scopes, created_at, last_used_at, expires_at"


async def create_api_token(
    conn: asyncpg.Connection, user_id: int, name: str, scopes: Iterable[Scope], expires_at: datetime | None
) -> IssuedApiToken:
    """Store a new token for the user (who may grant which scopes is the caller's business)."""
    token = _PREFIX + secrets.token_urlsafe(32)
    row = await conn.fetchrow(
        "INSERT INTO api_token (uuid, user_id, name, token_hash, scopes, expires_at)"
        f" VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_COLUMNS}",
        uuid.uuid4(),
        user_id,
        name,
        _digest(token),
        sorted(set(scopes)),
        expires_at,
    )
    return IssuedApiToken(**dict(row), token=token)


async def list_api_tokens(conn: asyncpg.Connection, user_id: int) -> list[ApiToken]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM api_token WHERE user_id = $1 ORDER BY created_at, id", user_id
    )
    return [ApiToken(**dict(row)) for row in rows]


async def delete_api_token(conn: asyncpg.Connection, user_id: int, token_uuid: uuid.UUID) -> None:
    deleted = await conn.fetchval(
        "DELETE FROM api_token WHERE user_id = $1 AND uuid = $2 RETURNING id", user_id, token_uuid
    )
    if deleted is None:
        raise AccountNotFoundError("no such API token")


async def authenticate_api_token(conn: asyncpg.Connection, token: str) -> TokenHolder | None:
    """The holder of a valid token; None for an unknown one, ApiTokenExpiredError for an expired one."""
    row = await conn.fetchrow(
        "SELECT t.id, t.scopes, t.expires_at <= now() AS expired,"
        " u.id AS user_id, u.username, u.namespace_id, u.is_superuser"
        " FROM api_token t JOIN app_user u ON u.id = t.user_id WHERE t.token_hash = $1 AND u.enabled",
        _digest(token),
    )
    if row is None:
        return None
    if row["expired"]:
        raise ApiTokenExpiredError("the API token has expired")
    await conn.execute(
        "UPDATE api_token SET last_used_at = now() WHERE id = $1"
        f" AND (last_used_at IS NULL OR last_used_at < now() - interval '{_LAST_USED_RESOLUTION}')",
        row["id"],
    )
    scopes = expand_scopes(row["scopes"])
    identity = Identity(
        kind="user",
        id=row["user_id"],
        name=row["username"],
        namespace_id=row["namespace_id"],
        is_superuser=row["is_superuser"] and "super:user" in scopes,
    )
    return TokenHolder(identity=identity, scopes=scopes)
