"""BlobsCollected events, written through the outbox in the transaction that deleted what they
announce. Quota re-checks, per repository, the blob digests the removed manifests referenced."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import asyncpg

from services.gc.tally import DeletedBlob
from shared.events.models import BlobsCollected, CollectedRepository
from shared.events.outbox import enqueue

# Digests per event: a large pass publishes several events rather than one huge message.
DIGESTS_PER_EVENT = 1000


@dataclass(frozen=True, slots=True)
class RepositoryName:
    namespace_id: int
    repository_id: int
    namespace: str
    repository: str


async def repository_names(
    conn: asyncpg.Connection, repository_ids: Iterable[int]
) -> dict[int, RepositoryName]:
    rows = await conn.fetch(
        "SELECT r.id, r.namespace_id, n.name, r.name FROM repository r JOIN namespace n ON n.id = r.namespace_id"
        " WHERE r.id = ANY($1::bigint[])",
        list(repository_ids),
    )
    return {row[0]: RepositoryName(row[1], row[0], row[2], row[3]) for row in rows}


async def announce_manifests_removed(
    conn: asyncpg.Connection, names: Mapping[int, RepositoryName], digests: Mapping[int, Iterable[str]]
) -> None:
    """BlobsCollected naming, per repository, the blob digests its removed manifests referenced."""
    event = BlobsCollected()
    room = DIGESTS_PER_EVENT
    for repository_id, used in digests.items():
        name = names[repository_id]
        pending = sorted(used)
        while True:
            part, pending = pending[:room], pending[room:]
            event.repositories.append(CollectedRepository(**_fields(name), digests=part))
            room -= len(part)
            if room == 0:
                await enqueue(conn, event)
                event, room = BlobsCollected(), DIGESTS_PER_EVENT
            if not pending:
                break
    if event.repositories:
        await enqueue(conn, event)


async def announce_blobs_deleted(conn: asyncpg.Connection, blobs: list[DeletedBlob]) -> None:
    """BlobsCollected naming the deleted blobs and the bytes they held per location."""
    for start in range(0, len(blobs), DIGESTS_PER_EVENT):
        part = blobs[start : start + DIGESTS_PER_EVENT]
        by_location: dict[str, int] = {}
        for blob in part:
            for location in blob.locations:
                by_location[location] = by_location.get(location, 0) + blob.size
        await enqueue(
            conn,
            BlobsCollected(
                blobs_deleted=[blob.digest for blob in part],
                bytes_reclaimed=sum(by_location.values()),
                bytes_by_location=by_location,
            ),
        )


def _fields(name: RepositoryName) -> dict[str, object]:
    return {
        "namespace_id": name.namespace_id,
        "repository_id": name.repository_id,
        "namespace": name.namespace,
        "repository": name.repository,
    }
