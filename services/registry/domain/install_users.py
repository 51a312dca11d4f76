"""The installation's users as superusers manage them: view, change (email, password, enabled),
delete, and the first user of an empty installation."""

from __future__ import annotations

import asyncpg
from pydantic import BaseModel

from shared.auth.accounts import create_user
from shared.auth.api_tokens import SCOPES, create_api_token
from shared.auth.names import InvalidNameError, check_namespace_name

# Serialises initializations of the first user, so that two concurrent ones cannot both see no user.
_INITIALIZE_LOCK_KEY = 0x5155_4949


class InstallUser(BaseModel):
    id: int
    namespace_id: int
    username: str
    email: str | None
    is_superuser: bool
    enabled: bool


class InstallNotEmptyError(Exception):
    """The installation has a user already: it is initialized."""


def is_username(name: str) -> bool:
    try:
        check_namespace_name(name)
    except InvalidNameError:
        return False
    return True


async def find_install_user(conn: asyncpg.Connection, username: str) -> InstallUser | None:
    """A user (robots and organizations are not users) by name; None for unknown or invalid names."""
    if not is_username(username):
        return None
    row = await conn.fetchrow(
        "SELECT u.id, u.namespace_id, u.username, n.email, u.is_superuser, u.enabled"
        " FROM app_user u JOIN namespace n ON n.id = u.namespace_id WHERE u.username = $1",
        username,
    )
    return InstallUser(**dict(row)) if row else None


async def robot_usernames(conn: asyncpg.Connection, namespace_id: int) -> list[str]:
    """The '<namespace>+<shortname>' names of a namespace's robots."""
    rows = await conn.fetch(
        "SELECT n.name || '+' || r.shortname AS username FROM robot r JOIN namespace n ON n.id = r.namespace_id"
        " WHERE r.namespace_id = $1",
        namespace_id,
    )
    return [row["username"] for row in rows]


async def set_email(conn: asyncpg.Connection, user: InstallUser, email: str) -> None:
    await conn.execute("UPDATE namespace SET email = $2 WHERE id = $1", user.namespace_id, email)


async def set_password_hash(conn: asyncpg.Connection, user: InstallUser, password_hash: str) -> None:
    await conn.execute("UPDATE app_user SET password_hash = $2 WHERE id = $1", user.id, password_hash)


async def set_enabled(conn: asyncpg.Connection, user: InstallUser, enabled: bool) -> None:
    await conn.execute("UPDATE app_user SET enabled = $2 WHERE id = $1", user.id, enabled)


async def mark_user_for_deletion(conn: asyncpg.Connection, user: InstallUser) -> None:
    """Delete the user at once (its API tokens, memberships and permissions go with it) and queue its
    namespace for purging: renamed out of the way, so the name is free again and nothing reaches
    the old content (the garbage collector's next pass deletes it, services/gc/repository_purge.py)."""
    async with conn.transaction():
        await conn.execute("DELETE FROM app_user WHERE id = $1", user.id)
        await conn.execute(
            "UPDATE namespace SET name = 'deleted~' || gen_random_uuid(), marked_for_deletion = true"
            " WHERE id = $1",
            user.namespace_id,
        )


async def initialize_first_user(
    conn: asyncpg.Connection, username: str, password: str, email: str | None, *, with_token: bool
) -> str | None:
    """Create the installation's first user, a superuser, and with_token an API token with every
    scope (returned); InstallNotEmptyError once any user exists."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _INITIALIZE_LOCK_KEY)
        if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM app_user)"):
            raise InstallNotEmptyError("Cannot initialize user in a non-empty database")
        user = await create_user(conn, username, password, superuser=True, email=email)
        if not with_token:
            return None
        token = await create_api_token(conn, user.id, "initialize", SCOPES, None)
        return token.token
