"""Usage log entries of the registry's own changes: /v2 pushes and deletes, and who made them."""

from __future__ import annotations

import asyncpg
from fastapi import Request

from shared.auth.identity import Identity
from shared.usage_logs import record


def client_ip(request: Request) -> str | None:
    """The address the request came from, as the logs keep it."""
    return request.client.host if request.client else None


async def live_tag_targets(
    conn: asyncpg.Connection, repository_id: int, tags: list[str]
) -> dict[str, str | None]:
    """The manifest digest each tag points at now (None for a tag that does not exist)."""
    rows = await conn.fetch(
        "SELECT t.name, m.digest FROM tag t JOIN manifest m ON m.id = t.manifest_id"
        " WHERE t.repository_id = $1 AND t.name = ANY($2::text[])"
        " AND (t.lifetime_end IS NULL OR t.lifetime_end > now())",
        repository_id,
        tags,
    )
    found = {row["name"]: row["digest"] for row in rows}
    return {tag: found.get(tag) for tag in tags}


async def live_tags_pointing_at(conn: asyncpg.Connection, repository_id: int, digest: str) -> dict[str, str]:
    """The live tags pointing at the manifest, each mapped to its digest."""
    rows = await conn.fetch(
        "SELECT t.name FROM tag t JOIN manifest m ON m.id = t.manifest_id"
        " WHERE m.repository_id = $1 AND m.digest = $2 AND (t.lifetime_end IS NULL OR t.lifetime_end > now())",
        repository_id,
        digest,
    )
    return {row["name"]: digest for row in rows}


async def log_push(
    conn: asyncpg.Connection,
    request: Request,
    identity: Identity | None,
    namespace: str,
    repository: str,
    digest: str,
    previous_targets: dict[str, str | None],
) -> None:
    """push_repo, then create_tag or move_tag for each tag that was created or moved by the push.

    `previous_targets` is live_tag_targets before the push, in the push's transaction.
    """

    async def log(kind: str, metadata: dict[str, str | None]) -> None:
        await record(
            conn,
            kind,
            performer=identity,
            ip=client_ip(request),
            namespace=namespace,
            repository=repository,
            metadata=metadata,
        )

    tags = list(previous_targets)
    await log("push_repo", {"tag": tags[0] if tags else None, "manifest_digest": digest})
    for tag, before in previous_targets.items():
        if before is None:
            await log("create_tag", {"tag": tag, "manifest_digest": digest})
        elif before != digest:
            await log("move_tag", {"tag": tag, "manifest_digest": digest, "original_manifest_digest": before})


async def log_tag_deletions(
    conn: asyncpg.Connection,
    request: Request,
    identity: Identity | None,
    namespace: str,
    repository: str,
    deleted: dict[str, str],
) -> None:
    """delete_tag for each deleted tag (name -> the manifest digest it pointed at)."""
    for tag, digest in deleted.items():
        await record(
            conn,
            "delete_tag",
            performer=identity,
            ip=client_ip(request),
            namespace=namespace,
            repository=repository,
            metadata={"tag": tag, "manifest_digest": digest},
        )
