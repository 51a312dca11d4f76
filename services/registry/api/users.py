"""Users: the caller (/api/v1/user/), public profiles (/api/v1/users/{username}) and the superuser's
list and creation of users (/api/v1/superuser/users/)."""

from __future__ import annotations

from typing import Any

import asyncpg
from fastapi import Depends
from pydantic import Field

from services.registry.api.common import ApiModel, api_router, db_connection, not_found
from services.registry.api.security import (
    ApiCaller,
    api_caller,
    caller_user,
    require_superuser,
    user_with_scope,
)
from shared.auth.accounts import create_user
from shared.auth.identity import Identity
from shared.auth.names import EmailAddress
from shared.auth.passwords import generate_secret

router = api_router(tags=["Users"])
_superuser = user_with_scope("super:user")


class NewUser(ApiModel):
    username: str = Field(max_length=255)
    email: EmailAddress | None = None


async def _organizations_of(conn: asyncpg.Connection, user: Identity) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT n.name, bool_or(t.role = 'admin') AS is_admin, bool_or(t.role IN ('admin', 'creator')) AS creator"
        " FROM team_member tm JOIN team t ON t.id = tm.team_id JOIN namespace n ON n.id = t.namespace_id"
        " WHERE tm.user_id = $1 AND NOT n.marked_for_deletion GROUP BY n.name ORDER BY n.name",
        user.id,
    )
    return [
        {
            "name": row["name"],
            "is_org_admin": row["is_admin"] or user.is_superuser,
            "can_create_repo": row["creator"] or user.is_superuser,
        }
        for row in rows
    ]


@router.get("/user/")
async def current_user(
    caller: ApiCaller = Depends(user_with_scope("user:read")),
    conn: asyncpg.Connection = Depends(db_connection),
) -> dict[str, Any]:
    """The authenticated user, with the organizations it belongs to."""
    user = caller_user(caller)
    namespace = await conn.fetchrow(
        "SELECT email, tag_expiration_s FROM namespace WHERE id = $1", user.namespace_id
    )
    return {
        "anonymous": False,
        "username": user.name,
        "email": namespace["email"],
        "is_me": True,
        "can_create_repo": True,
        "tag_expiration_s": namespace["tag_expiration_s"],
        "super_user": user.is_superuser,
        "organizations": await _organizations_of(conn, user),
    }


@router.get("/users/{username}")
async def public_user(
    username: str, caller: ApiCaller = Depends(api_caller), conn: asyncpg.Connection = Depends(db_connection)
) -> dict[str, Any]:
    """Anyone may see that a user exists; superusers also see whether it is one."""
    is_superuser = await conn.fetchval("SELECT is_superuser FROM app_user WHERE username = $1", username)
    if is_superuser is None:
        raise not_found(f"no user {username!r}")
    view: dict[str, Any] = {"anonymous": False, "username": username}
    if caller.identity is not None and caller.identity.is_superuser:
        view["super_user"] = is_superuser
    return view


@router.get("/superuser/users/")
async def list_users(
    caller: ApiCaller = Depends(_superuser), conn: asyncpg.Connection = Depends(db_connection)
) -> dict[str, Any]:
    """Every user of the installation (superusers only)."""
    require_superuser(caller)
    rows = await conn.fetch(
        "SELECT u.username, n.email, u.is_superuser, u.enabled FROM app_user u JOIN namespace n ON n.id = u.namespace_id"
        " ORDER BY u.username"
    )
    return {
        "users": [
            {
                "kind": "user",
                "name": row["username"],
                "username": row["username"],
                "email": row["email"],
                "super_user": row["is_superuser"],
                "enabled": row["enabled"],
            }
            for row in rows
        ]
    }


@router.post("/superuser/users/")
async def create_install_user(
    body: NewUser, caller: ApiCaller = Depends(_superuser), conn: asyncpg.Connection = Depends(db_connection)
) -> dict[str, Any]:
    """Create a user with a generated password, returned this once (superusers only)."""
    require_superuser(caller)
    password = generate_secret()
    await create_user(conn, body.username, password, email=body.email)
    return {"username": body.username, "email": body.email, "password": password}
