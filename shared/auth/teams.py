"""Organization teams and their members.

Rules: a team's role is admin, creator or member (see permissions.namespace_role for what each
allows). The 'owners' team, created with the organization, is always admin, cannot be deleted and
always keeps at least one user, so an organization never loses its last administrator.
"""

from __future__ import annotations

from typing import Literal

import asyncpg
from pydantic import BaseModel

from shared.auth.accounts import AccountNotFoundError, AccountRuleError
from shared.auth.identity import Identity
from shared.auth.names import check_team_name

TeamRole = Literal["admin", "creator", "member"]
OWNERS_TEAM = "owners"


class Team(BaseModel):
    id: int
    name: str
    role: TeamRole
    description: str


async def find_team(conn: asyncpg.Connection, namespace_id: int, name: str) -> Team | None:
    row = await conn.fetchrow(
        "SELECT id, name, role, description FROM team WHERE namespace_id = $1 AND name = $2",
        namespace_id,
        name,
    )
    return Team(**dict(row)) if row else None


async def _existing_team(conn: asyncpg.Connection, namespace_id: int, name: str) -> Team:
    team = await find_team(conn, namespace_id, name)
    if team is None:
        raise AccountNotFoundError(f"no team {name!r}")
    return team


async def save_team(
    conn: asyncpg.Connection,
    namespace_id: int,
    name: str,
    *,
    role: TeamRole | None,
    description: str | None,
) -> tuple[Team, bool]:
    """Create the team (role 'member' unless given) or change the given fields; (team, created)."""
    check_team_name(name)
    if name == OWNERS_TEAM and role not in (None, "admin"):
        raise AccountRuleError("the owners team's role is always admin")
    async with conn.transaction():
        created = await conn.fetchrow(
            "INSERT INTO team (namespace_id, name, role, description) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (namespace_id, name) DO NOTHING RETURNING id, name, role, description",
            namespace_id,
            name,
            role or "member",
            description or "",
        )
        if created is not None:
            return Team(**dict(created)), True
        updated = await conn.fetchrow(
            "UPDATE team SET role = COALESCE($3, role), description = COALESCE($4, description)"
            " WHERE namespace_id = $1 AND name = $2 RETURNING id, name, role, description",
            namespace_id,
            name,
            role,
            description,
        )
    if updated is None:
        raise AccountNotFoundError(f"no team {name!r}")
    return Team(**dict(updated)), False


async def delete_team(conn: asyncpg.Connection, namespace_id: int, name: str) -> None:
    """Delete a team with its memberships and repository permissions."""
    if name == OWNERS_TEAM:
        raise AccountRuleError("the owners team cannot be deleted")
    deleted = await conn.fetchval(
        "DELETE FROM team WHERE namespace_id = $1 AND name = $2 RETURNING id", namespace_id, name
    )
    if deleted is None:
        raise AccountNotFoundError(f"no team {name!r}")


async def add_team_member(
    conn: asyncpg.Connection, namespace_id: int, team_name: str, member: Identity
) -> None:
    """Add a user, or a robot of the organization (see accounts.find_account); adding twice is a no-op."""
    team = await _existing_team(conn, namespace_id, team_name)
    await conn.execute(
        f"INSERT INTO team_member (team_id, {member.kind}_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        team.id,
        member.id,
    )


async def remove_team_member(
    conn: asyncpg.Connection, namespace_id: int, team_name: str, member: Identity
) -> None:
    async with conn.transaction():
        team = await _existing_team(conn, namespace_id, team_name)
        # Serialises removals from one team, so two removals cannot both leave 'owners' empty.
        await conn.execute("SELECT 1 FROM team WHERE id = $1 FOR UPDATE", team.id)
        removed = await conn.fetchval(
            f"DELETE FROM team_member WHERE team_id = $1 AND {member.kind}_id = $2 RETURNING team_id",
            team.id,
            member.id,
        )
        if removed is None:
            raise AccountNotFoundError(f"{member.name!r} is not a member of team {team_name!r}")
        if team.name == OWNERS_TEAM and not await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM team_member WHERE team_id = $1 AND user_id IS NOT NULL)", team.id
        ):
            raise AccountRuleError("the owners team must keep at least one user")
