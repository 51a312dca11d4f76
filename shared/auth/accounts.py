"""Creating, finding, changing and authenticating users, organizations and robot accounts."""

from __future__ import annotations

from typing import Literal

import asyncpg
from pydantic import BaseModel

from shared.auth.app_tokens import APP_TOKEN_USERNAME, authenticate_app_token
from shared.auth.identity import Identity
from shared.auth.names import InvalidNameError, check_namespace_name, check_robot_shortname
from shared.auth.passwords import generate_secret, hash_secret, verify_secret

# The time-machine windows a namespace may choose (Quay's): 0s, 1 day, 1, 2 and 4 weeks.
TIME_MACHINE_WINDOWS_S: tuple[int, ...] = (0, 86_400, 604_800, 1_209_600, 2_419_200)


class AccountExistsError(Exception):
    pass


class AccountNotFoundError(LookupError):
    """A named user, organization, robot, team or setting does not exist."""


class AccountRuleError(ValueError):
    """A change refused by an account rule; the message says which."""


class RobotCredentials(BaseModel):
    username: str
    token: str


class Namespace(BaseModel):
    id: int
    name: str
    kind: Literal["user", "organization"]
    email: str | None
    tag_expiration_s: int


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
            raise AccountNotFoundError(f"no user {owner!r}")
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
    namespace_id = await conn.fetchval(
        "SELECT id FROM namespace WHERE name = $1 AND NOT marked_for_deletion", namespace
    )
    if namespace_id is None:
        raise AccountNotFoundError(f"no namespace {namespace!r}")
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


async def regenerate_robot_token(
    conn: asyncpg.Connection, namespace_id: int, shortname: str
) -> RobotCredentials:
    """Replace a robot's token; the new one is returned once, the old one stops working."""
    token = generate_secret()
    namespace = await conn.fetchval(
        "UPDATE robot r SET token_hash = $3 FROM namespace n"
        " WHERE n.id = r.namespace_id AND r.namespace_id = $1 AND r.shortname = $2 RETURNING n.name",
        namespace_id,
        shortname,
        await hash_secret(token),
    )
    if namespace is None:
        raise AccountNotFoundError(f"no robot {shortname!r}")
    return RobotCredentials(username=f"{namespace}+{shortname}", token=token)


async def delete_robot(conn: asyncpg.Connection, namespace_id: int, shortname: str) -> None:
    """Delete a robot with its team memberships and permissions."""
    deleted = await conn.fetchval(
        "DELETE FROM robot WHERE namespace_id = $1 AND shortname = $2 RETURNING id", namespace_id, shortname
    )
    if deleted is None:
        raise AccountNotFoundError(f"no robot {shortname!r}")


async def find_namespace(conn: asyncpg.Connection, name: str) -> Namespace | None:
    """A live namespace by name (those marked for deletion are gone already)."""
    row = await conn.fetchrow(
        "SELECT id, name, kind, email, tag_expiration_s FROM namespace"
        " WHERE name = $1 AND NOT marked_for_deletion",
        name,
    )
    return Namespace(**dict(row)) if row else None


async def find_account(conn: asyncpg.Connection, name: str, *, robots_of: int) -> Identity:
    """The user ``name``, or the robot '<namespace>+<shortname>' if it belongs to namespace ``robots_of``.

    Robots of other namespaces are reported missing, like unknown names.
    """
    if "+" in name:
        namespace, _, shortname = name.partition("+")
        robot_id = await conn.fetchval(
            "SELECT r.id FROM robot r JOIN namespace n ON n.id = r.namespace_id"
            " WHERE n.id = $1 AND n.name = $2 AND r.shortname = $3",
            robots_of,
            namespace,
            shortname,
        )
        if robot_id is None:
            raise AccountNotFoundError(f"no robot {name!r} in this namespace")
        return Identity(kind="robot", id=robot_id, name=name, namespace_id=robots_of)
    row = await conn.fetchrow("SELECT id, namespace_id, is_superuser FROM app_user WHERE username = $1", name)
    if row is None:
        raise AccountNotFoundError(f"no user {name!r}")
    return Identity(
        kind="user",
        id=row["id"],
        name=name,
        namespace_id=row["namespace_id"],
        is_superuser=row["is_superuser"],
    )


async def set_namespace_email(conn: asyncpg.Connection, namespace_id: int, email: str | None) -> None:
    await conn.execute("UPDATE namespace SET email = $2 WHERE id = $1", namespace_id, email)


async def set_time_machine_window(conn: asyncpg.Connection, namespace_id: int, seconds: int) -> None:
    """Set how long the namespace's deleted tags stay restorable; only TIME_MACHINE_WINDOWS_S are allowed."""
    if seconds not in TIME_MACHINE_WINDOWS_S:
        allowed = ", ".join(str(value) for value in TIME_MACHINE_WINDOWS_S)
        raise AccountRuleError(f"tag_expiration_s must be one of {allowed} (0s, 1d, 1w, 2w, 4w)")
    await conn.execute("UPDATE namespace SET tag_expiration_s = $2 WHERE id = $1", namespace_id, seconds)


async def mark_organization_for_deletion(conn: asyncpg.Connection, namespace_id: int) -> None:
    """Queue an organization for deletion: it vanishes at once, its rows go with the next garbage-
    collection pass (services/gc/repository_purge.py).

    The namespace is renamed to a name no request can spell, so its name is free again and
    nothing (/v2 paths, robot logins, API paths) reaches the old content.
    """
    marked = await conn.fetchval(
        "UPDATE namespace SET name = 'deleted~' || gen_random_uuid(), marked_for_deletion = true"
        " WHERE id = $1 AND kind = 'organization' AND NOT marked_for_deletion RETURNING id",
        namespace_id,
    )
    if marked is None:
        raise AccountNotFoundError("no such organization")


async def authenticate(conn: asyncpg.Connection, username: str, secret: str) -> Identity | None:
    """Check a user's password, a robot's token ('<namespace>+<shortname>') or an app-specific
    token (username '$app'); None when wrong."""
    if username == APP_TOKEN_USERNAME:
        return await authenticate_app_token(conn, secret)
    if "+" in username:
        return await _authenticate_robot(conn, username, secret)
    row = await conn.fetchrow(
        "SELECT id, namespace_id, password_hash, is_superuser FROM app_user WHERE username = $1 AND enabled",
        username,
    )
    # Unknown names are verified against a stand-in hash: both answers take as long.
    verified = await verify_secret(row["password_hash"] if row else None, secret)
    if row is None or not verified:
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
        " WHERE n.name = $1 AND r.shortname = $2 AND NOT n.marked_for_deletion"
        # The robots of a disabled user are disabled with it (as Quay's).
        " AND NOT EXISTS (SELECT 1 FROM app_user u WHERE u.namespace_id = n.id AND NOT u.enabled)",
        namespace,
        shortname,
    )
    verified = await verify_secret(row["token_hash"] if row else None, token)
    if row is None or not verified:
        return None
    return Identity(kind="robot", id=row["id"], name=username, namespace_id=row["namespace_id"])


__all__ = [
    "TIME_MACHINE_WINDOWS_S",
    "AccountExistsError",
    "AccountNotFoundError",
    "AccountRuleError",
    "InvalidNameError",
    "Namespace",
    "RobotCredentials",
    "authenticate",
    "create_organization",
    "create_robot",
    "create_user",
    "delete_robot",
    "find_account",
    "find_namespace",
    "mark_organization_for_deletion",
    "regenerate_robot_token",
    "set_namespace_email",
    "set_time_machine_window",
]
