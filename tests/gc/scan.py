"""Storage against the database: what every location holds and what the rows say it holds."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from shared.storage import Locations, PathNotFoundError
from tests.fixtures.registry import Registry


@dataclass(frozen=True)
class Consistency:
    stored: set[tuple[str, str]]
    placed: set[tuple[str, str]]
    referenced: set[str]
    blobs: set[str]

    def problems(self) -> list[str]:
        """Every way storage and rows disagree, or a blob is kept that nothing references."""
        found = [f"stored, not placed: {item}" for item in sorted(self.stored - self.placed)]
        found += [f"placed, not stored: {item}" for item in sorted(self.placed - self.stored)]
        found += [f"referenced, no blob row: {digest}" for digest in sorted(self.referenced - self.blobs)]
        found += [f"blob nothing references: {digest}" for digest in sorted(self.blobs - self.referenced)]
        placed_digests = {digest for _, digest in self.placed}
        found += [f"blob without placement: {digest}" for digest in sorted(self.blobs - placed_digests)]
        return found


async def scan(registry: Registry) -> Consistency:
    """scan_storage of an in-process registry."""
    return await scan_storage(registry.context.pool, registry.context.locations)


async def scan_storage(pool: asyncpg.Pool, locations: Locations) -> Consistency:
    """List every blob object in every location, and read placements, blob rows and references."""
    stored: set[tuple[str, str]] = set()
    for location in locations.order:
        try:
            paths = await locations.driver(location).list("blobs")
        except PathNotFoundError:
            paths = []
        for path in paths:
            _, algorithm, _, hex_part = path.split("/")
            stored.add((location, f"{algorithm}:{hex_part}"))
    async with pool.acquire() as conn:
        placed = {(row[0], row[1]) for row in await conn.fetch("SELECT location, digest FROM blob_placement")}
        referenced = {row[0] for row in await conn.fetch("SELECT DISTINCT digest FROM manifest_blob")}
        blobs = {row[0] for row in await conn.fetch("SELECT digest FROM blob")}
    return Consistency(stored=stored, placed=placed, referenced=referenced, blobs=blobs)
