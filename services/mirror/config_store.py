"""Mirror configurations in Postgres (table mirror_config): what the API reads and changes.

A repository has at most one mirror configuration. Creating one switches the repository to the
MIRROR state. Workers claim and release configurations through services.mirror.leases.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

import asyncpg
from pydantic import BaseModel, ConfigDict

from shared.oci.upstream_client import ProxyConfig

SyncStatus = Literal["NEVER_RUN", "SYNC_NOW", "SYNCING", "SUCCESS", "FAIL", "CANCEL"]
# Scheduled syncs a mirror gets after failures before it waits for its next interval (Quay's).
MAX_SYNC_RETRIES = 3
# Workers LISTEN here: a mirror became due (created, sync-now, re-enabled, start date changed).
WAKE_CHANNEL = "quayside_mirror"


class ExternalRegistryConfig(BaseModel):
    """How to talk to the upstream: TLS verification (false also allows plain HTTP), proxies.

    ``unsigned_images`` is kept for Quay compatibility: images are mirrored whether signed or not.
    """

    model_config = ConfigDict(extra="ignore", strict=True)

    verify_tls: bool = True
    unsigned_images: bool = False
    proxy: ProxyConfig = ProxyConfig()


class MirrorRepository(BaseModel):
    id: int
    namespace_id: int
    namespace: str
    name: str
    visibility: str
    state: str

    @property
    def full_name(self) -> str:
        return f"{self.namespace}/{self.name}"


class Robot(BaseModel):
    id: int
    namespace_id: int
    username: str


class MirrorConfig(BaseModel):
    """A stored mirror configuration; credentials stay encrypted."""

    id: int
    repository_id: int
    robot_id: int | None
    robot_username: str | None
    external_reference: str
    username_encrypted: str | None
    password_encrypted: str | None
    external_registry_config: ExternalRegistryConfig
    tag_patterns: list[str]
    sync_interval_s: int
    sync_start_date: datetime
    is_enabled: bool
    sync_status: SyncStatus
    sync_retries_remaining: int
    lease_owner: uuid.UUID | None
    lease_expires_at: datetime | None
    progress: dict[str, Any] | None
    last_sync: dict[str, Any] | None


# Columns of MirrorConfig, for a query on `mirror_config m LEFT JOIN robot r ... LEFT JOIN namespace rn`.
MIRROR_COLUMNS = """
    m.id, m.repository_id, m.robot_id, rn.name || '+' || r.shortname AS robot_username,
    m.external_reference, m.username_encrypted, m.password_encrypted, m.external_registry_config,
    m.tag_patterns, m.sync_interval_s, m.sync_start_date, m.is_enabled, m.sync_status,
    m.sync_retries_remaining, m.lease_owner, m.lease_expires_at, m.progress, m.last_sync
"""
MIRROR_ROBOT_JOIN = "LEFT JOIN robot r ON r.id = m.robot_id LEFT JOIN namespace rn ON rn.id = r.namespace_id"


class MirrorFields(BaseModel):
    """The columns a configuration is created with (credentials encrypted already)."""

    robot_id: int
    external_reference: str
    username_encrypted: str | None
    password_encrypted: str | None
    external_registry_config: ExternalRegistryConfig
    tag_patterns: list[str]
    sync_interval_s: int
    sync_start_date: datetime
    is_enabled: bool


async def find_repository(conn: asyncpg.Connection, namespace: str, name: str) -> MirrorRepository | None:
    row = await conn.fetchrow(
        "SELECT r.id, r.namespace_id, n.name AS namespace, r.name, r.visibility, r.state"
        " FROM repository r JOIN namespace n ON n.id = r.namespace_id"
        " WHERE n.name = $1 AND r.name = $2 AND NOT n.marked_for_deletion",
        namespace,
        name,
    )
    return MirrorRepository(**dict(row)) if row else None


async def find_robot(conn: asyncpg.Connection, username: str) -> Robot | None:
    """A robot by its '<namespace>+<shortname>' name."""
    namespace, separator, shortname = username.partition("+")
    if not separator:
        return None
    row = await conn.fetchrow(
        "SELECT r.id, r.namespace_id FROM robot r JOIN namespace n ON n.id = r.namespace_id"
        " WHERE n.name = $1 AND r.shortname = $2",
        namespace,
        shortname,
    )
    return Robot(id=row["id"], namespace_id=row["namespace_id"], username=username) if row else None


async def find_mirror(conn: asyncpg.Connection, repository_id: int) -> MirrorConfig | None:
    row = await conn.fetchrow(
        f"SELECT {MIRROR_COLUMNS} FROM mirror_config m {MIRROR_ROBOT_JOIN} WHERE m.repository_id = $1",
        repository_id,
    )
    return MirrorConfig(**dict(row)) if row else None


async def create_mirror(conn: asyncpg.Connection, repository_id: int, fields: MirrorFields) -> bool:
    """Store the configuration and switch the repository to MIRROR; False when one exists already."""
    created = await conn.fetchval(
        "INSERT INTO mirror_config (repository_id, robot_id, external_reference, username_encrypted,"
        " password_encrypted, external_registry_config, tag_patterns, sync_interval_s, sync_start_date,"
        " is_enabled) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        " ON CONFLICT (repository_id) DO NOTHING RETURNING id",
        repository_id,
        fields.robot_id,
        fields.external_reference,
        fields.username_encrypted,
        fields.password_encrypted,
        fields.external_registry_config.model_dump(),
        fields.tag_patterns,
        fields.sync_interval_s,
        fields.sync_start_date,
        fields.is_enabled,
    )
    if created is None:
        return False
    await conn.execute("UPDATE repository SET state = 'MIRROR' WHERE id = $1", repository_id)
    await wake_workers(conn)
    return True


# Columns the API may change directly.
UpdatableColumn = Literal[
    "robot_id",
    "external_reference",
    "username_encrypted",
    "password_encrypted",
    "external_registry_config",
    "tag_patterns",
    "sync_interval_s",
    "sync_start_date",
    "is_enabled",
    "sync_retries_remaining",
]


async def update_mirror(
    conn: asyncpg.Connection, mirror_id: int, changes: dict[UpdatableColumn, Any]
) -> None:
    """Set the given columns (names from UpdatableColumn only) and wake the workers."""
    if not changes:
        return
    assignments = ", ".join(f"{column} = ${number}" for number, column in enumerate(changes, start=2))
    values = [value.model_dump() if isinstance(value, BaseModel) else value for value in changes.values()]
    await conn.execute(f"UPDATE mirror_config SET {assignments} WHERE id = $1", mirror_id, *values)
    await wake_workers(conn)


async def request_sync_now(conn: asyncpg.Connection, mirror_id: int) -> bool:
    """Make the mirror due at once (SYNC_NOW); False while it is syncing."""
    updated = await conn.fetchval(
        "UPDATE mirror_config SET sync_status = 'SYNC_NOW',"
        " sync_retries_remaining = greatest(sync_retries_remaining, 1)"
        " WHERE id = $1 AND sync_status <> 'SYNCING' RETURNING id",
        mirror_id,
    )
    if updated is None:
        return False
    await wake_workers(conn)
    return True


async def cancel_sync(conn: asyncpg.Connection, mirror_id: int) -> bool:
    """Stop the running or requested sync: CANCEL, the worker's lease taken back, no scheduled sync
    until sync-now or re-enabling. False when the mirror is neither SYNCING nor SYNC_NOW."""
    updated = await conn.fetchval(
        "UPDATE mirror_config SET sync_status = 'CANCEL', lease_owner = NULL, lease_expires_at = NULL,"
        " sync_retries_remaining = 0 WHERE id = $1 AND sync_status IN ('SYNCING', 'SYNC_NOW') RETURNING id",
        mirror_id,
    )
    return updated is not None


async def grant_robot_write(conn: asyncpg.Connection, repository_id: int, robot_id: int) -> bool:
    """Give the robot write permission on the repository unless it has write or admin already (as
    Quay does for a mirror's robot); True when the permission was added or raised from read."""
    changed = await conn.fetchval(
        "INSERT INTO repository_permission (repository_id, robot_id, role) VALUES ($1, $2, 'write')"
        " ON CONFLICT (repository_id, robot_id) WHERE robot_id IS NOT NULL"
        " DO UPDATE SET role = 'write' WHERE repository_permission.role = 'read' RETURNING id",
        repository_id,
        robot_id,
    )
    return changed is not None


async def wake_workers(conn: asyncpg.Connection) -> None:
    """Tell listening workers to look for due mirrors (delivered when the transaction commits)."""
    await conn.execute("SELECT pg_notify($1, '')", WAKE_CHANNEL)
