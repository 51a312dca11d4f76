"""The one write a MIRROR repository accepts: its mirror's robot pushing the mirrored content."""

from __future__ import annotations

import asyncpg

from shared.auth.identity import Identity


async def is_mirror_robot(conn: asyncpg.Connection, identity: Identity | None, repository_id: int) -> bool:
    """True when the identity is the robot of the repository's mirror configuration."""
    if identity is None or identity.kind != "robot":
        return False
    found = await conn.fetchval(
        "SELECT 1 FROM mirror_config WHERE repository_id = $1 AND robot_id = $2", repository_id, identity.id
    )
    return found is not None
