"""Explicit permissions on one repository: for users, robots of its namespace, and teams of its organization.

Rules (Quay's): the owner of a user namespace is always admin of its repositories, so it gets no
explicit permission; robots must belong to the repository's namespace and teams to its organization.
Unknown accounts and teams, and broken rules, raise the account layer's errors (AccountRuleError
when setting, AccountNotFoundError when reading or deleting what does not exist).
"""

from __future__ import annotations

import asyncpg
from pydantic import BaseModel

from shared.auth.accounts import AccountNotFoundError, AccountRuleError, find_account
from shared.auth.identity import Identity
from shared.auth.permissions import Role
from shared.auth.teams import find_team


class PermissionHolder(BaseModel):
    """A user or robot holding a permission; ``is_org_member`` only for organization repositories."""

    name: str
    role: Role
    is_robot: bool
    is_org_member: bool | None


class TeamPermission(BaseModel):
    name: str
    role: Role


_ACCOUNT_PERMISSIONS = """
    SELECT p.role, COALESCE(u.username, n.name || '+' || rb.shortname) AS name, p.robot_id IS NOT NULL AS is_robot,
        CASE WHEN (SELECT kind FROM namespace WHERE id = $2) <> 'organization' THEN NULL
             WHEN p.robot_id IS NOT NULL THEN true
             ELSE EXISTS (SELECT 1 FROM team t JOIN team_member m ON m.team_id = t.id
                          WHERE t.namespace_id = $2 AND m.user_id = p.user_id) END AS is_org_member
    FROM repository_permission p
    LEFT JOIN app_user u ON u.id = p.user_id
    LEFT JOIN robot rb ON rb.id = p.robot_id LEFT JOIN namespace n ON n.id = rb.namespace_id
    WHERE p.repository_id = $1 AND p.team_id IS NULL
"""


async def account_permissions(
    conn: asyncpg.Connection, repository_id: int, namespace_id: int
) -> list[PermissionHolder]:
    """The users and robots with an explicit permission on the repository, by name."""
    rows = await conn.fetch(_ACCOUNT_PERMISSIONS + " ORDER BY 2", repository_id, namespace_id)
    return [PermissionHolder(**dict(row)) for row in rows]


def _no_permission(name: str) -> AccountNotFoundError:
    return AccountNotFoundError(f"no permission for {name!r} on this repository")


async def _holder(conn: asyncpg.Connection, namespace_id: int, name: str) -> Identity:
    """The user or robot that may hold a permission; AccountNotFoundError (no permission) otherwise."""
    try:
        return await find_account(conn, name, robots_of=namespace_id)
    except AccountNotFoundError as error:
        raise _no_permission(name) from error


async def account_permission(
    conn: asyncpg.Connection, repository_id: int, namespace_id: int, name: str
) -> PermissionHolder:
    """The explicit permission of the user or robot ``name``; AccountNotFoundError when it has none."""
    account = await _holder(conn, namespace_id, name)
    row = await conn.fetchrow(
        _ACCOUNT_PERMISSIONS + f" AND p.{account.kind}_id = $3",
        repository_id,
        namespace_id,
        account.id,
    )
    if row is None:
        raise _no_permission(name)
    return PermissionHolder(**dict(row))


async def set_account_permission(
    conn: asyncpg.Connection, repository_id: int, namespace_id: int, name: str, role: Role
) -> PermissionHolder:
    """Give the user or robot ``name`` the role on the repository (replacing its previous one)."""
    try:
        account = await find_account(conn, name, robots_of=namespace_id)
    except AccountNotFoundError as error:
        raise AccountRuleError(f"Invalid username: {name}") from error
    if account.kind == "user" and account.namespace_id == namespace_id:
        raise AccountRuleError("Namespace owner must always be admin.")
    column = f"{account.kind}_id"
    await conn.execute(
        f"INSERT INTO repository_permission (repository_id, {column}, role) VALUES ($1, $2, $3)"
        f" ON CONFLICT (repository_id, {column}) WHERE {column} IS NOT NULL DO UPDATE SET role = $3",
        repository_id,
        account.id,
        role,
    )
    return await account_permission(conn, repository_id, namespace_id, account.name)


async def delete_account_permission(
    conn: asyncpg.Connection, repository_id: int, namespace_id: int, name: str
) -> None:
    """Remove the explicit permission of the user or robot ``name``."""
    account = await _holder(conn, namespace_id, name)
    deleted = await conn.fetchval(
        f"DELETE FROM repository_permission WHERE repository_id = $1 AND {account.kind}_id = $2 RETURNING id",
        repository_id,
        account.id,
    )
    if deleted is None:
        raise _no_permission(name)


async def team_permissions(conn: asyncpg.Connection, repository_id: int) -> list[TeamPermission]:
    rows = await conn.fetch(
        "SELECT t.name, p.role FROM repository_permission p JOIN team t ON t.id = p.team_id"
        " WHERE p.repository_id = $1 ORDER BY t.name",
        repository_id,
    )
    return [TeamPermission(**dict(row)) for row in rows]


async def team_permission(
    conn: asyncpg.Connection, repository_id: int, namespace_id: int, name: str
) -> TeamPermission:
    """The team's permission; AccountNotFoundError for an unknown team or one without permission."""
    team = await find_team(conn, namespace_id, name)
    role = None
    if team is not None:
        role = await conn.fetchval(
            "SELECT role FROM repository_permission WHERE repository_id = $1 AND team_id = $2",
            repository_id,
            team.id,
        )
    if role is None:
        raise _no_permission(f"team {name}")
    return TeamPermission(name=name, role=role)


async def set_team_permission(
    conn: asyncpg.Connection, repository_id: int, namespace_id: int, name: str, role: Role
) -> TeamPermission:
    """Give a team of the repository's organization the role (replacing its previous one)."""
    team = await find_team(conn, namespace_id, name)
    if team is None:
        raise AccountRuleError(f"Invalid team: {name}")
    await conn.execute(
        "INSERT INTO repository_permission (repository_id, team_id, role) VALUES ($1, $2, $3)"
        " ON CONFLICT (repository_id, team_id) WHERE team_id IS NOT NULL DO UPDATE SET role = $3",
        repository_id,
        team.id,
        role,
    )
    return TeamPermission(name=team.name, role=role)


async def delete_team_permission(
    conn: asyncpg.Connection, repository_id: int, namespace_id: int, name: str
) -> None:
    team = await find_team(conn, namespace_id, name)
    deleted = None
    if team is not None:
        deleted = await conn.fetchval(
            "DELETE FROM repository_permission WHERE repository_id = $1 AND team_id = $2 RETURNING id",
            repository_id,
            team.id,
        )
    if deleted is None:
        raise _no_permission(f"team {name}")


class TeamRepositoryPermission(BaseModel):
    """A team's permission on one repository of its organization."""

    repository: str
    is_public: bool
    role: Role


async def team_repository_permissions(
    conn: asyncpg.Connection, team_id: int, *, after: str, limit: int
) -> list[TeamRepositoryPermission]:
    """The team's permissions by repository name (bytewise), at most ``limit`` after the name ``after``
    ("" for the first); repositories being deleted are left out."""
    rows = await conn.fetch(
        "SELECT r.name AS repository, r.visibility = 'public' AS is_public, p.role"
        " FROM repository_permission p JOIN repository r ON r.id = p.repository_id"
        " WHERE p.team_id = $1 AND r.state <> 'MARKED_FOR_DELETION' AND r.name COLLATE \"C\" > $2"
        ' ORDER BY r.name COLLATE "C" LIMIT $3',
        team_id,
        after,
        limit,
    )
    return [TeamRepositoryPermission(**dict(row)) for row in rows]
