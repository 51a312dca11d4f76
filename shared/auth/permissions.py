"""What an identity may do with a repository or in a namespace.

Roles are ordered read < write < admin. Sources, highest wins: superuser; the user's own
namespace; organization teams (admin team -> admin on every repository of the org); explicit
repository permissions of the user, its teams or the robot; public visibility (read for all).
"""

from __future__ import annotations

from typing import Literal

import asyncpg

from shared.auth.identity import Identity

Role = Literal["read", "write", "admin"]
ROLE_RANK: dict[str, int] = {"read": 1, "write": 2, "admin": 3}

_MEMBER_OF_TEAM = """
    (tm.user_id = $2 AND $3 = 'user') OR (tm.robot_id = $2 AND $3 = 'robot')
"""


def highest(roles: list[str]) -> Role | None:
    known = [role for role in roles if role in ROLE_RANK]
    return max(known, key=ROLE_RANK.__getitem__) if known else None  # type: ignore[return-value]


def allows(role: str | None, needed: Role) -> bool:
    return role is not None and ROLE_RANK[role] >= ROLE_RANK[needed]


async def team_roles_in_namespace(
    conn: asyncpg.Connection, identity: Identity, namespace_id: int
) -> list[str]:
    rows = await conn.fetch(
        "SELECT t.role FROM team t JOIN team_member tm ON tm.team_id = t.id"
        f" WHERE t.namespace_id = $1 AND ({_MEMBER_OF_TEAM})",
        namespace_id,
        identity.id,
        identity.kind,
    )
    return [row["role"] for row in rows]


async def namespace_role(
    conn: asyncpg.Connection, identity: Identity | None, namespace_id: int
) -> str | None:
    """'admin' for superusers, a user's own namespace and org admins; 'creator'/'member' from teams."""
    if identity is None:
        return None
    if identity.is_superuser or (identity.kind == "user" and identity.namespace_id == namespace_id):
        return "admin"
    roles = await team_roles_in_namespace(conn, identity, namespace_id)
    for role in ("admin", "creator", "member"):
        if role in roles:
            return role
    return None


async def can_create_repository(
    conn: asyncpg.Connection, identity: Identity | None, namespace_id: int
) -> bool:
    return await namespace_role(conn, identity, namespace_id) in ("admin", "creator")


async def repository_role(
    conn: asyncpg.Connection,
    identity: Identity | None,
    repository_id: int,
    namespace_id: int,
    visibility: str,
) -> Role | None:
    """The identity's effective role on the repository (None: no access at all)."""
    roles: list[str] = ["read"] if visibility == "public" else []
    if identity is None:
        return highest(roles)
    if await namespace_role(conn, identity, namespace_id) == "admin":
        return "admin"
    rows = await conn.fetch(
        "SELECT p.role FROM repository_permission p WHERE p.repository_id = $1 AND ("
        "   (p.user_id = $2 AND $3 = 'user') OR (p.robot_id = $2 AND $3 = 'robot')"
        "   OR p.team_id IN (SELECT tm.team_id FROM team_member tm WHERE " + _MEMBER_OF_TEAM + "))",
        repository_id,
        identity.id,
        identity.kind,
    )
    roles.extend(row["role"] for row in rows)
    return highest(roles)
