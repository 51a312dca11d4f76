"""Default permissions (Quay's permission prototypes): what a new repository of an organization grants.

A default permission gives a delegate (a user, a robot of the organization, or a team) a role on
every repository created in the organization, by anyone or only by one creator (the activating
user or robot). When a repository is created its creator gets admin on it, and for each delegate
the default for that creator wins over the default for anyone.
"""

from __future__ import annotations

import uuid
from typing import Literal

import asyncpg
from pydantic import BaseModel

from shared.auth.accounts import AccountExistsError, AccountNotFoundError, AccountRuleError, find_account
from shared.auth.identity import Identity
from shared.auth.permissions import Role
from shared.auth.teams import find_team


class Grantee(BaseModel):
    kind: Literal["user", "robot", "team"]
    id: int
    name: str


class DefaultPermission(BaseModel):
    uuid: uuid.UUID
    role: Role
    delegate: Grantee
    activating: Grantee | None


_SELECT = """
    SELECT p.uuid, p.role,
        CASE WHEN p.delegate_team_id IS NOT NULL THEN 'team'
             WHEN p.delegate_robot_id IS NOT NULL THEN 'robot' ELSE 'user' END AS delegate_kind,
        COALESCE(p.delegate_user_id, p.delegate_team_id, p.delegate_robot_id) AS delegate_id,
        COALESCE(du.username, dt.name, drn.name || '+' || dr.shortname) AS delegate_name,
        CASE WHEN p.activating_robot_id IS NOT NULL THEN 'robot'
             WHEN p.activating_user_id IS NOT NULL THEN 'user' END AS activating_kind,
        COALESCE(p.activating_user_id, p.activating_robot_id) AS activating_id,
        COALESCE(au.username, arn.name || '+' || ar.shortname) AS activating_name
    FROM default_permission p
    LEFT JOIN app_user du ON du.id = p.delegate_user_id
    LEFT JOIN team dt ON dt.id = p.delegate_team_id
    LEFT JOIN robot dr ON dr.id = p.delegate_robot_id
    LEFT JOIN namespace drn ON drn.id = dr.namespace_id
    LEFT JOIN app_user au ON au.id = p.activating_user_id
    LEFT JOIN robot ar ON ar.id = p.activating_robot_id
    LEFT JOIN namespace arn ON arn.id = ar.namespace_id
    WHERE p.namespace_id = $1 AND ($2::uuid IS NULL OR p.uuid = $2)
    ORDER BY p.id
"""


def _from_row(row: asyncpg.Record) -> DefaultPermission:
    activating = None
    if row["activating_kind"] is not None:
        activating = Grantee(
            kind=row["activating_kind"], id=row["activating_id"], name=row["activating_name"]
        )
    return DefaultPermission(
        uuid=row["uuid"],
        role=row["role"],
        delegate=Grantee(kind=row["delegate_kind"], id=row["delegate_id"], name=row["delegate_name"]),
        activating=activating,
    )


async def list_default_permissions(conn: asyncpg.Connection, namespace_id: int) -> list[DefaultPermission]:
    return [_from_row(row) for row in await conn.fetch(_SELECT, namespace_id, None)]


async def get_default_permission(
    conn: asyncpg.Connection, namespace_id: int, permission_uuid: uuid.UUID
) -> DefaultPermission:
    row = await conn.fetchrow(_SELECT, namespace_id, permission_uuid)
    if row is None:
        raise AccountNotFoundError("no such default permission")
    return _from_row(row)


async def _delegate(
    conn: asyncpg.Connection, namespace_id: int, kind: Literal["user", "team"], name: str
) -> Grantee:
    if kind == "team":
        team = await find_team(conn, namespace_id, name)
        if team is None:
            raise AccountRuleError(f"unknown delegate team {name!r}")
        return Grantee(kind="team", id=team.id, name=team.name)
    try:
        account = await find_account(conn, name, robots_of=namespace_id)
    except AccountNotFoundError as error:
        raise AccountRuleError(f"unknown delegate {name!r}") from error
    return Grantee(kind=account.kind, id=account.id, name=account.name)


async def _activating(conn: asyncpg.Connection, namespace_id: int, name: str) -> Grantee:
    try:
        account = await find_account(conn, name, robots_of=namespace_id)
    except AccountNotFoundError as error:
        raise AccountRuleError(f"unknown activating user {name!r}") from error
    return Grantee(kind=account.kind, id=account.id, name=account.name)


async def create_default_permission(
    conn: asyncpg.Connection,
    namespace_id: int,
    *,
    role: Role,
    delegate_kind: Literal["user", "team"],
    delegate_name: str,
    activating_name: str | None,
) -> DefaultPermission:
    """Add a default permission. A delegate of kind 'user' may name a robot ('<org>+<name>').

    Unknown delegates or activating users raise AccountRuleError; the same delegate and activating
    user twice raises AccountExistsError.
    """
    delegate = await _delegate(conn, namespace_id, delegate_kind, delegate_name)
    activating = await _activating(conn, namespace_id, activating_name) if activating_name else None
    columns = [f"delegate_{delegate.kind}_id"]
    values: list[object] = [delegate.id]
    if activating is not None:
        columns.append(f"activating_{activating.kind}_id")
        values.append(activating.id)
    permission_uuid = uuid.uuid4()
    placeholders = ", ".join(f"${index}" for index in range(4, 4 + len(values)))
    inserted = await conn.fetchval(
        f"INSERT INTO default_permission (uuid, namespace_id, role, {', '.join(columns)})"
        f" VALUES ($1, $2, $3, {placeholders}) ON CONFLICT DO NOTHING RETURNING id",
        permission_uuid,
        namespace_id,
        role,
        *values,
    )
    if inserted is None:
        raise AccountExistsError("a default permission for this delegate and creator already exists")
    return DefaultPermission(uuid=permission_uuid, role=role, delegate=delegate, activating=activating)


async def set_default_permission_role(
    conn: asyncpg.Connection, namespace_id: int, permission_uuid: uuid.UUID, role: Role
) -> DefaultPermission:
    await conn.execute(
        "UPDATE default_permission SET role = $3 WHERE namespace_id = $1 AND uuid = $2",
        namespace_id,
        permission_uuid,
        role,
    )
    return await get_default_permission(conn, namespace_id, permission_uuid)


async def delete_default_permission(
    conn: asyncpg.Connection, namespace_id: int, permission_uuid: uuid.UUID
) -> None:
    deleted = await conn.fetchval(
        "DELETE FROM default_permission WHERE namespace_id = $1 AND uuid = $2 RETURNING id",
        namespace_id,
        permission_uuid,
    )
    if deleted is None:
        raise AccountNotFoundError("no such default permission")


async def apply_default_permissions(
    conn: asyncpg.Connection, repository_id: int, namespace_id: int, creator: Identity
) -> None:
    """Grant a repository created just now by ``creator`` its initial permissions.

    Call it once, in the transaction that creates the repository. The creator gets admin (unless
    the namespace is the creator's own, where admin is implicit); every default permission of the
    namespace for anyone or for this creator is granted, the creator's own winning per delegate.
    """
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO repository_permission (repository_id, user_id, team_id, robot_id, role)"
            " SELECT DISTINCT ON (delegate_user_id, delegate_team_id, delegate_robot_id)"
            "     $1, delegate_user_id, delegate_team_id, delegate_robot_id, role"
            " FROM default_permission WHERE namespace_id = $2 AND ("
            "     (activating_user_id IS NULL AND activating_robot_id IS NULL)"
            f"     OR activating_{creator.kind}_id = $3)"
            # false sorts first: a default for this creator before the default for anyone.
            " ORDER BY delegate_user_id, delegate_team_id, delegate_robot_id,"
            "     activating_user_id IS NULL AND activating_robot_id IS NULL",
            repository_id,
            namespace_id,
            creator.id,
        )
        if creator.kind == "user" and creator.namespace_id == namespace_id:
            return
        column = f"{creator.kind}_id"
        await conn.execute(
            f"INSERT INTO repository_permission (repository_id, {column}, role) VALUES ($1, $2, 'admin')"
            f" ON CONFLICT (repository_id, {column}) WHERE {column} IS NOT NULL DO UPDATE SET role = 'admin'",
            repository_id,
            creator.id,
        )
