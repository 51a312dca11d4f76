"""Who may read, write or create: the permission rules on a real database."""

from __future__ import annotations

import asyncpg

from shared.auth.accounts import create_organization, create_robot, create_user
from shared.auth.identity import Identity
from shared.auth.permissions import can_create_repository, repository_role


async def _repository(conn: asyncpg.Connection, namespace_id: int, visibility: str = "private") -> int:
    return await conn.fetchval(
        "INSERT INTO repository (namespace_id, name, visibility) VALUES ($1, 'app', $2) RETURNING id",
        namespace_id,
        visibility,
    )


async def _robot_identity(conn: asyncpg.Connection, username: str) -> Identity:
    namespace, _, shortname = username.partition("+")
    row = await conn.fetchrow(
        "SELECT r.id, r.namespace_id FROM robot r JOIN namespace n ON n.id = r.namespace_id"
        " WHERE n.name = $1 AND r.shortname = $2",
        namespace,
        shortname,
    )
    return Identity(kind="robot", id=row["id"], name=username, namespace_id=row["namespace_id"])


async def test_roles_come_from_ownership_teams_grants_and_visibility(db_pool: asyncpg.Pool) -> None:
    async with db_pool.acquire() as conn:
        owner = await create_user(conn, "owner", "pw")
        reader = await create_user(conn, "reader", "pw")
        stranger = await create_user(conn, "stranger", "pw")
        root = await create_user(conn, "root", "pw", superuser=True)
        org_id = await create_organization(conn, "acme", "owner")
        repo_id = await _repository(conn, org_id)
        await conn.execute(
            "INSERT INTO repository_permission (repository_id, user_id, role) VALUES ($1, $2, 'read')",
            repo_id,
            reader.id,
        )
        robot = await _robot_identity(conn, (await create_robot(conn, "acme", "ci")).username)
        await conn.execute(
            "INSERT INTO repository_permission (repository_id, robot_id, role) VALUES ($1, $2, 'write')",
            repo_id,
            robot.id,
        )

        async def role(identity: Identity | None, visibility: str = "private") -> str | None:
            return await repository_role(conn, identity, repo_id, org_id, visibility)

        assert await role(owner) == "admin"
        assert await role(root) == "admin"
        assert await role(reader) == "read"
        assert await role(robot) == "write"
        assert await role(stranger) is None
        assert await role(None) is None
        assert await role(None, "public") == "read"
        assert await role(stranger, "public") == "read"


async def test_team_members_inherit_team_grants_and_creators_may_create(db_pool: asyncpg.Pool) -> None:
    async with db_pool.acquire() as conn:
        await create_user(conn, "owner", "pw")
        dev = await create_user(conn, "dev", "pw")
        org_id = await create_organization(conn, "acme", "owner")
        repo_id = await _repository(conn, org_id)
        team_id = await conn.fetchval(
            "INSERT INTO team (namespace_id, name, role) VALUES ($1, 'devs', 'creator') RETURNING id", org_id
        )
        await conn.execute("INSERT INTO team_member (team_id, user_id) VALUES ($1, $2)", team_id, dev.id)
        assert await repository_role(conn, dev, repo_id, org_id, "private") is None
        await conn.execute(
            "INSERT INTO repository_permission (repository_id, team_id, role) VALUES ($1, $2, 'write')",
            repo_id,
            team_id,
        )
        assert await repository_role(conn, dev, repo_id, org_id, "private") == "write"
        assert await can_create_repository(conn, dev, org_id)
        outsider = await create_user(conn, "outsider", "pw")
        assert not await can_create_repository(conn, outsider, org_id)
        assert await can_create_repository(conn, outsider, outsider.namespace_id)
