"""Managing the installation's users: Quay's /api/v1/superuser/users/{username} (getInstallUser,
changeInstallUser, deleteInstallUser) and POST /api/v1/user/initialize (the first user).

As in Quay, superusers cannot be changed or deleted through the API (so no superuser disables or
deletes itself). A disabled user cannot authenticate at all: no password, API token or robot of its
namespace is accepted, and the verified-credentials cache forgets them at once.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from fastapi import Depends, Request, Response
from pydantic import Field

from services.registry.api.common import NO_NUL, ApiModel, api_router, bad_request, db_connection, not_found
from services.registry.api.security import ApiCaller, caller_user, require_superuser, user_with_scope
from services.registry.context import RegistryContext, get_context
from services.registry.domain import install_users
from services.registry.domain.audit import client_ip
from services.registry.domain.entity_search import avatar
from services.registry.domain.install_users import InstallUser
from shared.auth.names import EmailAddress
from shared.auth.passwords import hash_secret
from shared.usage_logs import record

router = api_router(tags=["Users"])
_superuser_credentials = user_with_scope("super:user")


class UserChange(ApiModel):
    """Quay's UpdateUser: fields left out stay as they are; other fields Quay knows are ignored."""

    email: EmailAddress | None = None
    password: str | None = Field(default=None, min_length=8, max_length=1024, pattern=NO_NUL)
    enabled: bool | None = None


class FirstUser(ApiModel):
    username: str = Field(max_length=255)
    password: str = Field(min_length=8, max_length=1024, pattern=NO_NUL)
    email: EmailAddress | None = None
    access_token: bool = Field(default=False, description="Also answer an API token with every scope")


def install_user_view(user: InstallUser) -> dict[str, Any]:
    return {
        "kind": "user",
        "name": user.username,
        "username": user.username,
        "email": user.email,
        "avatar": avatar(user.username, "user"),
        "super_user": user.is_superuser,
        "enabled": user.enabled,
    }


async def _superuser(caller: ApiCaller = Depends(_superuser_credentials)) -> ApiCaller:
    require_superuser(caller)
    return caller


async def _managed_user(conn: asyncpg.Connection, username: str) -> InstallUser:
    user = await install_users.find_install_user(conn, username)
    if user is None:
        raise not_found(f"no user {username[:255]!r}")
    return user


async def _account_names(conn: asyncpg.Connection, user: InstallUser) -> list[str]:
    """The user's name and its namespace's robots': what it and its robots log in as."""
    return [user.username, *await install_users.robot_usernames(conn, user.namespace_id)]


def _forget_credentials(context: RegistryContext, usernames: list[str]) -> None:
    """Drop the remembered Basic verifications of these accounts (disabled, deleted, new password)."""
    for username in usernames:
        context.credentials.forget(username)


@router.get("/superuser/users/{username}")
async def get_install_user(
    username: str,
    _caller: ApiCaller = Depends(_superuser),
    conn: asyncpg.Connection = Depends(db_connection),
) -> dict[str, Any]:
    """One user of the installation (superusers only; robots and organizations answer 404)."""
    return install_user_view(await _managed_user(conn, username))


@router.put("/superuser/users/{username}")
async def change_install_user(
    username: str,
    body: UserChange,
    request: Request,
    caller: ApiCaller = Depends(_superuser),
    conn: asyncpg.Connection = Depends(db_connection),
    context: RegistryContext = Depends(get_context),
) -> dict[str, Any]:
    """Change a user's e-mail address or password, or disable or enable it (400 for a superuser)."""
    user = await _managed_user(conn, username)
    if user.is_superuser:
        raise bad_request("Cannot update a superuser")

    async def log(kind: str, metadata: dict[str, Any]) -> None:
        await record(
            conn,
            kind,
            performer=caller.identity,
            ip=client_ip(request),
            namespace=user.username,
            metadata={"username": user.username, "superuser": caller_user(caller).name, **metadata},
        )

    password_hash = await hash_secret(body.password) if body.password is not None else None
    async with conn.transaction():
        if body.email is not None:
            await install_users.set_email(conn, user, body.email)
            await log("user_change_email", {"email": body.email, "old_email": user.email})
        if password_hash is not None:
            await install_users.set_password_hash(conn, user, password_hash)
            await log("user_change_password", {})
        if body.enabled is not None and body.enabled != user.enabled:
            await install_users.set_enabled(conn, user, body.enabled)
            await log("user_enable" if body.enabled else "user_disable", {})
    if body.password is not None or body.enabled is False:
        _forget_credentials(context, await _account_names(conn, user))
    return install_user_view(await _managed_user(conn, username))


@router.delete("/superuser/users/{username}", status_code=204)
async def delete_install_user(
    username: str,
    request: Request,
    caller: ApiCaller = Depends(_superuser),
    conn: asyncpg.Connection = Depends(db_connection),
    context: RegistryContext = Depends(get_context),
) -> Response:
    """Delete a user with its namespace (400 for a superuser): gone at once, its content purged by
    the garbage collector's next pass."""
    user = await _managed_user(conn, username)
    if user.is_superuser:
        raise bad_request("Cannot delete a superuser")
    accounts = await _account_names(conn, user)
    async with conn.transaction():
        await install_users.mark_user_for_deletion(conn, user)
        await record(
            conn,
            "user_delete",
            performer=caller.identity,
            ip=client_ip(request),
            namespace=None,
            metadata={"username": user.username, "superuser": caller_user(caller).name},
        )
    _forget_credentials(context, accounts)
    return Response(status_code=204)


@router.post("/user/initialize")
async def initialize_first_user(
    body: FirstUser, conn: asyncpg.Connection = Depends(db_connection)
) -> dict[str, Any]:
    """Create the first user of an empty installation, a superuser, with an API token if asked
    (every scope); 400 once any user exists. Needs no credentials: there is no one to present them."""
    try:
        token = await install_users.initialize_first_user(
            conn, body.username, body.password, body.email, with_token=body.access_token
        )
    except install_users.InstallNotEmptyError as error:
        raise bad_request(str(error)) from error
    answer: dict[str, Any] = {"username": body.username, "email": body.email}
    if token is not None:
        answer["access_token"] = token
    return answer
