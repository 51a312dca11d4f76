"""Entities (users, robots, teams, organizations) whose names start with a prefix.

Each query matches a byte-order range, [prefix, prefix with its last character incremented), on a
COLLATE "C" index (migration 0009), in the index's order, so a LIMIT reads only the rows it answers.
"""

from __future__ import annotations

import hashlib
import math

import asyncpg
from pydantic import BaseModel

from shared.auth.identity import Identity

# Quay's avatar palette; the colour is picked from the name's hash, as Quay's avatars do.
_AVATAR_COLORS = (
    "#969696", "#aec7e8", "#ff7f0e", "#ffbb78", "#2ca02c", "#98df8a", "#d62728", "#ff9896",
    "#9467bd", "#c5b0d5", "#8c564b", "#c49c94", "#e377c2", "#f7b6d2", "#7f7f7f", "#c7c7c7",
    "#bcbd22", "#1f77b4", "#17becf", "#9edae5", "#393b79", "#5254a3", "#6b6ecf", "#9c9ede",
    "#9ecae1", "#31a354", "#b5cf6b", "#a1d99b", "#8c6d31", "#ad494a", "#e7ba52", "#a55194",
)  # fmt: skip
_AVATAR_HEX_DIGITS = math.ceil(math.log(len(_AVATAR_COLORS), 16))


class UserMatch(BaseModel):
    name: str
    is_org_member: bool


class OrganizationMatch(BaseModel):
    name: str
    is_org_member: bool


def avatar(name: str, kind: str) -> dict[str, str]:
    """Quay's avatar data, hashed from the name (never the e-mail address, which is private)."""
    digest = hashlib.md5(name.encode(), usedforsecurity=False).hexdigest()
    color = _AVATAR_COLORS[int(digest[:_AVATAR_HEX_DIGITS], 16) % len(_AVATAR_COLORS)]
    return {"name": name, "hash": digest, "color": color, "kind": kind}


def prefix_range(prefix: str) -> tuple[str, str]:
    """The byte-order range of the strings starting with the prefix (of ASCII characters)."""
    if not prefix:
        return "", chr(0x10FFFF)
    return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)


_IN_RANGE = '{column} COLLATE "C" >= $1 AND {column} COLLATE "C" < $2 ORDER BY {column} COLLATE "C"'


async def matching_users(
    conn: asyncpg.Connection, prefix: str, organization_id: int | None, limit: int
) -> list[UserMatch]:
    """Enabled users by name; ``is_org_member`` tells whether one is in a team of the organization."""
    rows = await conn.fetch(
        "SELECT u.id, u.username FROM app_user u WHERE u.enabled AND "
        + _IN_RANGE.format(column="u.username")
        + " LIMIT $3",
        *prefix_range(prefix),
        limit,
    )
    members = await _organization_members(conn, [row["id"] for row in rows], organization_id)
    return [UserMatch(name=row["username"], is_org_member=row["id"] in members) for row in rows]


async def _organization_members(
    conn: asyncpg.Connection, user_ids: list[int], organization_id: int | None
) -> set[int]:
    """Which of the users are in a team of the organization."""
    if organization_id is None or not user_ids:
        return set()
    rows = await conn.fetch(
        "SELECT DISTINCT tm.user_id FROM team_member tm JOIN team t ON t.id = tm.team_id"
        " WHERE tm.user_id = ANY($1::bigint[]) AND t.namespace_id = $2",
        user_ids,
        organization_id,
    )
    return {row["user_id"] for row in rows}


async def matching_robots(
    conn: asyncpg.Connection, prefix: str, namespace_id: int, namespace: str, limit: int
) -> list[str]:
    """The full names of the namespace's robots whose short name starts with the prefix."""
    rows = await conn.fetch(
        "SELECT r.shortname FROM robot r WHERE r.namespace_id = $3 AND "
        + _IN_RANGE.format(column="r.shortname")
        + " LIMIT $4",
        *prefix_range(prefix),
        namespace_id,
        limit,
    )
    return [f"{namespace}+{row['shortname']}" for row in rows]


async def matching_teams(conn: asyncpg.Connection, prefix: str, namespace_id: int, limit: int) -> list[str]:
    """The organization's teams whose name starts with the prefix."""
    rows = await conn.fetch(
        "SELECT t.name FROM team t WHERE t.namespace_id = $3 AND "
        + _IN_RANGE.format(column="t.name")
        + " LIMIT $4",
        *prefix_range(prefix),
        namespace_id,
        limit,
    )
    return [row["name"] for row in rows]


async def matching_organizations(
    conn: asyncpg.Connection, prefix: str, member: Identity, limit: int
) -> list[OrganizationMatch]:
    """Live organizations whose name starts with the prefix (their existence is public), and whether
    ``member`` is in one of their teams (superusers belong everywhere)."""
    member_column = "tm.user_id" if member.kind == "user" else "tm.robot_id"
    rows = await conn.fetch(
        "SELECT n.name, $4 OR n.id IN ("
        "  SELECT t.namespace_id FROM team_member tm JOIN team t ON t.id = tm.team_id"
        f"  WHERE {member_column} = $3) AS is_org_member"
        " FROM namespace n WHERE n.kind = 'organization' AND NOT n.marked_for_deletion AND "
        + _IN_RANGE.format(column="n.name")
        + " LIMIT $5",
        *prefix_range(prefix),
        member.id,
        member.is_superuser,
        limit,
    )
    return [OrganizationMatch(**dict(row)) for row in rows]
