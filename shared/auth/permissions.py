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
_ROLE_BY_RANK: dict[int, Role] = {1: "read", 2: "write", 3: "admin"}

_MEMBER_OF_TEAM = """
    (tm.user_id = $2 AND $3 = 'user') OR (tm.robot_id = $2 AND $3 = 'robot')
"""


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


def repository_rank_sql(identity: Identity | None, params: list[object], repository: str = "r") -> str:
    """SQL expression of the identity's rank (ROLE_RANK, 0 = no access) on a repository row.

    ``repository`` is the alias of a row with columns id, namespace_id and visibility. The
    identity's values are appended to ``params``; their placeholders follow those already there.
    This states every repository rule; ``repository_role`` evaluates it for what needs the database.
    """
    public = f"CASE WHEN {repository}.visibility = 'public' THEN 1 ELSE 0 END"
    if identity is None:
        return public
    if identity.is_superuser:
        return str(ROLE_RANK["admin"])
    params.append(identity.id)
    who = f"${len(params)}"
    member = f"tm.{identity.kind}_id = {who}"
    owner = "false"
    if identity.kind == "user":
        params.append(identity.namespace_id)
        owner = f"{repository}.namespace_id = ${len(params)}"
    ranks = " ".join(f"WHEN '{role}' THEN {rank}" for role, rank in ROLE_RANK.items())
    return f"""GREATEST(
        {public},
        CASE WHEN {owner} OR EXISTS (
            SELECT 1 FROM team t JOIN team_member tm ON tm.team_id = t.id
            WHERE t.namespace_id = {repository}.namespace_id AND t.role = 'admin' AND {member}
        ) THEN {ROLE_RANK["admin"]} ELSE 0 END,
        (SELECT COALESCE(max(CASE p.role {ranks} END), 0) FROM repository_permission p
         WHERE p.repository_id = {repository}.id AND (
            p.{identity.kind}_id = {who}
            OR p.team_id IN (SELECT tm.team_id FROM team_member tm WHERE {member})))
    )"""


async def repository_role(
    conn: asyncpg.Connection,
    identity: Identity | None,
    repository_id: int,
    namespace_id: int,
    visibility: str,
) -> Role | None:
    """The identity's effective role on the repository (None: no access at all)."""
    # Rules decidable without the database are answered first (pulls are a hot path); they agree
    # with repository_rank_sql, which states every rule.
    if identity is None:
        return "read" if visibility == "public" else None
    if identity.is_superuser or (identity.kind == "user" and identity.namespace_id == namespace_id):
        return "admin"
    params: list[object] = [repository_id, namespace_id, visibility]
    rank = await conn.fetchval(
        f"SELECT {repository_rank_sql(identity, params)}"
        " FROM (VALUES ($1::bigint, $2::bigint, $3::text)) AS r (id, namespace_id, visibility)",
        *params,
    )
    return _ROLE_BY_RANK.get(rank)
