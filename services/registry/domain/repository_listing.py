"""Pages of the repositories a caller may read, by full name in bytewise order (/v2/_catalog, and the
API's repository list): everywhere, or in one namespace.

A page is keyset-paginated on ``repository.full_name`` (migration 0012), and each access rule is
its own index-ordered branch cut to the page size: public repositories, the namespaces the caller
administers (its own, organizations whose admin team it is in), and its explicit permissions (its
own, its teams'). The union of those few short branches is then sorted, so a page costs the same
with ten repositories as with a million. These rules are the ones repository_rank_sql states;
tests/db/test_list_pages.py and tests/registry/test_catalog.py hold both to the same answers.

The SQL is module-level constants so that tests/db/test_query_plans.py explains the very queries
the endpoints run.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import asyncpg
from pydantic import BaseModel

from services.registry.domain.manifest_store import Database
from shared.auth.identity import Identity
from shared.auth.permissions import namespace_role

AccountKind = Literal["user", "robot"]

# Where a page starts: after this full name; '' sorts before every name.
START = ""

_LISTED = "r.state <> 'MARKED_FOR_DELETION'"
_PAGE_COLUMNS = "r.id, r.full_name, n.name AS namespace, r.name, r.description, r.visibility, r.state"


def _everywhere_branch(condition: str) -> str:
    """One access rule's repositories of every namespace, in full-name order, at most a page."""
    return (
        "(SELECT r.id, r.full_name FROM repository r"
        " JOIN namespace n ON n.id = r.namespace_id AND NOT n.marked_for_deletion"
        f" WHERE {condition} AND {_LISTED} AND r.full_name > $1 ORDER BY r.full_name LIMIT $2)"
    )


def _name_after(namespace: str) -> str:
    """The repository name after which a namespace's part of the page starts: '' when the whole
    namespace sorts after the position $1, NULL (nothing) when it sorts wholly before."""
    prefix = f"({namespace} || '/')"
    return (
        f"CASE WHEN $1 < {prefix} COLLATE \"C\" THEN ''"
        f" WHEN starts_with($1, {prefix}) THEN substr($1, length({prefix}) + 1) END"
    )


def _namespace_branch(namespace_id: str, namespace: str, condition: str) -> str:
    """One access rule's repositories of one namespace, in name order (which is full-name order
    there) from the namespace's (namespace_id, name) index, at most a page."""
    return (
        f"(SELECT r.id, r.full_name FROM repository r WHERE r.namespace_id = {namespace_id} AND {condition}"
        f' AND {_LISTED} AND r.name COLLATE "C" > {_name_after(namespace)}'
        ' ORDER BY r.name COLLATE "C" LIMIT $2)'
    )


def _page(branches: list[str]) -> str:
    """The page of one or more branches: their union (each at most a page) sorted and cut."""
    union = " UNION ".join(branches)
    return (
        f"SELECT {_PAGE_COLUMNS} FROM (SELECT id, full_name FROM ({union}) readable"
        " ORDER BY full_name LIMIT $2) page"
        " JOIN repository r ON r.id = page.id JOIN namespace n ON n.id = r.namespace_id"
        " ORDER BY page.full_name"
    )


def _granted(kind: AccountKind, account: str) -> str:
    """Repositories the account has an explicit permission on, itself or through a team."""
    return (
        "r.id IN (SELECT p.repository_id FROM repository_permission p"
        f" WHERE p.{kind}_id = {account} OR p.team_id IN"
        f" (SELECT tm.team_id FROM team_member tm WHERE tm.{kind}_id = {account}))"
    )


def _administered(kind: AccountKind) -> str:
    """Each namespace the account administers (a user's own is $4), a page of its repositories."""
    own = "SELECT $4::bigint UNION " if kind == "user" else ""
    return (
        "(SELECT owned.id, owned.full_name FROM namespace a CROSS JOIN LATERAL"
        f" {_namespace_branch('a.id', 'a.name', 'true')} owned"
        f" WHERE a.id IN ({own}SELECT t.namespace_id FROM team t JOIN team_member tm ON tm.team_id = t.id"
        f" WHERE t.role = 'admin' AND tm.{kind}_id = $3) AND NOT a.marked_for_deletion)"
    )


_NAMESPACE_NAME = "(SELECT name FROM namespace WHERE id = $3 AND NOT marked_for_deletion)"

# Everywhere: $1 after, $2 limit; $3 the account's id, $4 a user's own namespace id.
EVERY_REPOSITORY = _page([_everywhere_branch("true")])
PUBLIC_REPOSITORIES = _page([_everywhere_branch("r.visibility = 'public'")])
READABLE_REPOSITORIES: dict[AccountKind, str] = {
    kind: _page(
        [
            _everywhere_branch("r.visibility = 'public'"),
            _administered(kind),
            _everywhere_branch(_granted(kind, "$3")),
        ]
    )
    for kind in ("user", "robot")
}
# In namespace $3: $1 after, $2 limit; $4 the account's id (not an administrator of the namespace).
NAMESPACE_REPOSITORIES = _page([_namespace_branch("$3", _NAMESPACE_NAME, "true")])
NAMESPACE_PUBLIC_REPOSITORIES = _page([_namespace_branch("$3", _NAMESPACE_NAME, "r.visibility = 'public'")])
NAMESPACE_READABLE_REPOSITORIES: dict[AccountKind, str] = {
    kind: _page(
        [
            _namespace_branch("$3", _NAMESPACE_NAME, "r.visibility = 'public'"),
            _namespace_branch("$3", _NAMESPACE_NAME, _granted(kind, "$4")),
        ]
    )
    for kind in ("user", "robot")
}


class ListedRepository(BaseModel):
    id: int
    full_name: str
    namespace: str
    name: str
    description: str
    visibility: Literal["public", "private"]
    state: str


def _everywhere(identity: Identity | None) -> tuple[str, list[object]]:
    if identity is None:
        return PUBLIC_REPOSITORIES, []
    if identity.is_superuser:
        return EVERY_REPOSITORY, []
    if identity.kind == "user":
        return READABLE_REPOSITORIES["user"], [identity.id, identity.namespace_id]
    return READABLE_REPOSITORIES["robot"], [identity.id]


async def _in_namespace(
    conn: asyncpg.Connection, identity: Identity | None, namespace_id: int
) -> tuple[str, list[object]]:
    if identity is None:
        return NAMESPACE_PUBLIC_REPOSITORIES, [namespace_id]
    if await namespace_role(conn, identity, namespace_id) == "admin":
        return NAMESPACE_REPOSITORIES, [namespace_id]
    return NAMESPACE_READABLE_REPOSITORIES[identity.kind], [namespace_id, identity.id]


async def readable_page(
    db: Database, identity: Identity | None, *, after: str, limit: int
) -> list[ListedRepository]:
    """Up to ``limit`` repositories the identity may read, by full name in bytewise order, after the
    full name ``after`` (START for the first page)."""
    query, account = _everywhere(identity)
    rows = await db.fetch(query, after, limit, *account)
    return [ListedRepository(**dict(row)) for row in rows]


async def readable_page_in_namespace(
    conn: asyncpg.Connection, identity: Identity | None, namespace_id: int, *, after: str, limit: int
) -> list[ListedRepository]:
    """readable_page within one namespace."""
    query, account = await _in_namespace(conn, identity, namespace_id)
    rows = await conn.fetch(query, after, limit, *account)
    return [ListedRepository(**dict(row)) for row in rows]


# When each repository was last pushed: the start of its newest live tag ($1 the repository ids).
LAST_PUSHED = (
    "SELECT r.id, (SELECT t.lifetime_start FROM tag t WHERE t.repository_id = r.id"
    " AND (t.lifetime_end IS NULL OR t.lifetime_end > now())"
    " ORDER BY t.lifetime_start DESC, t.name, t.id DESC LIMIT 1) AS last_pushed"
    " FROM unnest($1::bigint[]) AS r (id)"
)


async def last_pushed(db: Database, repository_ids: list[int]) -> dict[int, datetime | None]:
    """The start of each repository's newest live tag (None: no live tag)."""
    rows = await db.fetch(LAST_PUSHED, repository_ids)
    return {row["id"]: row["last_pushed"] for row in rows}
