"""Managing repositories: create, list what a caller may read, describe, change visibility,
description and state, and delete (marked at once, purged after).

A repository marked for deletion is renamed to a name no request can spell ('deleted~<uuid>'), so it
vanishes from every path at once and its name is free again; the garbage collector's next pass
(services/gc/repository_purge.py) deletes its rows and then the blobs nothing references any more.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import asyncpg
from pydantic import BaseModel

from services.registry.domain import repository_listing
from shared.auth.accounts import Namespace
from shared.auth.default_permissions import apply_default_permissions
from shared.auth.identity import Identity
from shared.oci.names import is_valid_repository_name

Visibility = Literal["public", "private"]
RepositoryState = Literal["NORMAL", "READ_ONLY", "MIRROR"]
REPOSITORY_STATES: tuple[str, ...] = ("NORMAL", "READ_ONLY", "MIRROR")
# Path segments of the API's repository sub-resources (and Quay's build/trigger): a repository
# whose name has one of them as a component could not be told from that sub-resource in API paths.
RESERVED_NAME_COMPONENTS = frozenset(
    {
        "build",
        "trigger",
        "tag",
        "manifest",
        "permissions",
        "changevisibility",
        "changestate",
        "notification",
        "logs",
        "aggregatelogs",
        "exportlogs",
        "mirror",
    }
)


class InvalidRepositoryNameError(ValueError):
    pass


class RepositoryExistsError(Exception):
    pass


class RepositoryDetails(BaseModel):
    """A live repository with its namespace's facts that the API shows."""

    id: int
    namespace_id: int
    namespace: str
    namespace_kind: Literal["user", "organization"]
    tag_expiration_s: int
    name: str
    visibility: Visibility
    state: str
    description: str


class RepositorySummary(BaseModel):
    """A repository in a listing; ``last_modified`` is the start of its most recently pushed live tag."""

    namespace: str
    name: str
    description: str
    visibility: Visibility
    state: str
    last_modified: datetime | None


def check_new_repository_name(namespace: str, name: str) -> None:
    """InvalidRepositoryNameError unless '<namespace>/<name>' is a valid name an API path can address."""
    if not is_valid_repository_name(f"{namespace}/{name}"):
        raise InvalidRepositoryNameError("Invalid repository name")
    reserved = RESERVED_NAME_COMPONENTS.intersection(name.split("/"))
    if reserved:
        raise InvalidRepositoryNameError(f"Invalid repository name: {sorted(reserved)[0]!r} is reserved")


async def create_repository(
    conn: asyncpg.Connection,
    namespace: Namespace,
    name: str,
    *,
    visibility: Visibility,
    description: str,
    creator: Identity,
) -> None:
    """Create the repository with its initial permissions (apply_default_permissions).

    InvalidRepositoryNameError for a bad name, RepositoryExistsError when it exists.
    """
    check_new_repository_name(namespace.name, name)
    async with conn.transaction():
        created = await conn.fetchval(
            "INSERT INTO repository (namespace_id, name, visibility, description) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT DO NOTHING RETURNING id",
            namespace.id,
            name,
            visibility,
            description,
        )
        if created is None:
            raise RepositoryExistsError("Repository already exists")
        await apply_default_permissions(conn, created, namespace.id, creator)


async def repository_details(conn: asyncpg.Connection, repository_id: int) -> RepositoryDetails:
    row = await conn.fetchrow(
        "SELECT r.id, r.namespace_id, n.name AS namespace, n.kind AS namespace_kind, n.tag_expiration_s,"
        " r.name, r.visibility, r.state, r.description"
        " FROM repository r JOIN namespace n ON n.id = r.namespace_id WHERE r.id = $1",
        repository_id,
    )
    return RepositoryDetails(**dict(row))


async def readable_repositories(
    conn: asyncpg.Connection,
    identity: Identity | None,
    *,
    namespace: str | None,
    after: str | None,
    limit: int,
) -> list[RepositorySummary]:
    """Repositories the identity may read (of one namespace if given), by full name in bytewise order,
    those after the full name ``after`` when given (repository_listing)."""
    start = after or repository_listing.START
    if namespace is None:
        page = await repository_listing.readable_page(conn, identity, after=start, limit=limit)
    else:
        namespace_id = await conn.fetchval(
            "SELECT id FROM namespace WHERE name = $1 AND NOT marked_for_deletion", namespace
        )
        if namespace_id is None:
            return []
        page = await repository_listing.readable_page_in_namespace(
            conn, identity, namespace_id, after=start, limit=limit
        )
    pushed = await repository_listing.last_pushed(conn, [entry.id for entry in page])
    return [
        RepositorySummary(
            namespace=entry.namespace,
            name=entry.name,
            description=entry.description,
            visibility=entry.visibility,
            state=entry.state,
            last_modified=pushed[entry.id],
        )
        for entry in page
    ]


async def set_visibility(conn: asyncpg.Connection, repository_id: int, visibility: Visibility) -> None:
    await conn.execute("UPDATE repository SET visibility = $2 WHERE id = $1", repository_id, visibility)


async def set_description(conn: asyncpg.Connection, repository_id: int, description: str) -> None:
    await conn.execute("UPDATE repository SET description = $2 WHERE id = $1", repository_id, description)


async def set_state(conn: asyncpg.Connection, repository_id: int, state: RepositoryState) -> None:
    """NORMAL accepts pushes; READ_ONLY refuses every write; MIRROR accepts only its mirror's pushes."""
    await conn.execute(
        "UPDATE repository SET state = $2 WHERE id = $1 AND state <> 'MARKED_FOR_DELETION'",
        repository_id,
        state,
    )


async def mark_for_deletion(conn: asyncpg.Connection, repository_id: int) -> bool:
    """Mark the repository for deletion and free its name; False when it was marked already."""
    marked = await conn.fetchval(
        "UPDATE repository SET state = 'MARKED_FOR_DELETION', name = 'deleted~' || gen_random_uuid()"
        " WHERE id = $1 AND state <> 'MARKED_FOR_DELETION' RETURNING id",
        repository_id,
    )
    return marked is not None
