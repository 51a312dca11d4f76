"""App-specific tokens: passwords a user creates for one client each, usable as the password of
the username '$app' (Quay's), and revocable one by one.

A token is 'qsapp_' followed by 256 random bits, URL-safe. Only its SHA-256 digest is stored: with
that much entropy a fast digest is safe, checking a token is one indexed lookup (no argon2, so
nothing needs caching and a revoked token is refused at once by every process), and the token
itself can only be shown when it is created.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime, timedelta

import asyncpg
from pydantic import BaseModel

from shared.auth.identity import Identity

APP_TOKEN_USERNAME = "$app"
_PREFIX = "qsapp_"
# last_accessed_at is refreshed at most this often, so a busy token does not write on every request.
_LAST_ACCESSED_RESOLUTION = "1 minute"
_COLUMNS = "uuid, title, created_at, last_accessed_at, expires_at"
# Bounds a user's (unpaginated, as in Quay) token list.
MAX_TOKENS_PER_USER = 100


class TooManyAppTokensError(Exception):
    pass


class AppToken(BaseModel):
    uuid: uuid.UUID
    title: str
    created_at: datetime
    last_accessed_at: datetime | None
    expires_at: datetime | None


class IssuedAppToken(AppToken):
    """A token just created: the only time its secret is known."""

    token_code: str


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_app_token(
    conn: asyncpg.Connection, user_id: int, title: str, lifetime: timedelta | None
) -> IssuedAppToken:
    """Store a new token of the user, expiring after ``lifetime`` (None: never);
    TooManyAppTokensError when the user holds MAX_TOKENS_PER_USER already."""
    token = _PREFIX + secrets.token_urlsafe(32)
    row = await conn.fetchrow(
        "INSERT INTO app_token (uuid, user_id, title, token_hash, expires_at)"
        " SELECT $1, $2, $3, $4, now() + $5::interval"
        f" WHERE (SELECT count(*) FROM app_token WHERE user_id = $2) < $6 RETURNING {_COLUMNS}",
        uuid.uuid4(),
        user_id,
        title,
        _digest(token),
        lifetime,
        MAX_TOKENS_PER_USER,
    )
    if row is None:
        raise TooManyAppTokensError(f"a user holds at most {MAX_TOKENS_PER_USER} app-specific tokens")
    return IssuedAppToken(**dict(row), token_code=token)


async def list_app_tokens(
    conn: asyncpg.Connection, user_id: int, *, expiring_within: timedelta | None = None
) -> list[AppToken]:
    """The user's tokens, oldest first; with ``expiring_within``, only live ones expiring that soon."""
    if expiring_within is None:
        rows = await conn.fetch(
            f"SELECT {_COLUMNS} FROM app_token WHERE user_id = $1 ORDER BY created_at, id", user_id
        )
    else:
        rows = await conn.fetch(
            f"SELECT {_COLUMNS} FROM app_token WHERE user_id = $1"
            " AND expires_at > now() AND expires_at <= now() + $2::interval ORDER BY created_at, id",
            user_id,
            expiring_within,
        )
    return [AppToken(**dict(row)) for row in rows]


async def get_app_token(conn: asyncpg.Connection, user_id: int, token_uuid: uuid.UUID) -> AppToken | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM app_token WHERE user_id = $1 AND uuid = $2", user_id, token_uuid
    )
    return AppToken(**dict(row)) if row else None


async def revoke_app_token(conn: asyncpg.Connection, user_id: int, token_uuid: uuid.UUID) -> AppToken | None:
    """Delete the token (it stops working at once); the deleted token, None if there was none."""
    row = await conn.fetchrow(
        f"DELETE FROM app_token WHERE user_id = $1 AND uuid = $2 RETURNING {_COLUMNS}", user_id, token_uuid
    )
    return AppToken(**dict(row)) if row else None


async def authenticate_app_token(conn: asyncpg.Connection, token: str) -> Identity | None:
    """The user of a live token; None for an unknown or expired one."""
    row = await conn.fetchrow(
        "SELECT t.id AS token_id, u.id, u.username, u.namespace_id, u.is_superuser,"
        f" t.last_accessed_at IS NULL OR t.last_accessed_at < now() - interval '{_LAST_ACCESSED_RESOLUTION}'"
        " AS stale FROM app_token t JOIN app_user u ON u.id = t.user_id"
        " WHERE t.token_hash = $1 AND (t.expires_at IS NULL OR t.expires_at > now()) AND u.enabled",
        _digest(token),
    )
    if row is None:
        return None
    if row["stale"]:
        await conn.execute("UPDATE app_token SET last_accessed_at = now() WHERE id = $1", row["token_id"])
    return Identity(
        kind="user",
        id=row["id"],
        name=row["username"],
        namespace_id=row["namespace_id"],
        is_superuser=row["is_superuser"],
    )
