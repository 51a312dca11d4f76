"""Where each blob of a manifest is placed: the storage locations holding a verified copy
(blob_placement), and those the namespace's replication policy requires but that hold none yet
(shared.replication.required_locations).

An index's own blobs (rarely any) and those of its child manifests stored in the same repository
are listed, each blob once with every manifest referring to it. Manifests themselves are kept in
the database, not in storage locations, so they have no placement and are not listed. The answer
is bounded: at most MAX_CHILDREN child manifests and MAX_BLOBS blobs, ``truncated`` saying that
more exist.
"""

from __future__ import annotations

from typing import Literal

import asyncpg
from pydantic import BaseModel

from shared.config import Settings
from shared.replication import required_locations

# More platforms than any published index has, and more blobs than they hold together.
MAX_CHILDREN = 64
MAX_BLOBS = 1000

_MANIFEST = "SELECT id, media_type FROM manifest WHERE repository_id = $1 AND digest = $2"
_CHILDREN = """
SELECT m.id
  FROM manifest_child c
  JOIN manifest m ON m.repository_id = $2 AND m.digest = c.child_digest
 WHERE c.manifest_id = $1
 ORDER BY c.child_digest
 LIMIT $3
"""
# Config blobs first, then layers, each by digest.
_BLOBS = """
SELECT mb.digest,
       b.size,
       bool_or(m.config_digest = mb.digest) AS is_config,
       array_agg(DISTINCT m.digest ORDER BY m.digest) AS manifests,
       ARRAY(SELECT p.location FROM blob_placement p WHERE p.digest = mb.digest ORDER BY p.location) AS locations
  FROM manifest m
  JOIN manifest_blob mb ON mb.manifest_id = m.id
  JOIN blob b ON b.digest = mb.digest
 WHERE m.id = ANY($1::bigint[])
 GROUP BY mb.digest, b.size
 ORDER BY is_config DESC, mb.digest
 LIMIT $2
"""


class BlobPlacement(BaseModel):
    """One blob: ``locations`` holding it, ``missing`` the required ones that do not yet, and the
    ``manifests`` (the one asked for, or children of the index asked for) that refer to it."""

    digest: str
    size: int
    kind: Literal["config", "layer"]
    locations: list[str]
    missing: list[str]
    manifests: list[str]


class ManifestPlacements(BaseModel):
    """Every blob of ``manifest`` and where it is placed; ``required``: the locations the namespace's
    blobs must reach (empty with replication off); ``truncated``: children or blobs were left out."""

    manifest: str
    media_type: str
    required: list[str]
    blobs: list[BlobPlacement]
    truncated: bool


async def manifest_placements(
    conn: asyncpg.Connection, settings: Settings, repository_id: int, namespace_id: int, digest: str
) -> ManifestPlacements | None:
    """The placements of the manifest ``digest`` of the repository; None when it holds no such manifest."""
    manifest = await conn.fetchrow(_MANIFEST, repository_id, digest)
    if manifest is None:
        return None
    children = [
        row["id"] for row in await conn.fetch(_CHILDREN, manifest["id"], repository_id, MAX_CHILDREN + 1)
    ]
    truncated = len(children) > MAX_CHILDREN
    rows = await conn.fetch(_BLOBS, [manifest["id"], *children[:MAX_CHILDREN]], MAX_BLOBS + 1)
    truncated = truncated or len(rows) > MAX_BLOBS
    required = await required_locations(conn, settings, namespace_id)
    return ManifestPlacements(
        manifest=digest,
        media_type=manifest["media_type"],
        required=required,
        blobs=[_blob(row, required) for row in rows[:MAX_BLOBS]],
        truncated=truncated,
    )


def _blob(row: asyncpg.Record, required: list[str]) -> BlobPlacement:
    locations: list[str] = list(row["locations"])
    return BlobPlacement(
        digest=row["digest"],
        size=row["size"],
        kind="config" if row["is_config"] else "layer",
        locations=locations,
        missing=[location for location in required if location not in locations],
        manifests=list(row["manifests"]),
    )
