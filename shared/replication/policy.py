"""Which locations a namespace's blobs must reach, and the superuser's per-namespace targets.

With FEATURE_STORAGE_REPLICATION off nothing is required anywhere (the switch stops replication
whatever targets are stored). On, a namespace with replication_target rows needs exactly those
locations; any other namespace needs DISTRIBUTED_STORAGE_DEFAULT_LOCATIONS.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from shared.config import Settings


class UnknownLocationError(ValueError):
    """A location name that QUAYSIDE_STORAGE_LOCATIONS does not configure."""

    def __init__(self, unknown: Sequence[str], configured: Sequence[str]) -> None:
        names = ", ".join(repr(name) for name in unknown)
        super().__init__(
            f"unknown storage location(s) {names}; configured: {', '.join(map(repr, configured)) or 'none'}"
        )
        self.unknown = list(unknown)


def check_location_names(settings: Settings, names: Sequence[str]) -> list[str]:
    """The names, de-duplicated in order; UnknownLocationError when one is not configured."""
    unknown = [name for name in names if name not in settings.storage_locations]
    if unknown:
        raise UnknownLocationError(unknown, list(settings.storage_locations))
    return list(dict.fromkeys(names))


async def namespace_targets(conn: asyncpg.Connection, namespace_id: int) -> list[str]:
    """The namespace's own replication targets, sorted; empty when it uses the defaults."""
    rows = await conn.fetch(
        "SELECT location FROM replication_target WHERE namespace_id = $1 ORDER BY location", namespace_id
    )
    return [row[0] for row in rows]


async def set_namespace_targets(
    conn: asyncpg.Connection, namespace_id: int, locations: Sequence[str]
) -> None:
    """Replace the namespace's targets by ``locations`` (checked names); empty: back to the defaults."""
    async with conn.transaction():
        await conn.execute("DELETE FROM replication_target WHERE namespace_id = $1", namespace_id)
        await conn.execute(
            "INSERT INTO replication_target (namespace_id, location) SELECT $1, unnest($2::text[])",
            namespace_id,
            list(locations),
        )


async def required_locations(conn: asyncpg.Connection, settings: Settings, namespace_id: int) -> list[str]:
    """Every location the namespace's blobs must be placed in (see the module docstring)."""
    if not settings.feature_storage_replication:
        return []
    return await namespace_targets(conn, namespace_id) or list(settings.distributed_storage_default_locations)
