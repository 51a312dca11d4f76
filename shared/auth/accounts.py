"""Creating and authenticating users, organizations and robot accounts."""

from __future__ import annotations

import asyncpg
from pydantic import BaseModel

from shared.auth.identity import Identity
from shared.auth.names import InvalidNameError, check_namespace_name, check_robot_shortname
from shared.auth.passwords import generate_secret, hash_secret, verify_secret


class AccountExistsError(Exception):
    pass


class RobotCredentials(BaseModel):
    username: str
    token: str


async def _create_namespace(conn: asyncpg.Connection, name: str, kind: str, email: str | None) -> int:
    check_namespace_name(name)
    namespace_id = await conn.fetchval(
        "INSERT INTO namespace (name, kind, email) VALUES ($1, $2, $3)"
        " ON CONFLICT (name) DO NOTHING RETURNING id",
        name,
        kind,
        email,
    )
    if namespace_id is None:
        raise AccountExistsError(f"namespace {name!r} already exists")
    return int(namespace_id)


async def create_user(
    conn: asyncpg.Connection,
    username: str,
    password: str,
    *,
    superuser: bool = False,
    email: str | None = None,
) -> Identity:
    """Create a user and the namespace of the same name."""
    password_hash = await hash_secret(password)
    async with conn.transaction():
        namespace_id = await _create_namespace(conn, username, "user", email)
        user_id = await conn.fetchval(
            "INSERT INTO app_user (namespace_id, username, password_hash, is_superuser)"
            " VALUES ($1, $2, $3, $4) RETURNING id",
            namespace_id,
            username,
            password_hash,
            superuser,
        )
    return Identity(kind="user", id=user_id, name=username, namespace_id=namespace_id, is_superuser=superuser)


async def create_organization(
    conn: asyncpg.Connection, name: str, owner: str, *, email: str | None = None
) -> int:
    """Create an organization whose 'owners' team (role admin) holds the owner user."""
    async with conn.transaction():
        owner_id = await conn.fetchval("SELECT id FROM app_user WHERE username = $1", owner)
        if owner_id is None:
            raise LookupError(f"no user {owner!r}")
        namespace_id = await _create_namespace(conn, name, "organization", email)
        team_id = await conn.fetchval(
            "INSERT INTO team (namespace_id, name, role) VALUES ($1, 'owners', 'admin') RETURNING id",
            namespace_id,
        )
        await conn.execute("INSERT INTO team_member (team_id, user_id) VALUES ($1, $2)", team_id, owner_id)
    return namespace_id


async def create_robot(
    conn: asyncpg.Connection, namespace: str, shortname: str, *, description: str = ""
) -> RobotCredentials:
    """Create a robot in a namespace; the token is returned once and stored hashed."""
    check_robot_shortname(shortname)
    namespace_id = await conn.fetchval("SELECT id FROM namespace WHERE name = $1", namespace)
    if namespace_id is None:
        raise LookupError(f"no namespace {namespace!r}")
    token = generate_secret()
    created = await conn.fetchval(
        "INSERT INTO robot (namespace_id, shortname, token_hash, description) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (namespace_id, shortname) DO NOTHING RETURNING id",
        namespace_id,
        shortname,
        await hash_secret(token),
        description,
    )
    if created is None:
        raise AccountExistsError(f"robot {namespace}+{shortname} already exists")
    return RobotCredentials(username=f"{namespace}+{shortname}", token=token)


async def authenticate(conn: asyncpg.Connection, username: str, secret: str) -> Identity | None:
    """Check a user's password or a robot's token ('<namespace>+<shortname>'); None when wrong."""
    if "+" in username:
        return await _authenticate_robot(conn, username, secret)
    row = await conn.fetchrow(
        "SELECT id, namespace_id, password_hash, is_superuser FROM app_user WHERE username = $1", username
    )
    if row is None or not await verify_secret(row["password_hash"], secret):
        return None
    return Identity(
        kind="user",
        id=row["id"],
        name=username,
        namespace_id=row["namespace_id"],
        is_superuser=row["is_superuser"],
    )


async def _authenticate_robot(conn: asyncpg.Connection, username: str, token: str) -> Identity | None:
    namespace, _, shortname = username.partition("+")
    row = await conn.fetchrow(
        "SELECT r.id, r.namespace_id, r.token_hash FROM robot r JOIN namespace n ON n.id = r.namespace_id"
        " WHERE n.name = $1 AND r.shortname = $2",
        namespace,
        shortname,
    )
    if row is None or not await verify_secret(row["token_hash"], token):
        return None
    return Identity(kind="robot", id=row["id"], name=username, namespace_id=row["namespace_id"])


__all__ = [
    "AccountExistsError",
    "InvalidNameError",
    "RobotCredentials",
    "authenticate",
    "create_organization",
    "create_robot",
    "create_user",
]
