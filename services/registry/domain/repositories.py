"""Looking up and creating repositories by their '<namespace>/<name>' path."""

from __future__ import annotations

import asyncpg
from pydantic import BaseModel

from shared.auth.default_permissions import apply_default_permissions
from shared.auth.identity import Identity


class Repository(BaseModel):
    id: int
    namespace_id: int
    namespace: str
    name: str
    visibility: str
    state: str

    @property
    def full_name(self) -> str:
        return f"{self.namespace}/{self.name}"


async def find_repository(conn: asyncpg.Connection, namespace: str, name: str) -> Repository | None:
    row = await conn.fetchrow(
        "SELECT r.id, r.namespace_id, n.name AS namespace, r.name, r.visibility, r.state"
        " FROM repository r JOIN namespace n ON n.id = r.namespace_id WHERE n.name = $1 AND r.name = $2",
        namespace,
        name,
    )
    return Repository(**dict(row)) if row else None


async def find_namespace_id(conn: asyncpg.Connection, namespace: str) -> int | None:
    value = await conn.fetchval("SELECT id FROM namespace WHERE name = $1", namespace)
    return int(value) if value is not None else None


async def ensure_repository(
    conn: asyncpg.Connection, namespace_id: int, namespace: str, name: str, creator: Identity | None = None
) -> Repository:
    """Create the repository (private) unless it exists; return it.

    A repository created here by ``creator`` gets its initial permissions (apply_default_permissions).
    """
    async with conn.transaction():
        created = await conn.fetchval(
            "INSERT INTO repository (namespace_id, name) VALUES ($1, $2)"
            # No conflict target: a racing first push collides on repository_full_name as often as
            # on (namespace_id, name), and either way the repository exists.
            " ON CONFLICT DO NOTHING RETURNING id",
            namespace_id,
            name,
        )
        if created is not None and creator is not None:
            await apply_default_permissions(conn, created, namespace_id, creator)
    repository = await find_repository(conn, namespace, name)
    assert repository is not None
    return repository
