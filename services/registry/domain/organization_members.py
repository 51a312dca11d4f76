"""Who belongs to an organization and what they were given directly (Quay's organization members and
outside collaborators).

Rules (Quay's): a member is a user in at least one of the organization's teams; a collaborator is a
user in none of them with an explicit permission on one of its repositories. Robots are never listed
as either, though one robot of the organization can be looked up as a member. Repositories being
deleted are left out. Pages are keyset pages by user name (bytewise order), each at most ``limit``
users; a page starts after the name ``after`` ("" for the first).
"""

from __future__ import annotations

from typing import Literal

import asyncpg
from pydantic import BaseModel

from shared.auth.identity import Identity
from shared.auth.permissions import Role


class RepositoryGrant(BaseModel):
    """An explicit permission of the account on one repository of the organization."""

    repository: str
    role: Role


class OrganizationAccount(BaseModel):
    """A user or robot, its teams in the organization (by name) and its explicit permissions there."""

    name: str
    kind: Literal["user", "robot"]
    teams: list[str]
    grants: list[RepositoryGrant]


# Both pages are driven from the organization's own rows (its teams, its repositories), so their
# cost follows the organization's size, not the installation's number of users.
_MEMBERS = (
    "SELECT u.id, u.username FROM team t JOIN team_member m ON m.team_id = t.id JOIN app_user u ON u.id = m.user_id"
    ' WHERE t.namespace_id = $1 AND u.username COLLATE "C" > $2'
    ' GROUP BY u.id ORDER BY u.username COLLATE "C" LIMIT $3'
)
_COLLABORATORS = (
    "SELECT u.id, u.username FROM repository r JOIN repository_permission p ON p.repository_id = r.id"
    " JOIN app_user u ON u.id = p.user_id"
    " WHERE r.namespace_id = $1 AND r.state <> 'MARKED_FOR_DELETION' AND u.username COLLATE \"C\" > $2"
    " AND NOT EXISTS (SELECT 1 FROM team t JOIN team_member m ON m.team_id = t.id"
    " WHERE t.namespace_id = $1 AND m.user_id = u.id)"
    ' GROUP BY u.id ORDER BY u.username COLLATE "C" LIMIT $3'
)


async def member_page(
    conn: asyncpg.Connection, organization_id: int, *, after: str, limit: int
) -> list[OrganizationAccount]:
    """The users in the organization's teams, by name, with their teams and explicit permissions."""
    users = await conn.fetch(_MEMBERS, organization_id, after, limit)
    return await _with_teams_and_grants(
        conn, organization_id, "user", [(row["id"], row["username"]) for row in users]
    )


async def collaborator_page(
    conn: asyncpg.Connection, organization_id: int, *, after: str, limit: int
) -> list[OrganizationAccount]:
    """The users outside every team of the organization with an explicit permission on one of its
    repositories, by name, with those permissions (their ``teams`` are empty)."""
    users = await conn.fetch(_COLLABORATORS, organization_id, after, limit)
    return await _with_teams_and_grants(
        conn, organization_id, "user", [(row["id"], row["username"]) for row in users]
    )


async def organization_member(
    conn: asyncpg.Connection, organization_id: int, account: Identity
) -> OrganizationAccount | None:
    """A user in one of the organization's teams, or a robot of the organization (in a team or not);
    None for anyone else."""
    [found] = await _with_teams_and_grants(conn, organization_id, account.kind, [(account.id, account.name)])
    if found.teams or (account.kind == "robot" and account.namespace_id == organization_id):
        return found
    return None


async def _with_teams_and_grants(
    conn: asyncpg.Connection,
    organization_id: int,
    kind: Literal["user", "robot"],
    accounts: list[tuple[int, str]],
) -> list[OrganizationAccount]:
    """The accounts (id, name) with their teams and explicit permissions: two queries for them all."""
    ids = [account_id for account_id, _ in accounts]
    column = f"{kind}_id"
    team_rows = await conn.fetch(
        f"SELECT m.{column} AS holder, t.name FROM team t JOIN team_member m ON m.team_id = t.id"
        f' WHERE t.namespace_id = $1 AND m.{column} = ANY($2::bigint[]) ORDER BY t.name COLLATE "C"',
        organization_id,
        ids,
    )
    grant_rows = await conn.fetch(
        f"SELECT p.{column} AS holder, r.name AS repository, p.role"
        " FROM repository_permission p JOIN repository r ON r.id = p.repository_id"
        f" WHERE r.namespace_id = $1 AND r.state <> 'MARKED_FOR_DELETION' AND p.{column} = ANY($2::bigint[])"
        ' ORDER BY r.name COLLATE "C"',
        organization_id,
        ids,
    )
    teams: dict[int, list[str]] = {account_id: [] for account_id in ids}
    grants: dict[int, list[RepositoryGrant]] = {account_id: [] for account_id in ids}
    for row in team_rows:
        teams[row["holder"]].append(row["name"])
    for row in grant_rows:
        grants[row["holder"]].append(RepositoryGrant(repository=row["repository"], role=row["role"]))
    return [
        OrganizationAccount(name=name, kind=kind, teams=teams[account_id], grants=grants[account_id])
        for account_id, name in accounts
    ]
