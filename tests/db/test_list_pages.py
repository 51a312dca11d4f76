"""Keyset pages answer exactly what one ordered read would: repositories by full name in bytewise
order (where 'a-b/c' sorts before 'a/b', unlike an order by namespace then name), tag history in
history order, whatever the page size and wherever a page starts."""

from __future__ import annotations

import asyncpg
import pytest

from services.registry.domain import repository_listing as listing
from services.registry.domain.tag_lifecycle import HISTORY_START, HistoryFilter, tag_history
from shared.auth.identity import Identity
from shared.auth.permissions import ROLE_RANK, repository_rank_sql

# Namespaces whose names are prefixes of each other, with characters on both sides of '/'.
REPOSITORIES = {
    "a": ["b", "b/c", "z", "b-c"],
    "a-b": ["c", "a"],
    "a.b": ["x"],
    "ab": ["a"],
    "a_b": ["x", "y/z"],
    "b": ["a"],
}
PUBLIC = {"a/z", "a-b/c", "a_b/y/z", "b/a"}


async def _world(pool: asyncpg.Pool) -> dict[str, Identity | None]:
    """The repositories above, and identities of every kind of access: the namespace owner of 'a',
    an admin of the organization 'a-b', a user and a robot with explicit grants, a superuser."""
    async with pool.acquire() as conn:
        ids = {}
        for namespace, names in REPOSITORIES.items():
            kind = "user" if namespace == "a" else "organization"
            ids[namespace] = await conn.fetchval(
                "INSERT INTO namespace (name, kind) VALUES ($1, $2) RETURNING id", namespace, kind
            )
            for name in names:
                visibility = "public" if f"{namespace}/{name}" in PUBLIC else "private"
                await conn.execute(
                    "INSERT INTO repository (namespace_id, name, visibility) VALUES ($1, $2, $3)",
                    ids[namespace],
                    name,
                    visibility,
                )
        users = {}
        for username in ("owner", "orgadmin", "granted", "root"):
            namespace_id = (
                ids["a"]
                if username == "owner"
                else await conn.fetchval(
                    "INSERT INTO namespace (name, kind) VALUES ($1, 'user') RETURNING id", username
                )
            )
            users[username] = await conn.fetchval(
                "INSERT INTO app_user (namespace_id, username, password_hash, is_superuser)"
                " VALUES ($1, $2, 'x', $3) RETURNING id",
                namespace_id,
                username,
                username == "root",
            )
            ids[username] = namespace_id
        admins = await conn.fetchval(
            "INSERT INTO team (namespace_id, name, role) VALUES ($1, 'owners', 'admin') RETURNING id",
            ids["a-b"],
        )
        readers = await conn.fetchval(
            "INSERT INTO team (namespace_id, name, role) VALUES ($1, 'readers', 'member') RETURNING id",
            ids["a_b"],
        )
        await conn.execute(
            "INSERT INTO team_member (team_id, user_id) VALUES ($1, $2)", admins, users["orgadmin"]
        )
        await conn.execute(
            "INSERT INTO team_member (team_id, user_id) VALUES ($1, $2)", readers, users["granted"]
        )
        robot = await conn.fetchval(
            "INSERT INTO robot (namespace_id, shortname, token_hash) VALUES ($1, 'ci', 'x') RETURNING id",
            ids["ab"],
        )
        await conn.execute(
            "INSERT INTO repository_permission (repository_id, user_id, role)"
            " SELECT id, $1, 'read' FROM repository WHERE full_name IN ('a/b', 'b/a', 'ab/a')",
            users["granted"],
        )
        await conn.execute(
            "INSERT INTO repository_permission (repository_id, team_id, role)"
            " SELECT id, $1, 'write' FROM repository WHERE full_name = 'a_b/x'",
            readers,
        )
        await conn.execute(
            "INSERT INTO repository_permission (repository_id, robot_id, role)"
            " SELECT id, $1, 'read' FROM repository WHERE full_name IN ('ab/a', 'a.b/x')",
            robot,
        )
    identities: dict[str, Identity | None] = {"anonymous": None}
    for username in users:
        identities[username] = Identity(
            kind="user",
            id=users[username],
            name=username,
            namespace_id=ids[username],
            is_superuser=username == "root",
        )
    identities["robot"] = Identity(kind="robot", id=robot, name="ab+ci", namespace_id=ids["ab"])
    return identities


async def _readable(pool: asyncpg.Pool, identity: Identity | None, namespace: str | None = None) -> list[str]:
    """What the permission rules (repository_rank_sql) let the identity read, in bytewise order."""
    params: list[object] = []
    rank = repository_rank_sql(identity, params)
    rows = await pool.fetch(
        "SELECT n.name AS namespace, n.name || '/' || r.name AS full_name"
        f" FROM repository r JOIN namespace n ON n.id = r.namespace_id WHERE {rank} >= {ROLE_RANK['read']}",
        *params,
    )
    names = [row["full_name"] for row in rows if namespace in (None, row["namespace"])]
    return sorted(names, key=lambda name: name.encode())


async def _paged(
    pool: asyncpg.Pool, identity: Identity | None, namespace_id: int | None, size: int
) -> list[str]:
    names: list[str] = []
    while True:
        after = names[-1] if names else listing.START
        if namespace_id is None:
            page = await listing.readable_page(pool, identity, after=after, limit=size)
        else:
            async with pool.acquire() as conn:
                page = await listing.readable_page_in_namespace(
                    conn, identity, namespace_id, after=after, limit=size
                )
        names += [entry.full_name for entry in page]
        if len(page) < size:
            return names


@pytest.fixture
async def identities(db_pool: asyncpg.Pool) -> dict[str, Identity | None]:
    return await _world(db_pool)


async def test_catalog_pages_are_the_readable_full_names_in_bytewise_order(
    db_pool: asyncpg.Pool, identities: dict[str, Identity | None]
) -> None:
    everything = await _readable(db_pool, identities["root"])
    assert everything[:4] == ["a-b/a", "a-b/c", "a.b/x", "a/b"]
    for who, identity in identities.items():
        expected = await _readable(db_pool, identity)
        for size in (1, 2, 3, 100):
            assert await _paged(db_pool, identity, None, size) == expected, (who, size)


async def test_namespace_pages_are_the_readable_repositories_of_the_namespace(
    db_pool: asyncpg.Pool, identities: dict[str, Identity | None]
) -> None:
    namespaces = {row["name"]: row["id"] for row in await db_pool.fetch("SELECT id, name FROM namespace")}
    for who, identity in identities.items():
        for namespace in REPOSITORIES:
            expected = await _readable(db_pool, identity, namespace)
            for size in (1, 2, 100):
                paged = await _paged(db_pool, identity, namespaces[namespace], size)
                assert paged == expected, (who, namespace, size)


@pytest.mark.parametrize("after", ["a-b/zzz", "a/", "a/b", "a/b-c", "a/b/c", "a/zz", "a0", "ab/", "zzz"])
async def test_a_namespace_page_starts_after_any_full_name(
    db_pool: asyncpg.Pool, identities: dict[str, Identity | None], after: str
) -> None:
    namespace_id = await db_pool.fetchval("SELECT id FROM namespace WHERE name = 'a'")
    async with db_pool.acquire() as conn:
        page = await listing.readable_page_in_namespace(
            conn, identities["owner"], namespace_id, after=after, limit=100
        )
    expected = [
        name for name in await _readable(db_pool, identities["owner"], "a") if name.encode() > after.encode()
    ]
    assert [entry.full_name for entry in page] == expected


async def test_renaming_a_namespace_renames_its_repositories_full_names(
    db_pool: asyncpg.Pool, identities: dict[str, Identity | None]
) -> None:
    await db_pool.execute("UPDATE namespace SET name = 'zz' WHERE name = 'a-b'")
    await db_pool.execute("UPDATE repository SET name = 'renamed' WHERE full_name = 'b/a'")
    listed = await _paged(db_pool, identities["root"], None, 100)
    assert "zz/a" in listed and "zz/c" in listed and "b/renamed" in listed
    assert not any(name.startswith("a-b/") for name in listed) and "b/a" not in listed


async def test_history_pages_continue_exactly_where_the_last_ended(db_pool: asyncpg.Pool) -> None:
    namespace_id = await db_pool.fetchval(
        "INSERT INTO namespace (name, kind) VALUES ('h', 'user') RETURNING id"
    )
    repository_id = await db_pool.fetchval(
        "INSERT INTO repository (namespace_id, name) VALUES ($1, 'r') RETURNING id", namespace_id
    )
    manifest_id = await db_pool.fetchval(
        "INSERT INTO manifest (repository_id, digest, media_type, size, content)"
        " VALUES ($1, 'sha256:' || repeat('b', 64), 'application/vnd.oci.image.manifest.v1+json', 2, '{}')"
        " RETURNING id",
        repository_id,
    )
    # Tags pushed together share their start: the name, then the id, order them.
    await db_pool.execute(
        "INSERT INTO tag (repository_id, name, manifest_id, lifetime_start, lifetime_end)"
        " SELECT $1, 't' || (i % 4), $2, now() - (i / 3) * interval '1 minute',"
        " CASE WHEN i > 4 THEN now() - interval '1 second' END FROM generate_series(1, 23) i",
        repository_id,
        manifest_id,
    )
    for wanted in (HistoryFilter(), HistoryFilter(only_active=True), HistoryFilter(name_equals="t1")):
        whole = await tag_history(db_pool, repository_id, wanted, limit=100)
        for size in (1, 2, 5):
            rows, after, skip = [], HISTORY_START, 0
            while True:
                page = await tag_history(db_pool, repository_id, wanted, limit=size, after=after)
                by_number = await tag_history(db_pool, repository_id, wanted, limit=size, skip=skip)
                assert by_number.tags == page.tags
                assert by_number.has_additional == page.has_additional
                # A page found by skipping names the row it starts after, as the keyset page was given.
                assert by_number.starts_after == page.starts_after == after
                rows += page.tags
                skip += size
                if not page.has_additional:
                    break
                assert page.last is not None
                after = page.last
            assert rows == whole.tags, (wanted, size)
