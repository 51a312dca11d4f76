"""The list queries' plans at 100,000 repositories and 100,000 tags: served in order by an index,
never a sequential scan or a sort of a big table, and a middle page reads about as many rows as the
first. The queries are the very SQL constants the endpoints run, explained as prepared statements
with the generic plan (what PostgreSQL switches to after five executions) and with custom plans.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from services.registry.domain import repository_listing as listing
from services.registry.domain.manifest_store import LIVE_TAGS
from services.registry.domain.tag_lifecycle import HISTORY_QUERIES, HISTORY_START, HistoryVariant
from services.registry.domain.usage_log_queries import LOG_COUNT_QUERIES, LOG_PAGE_QUERIES
from tests.fixtures.postgres import TemplateCopies, _dsn_for

ROWS = 100_000
PAGE = 101  # what the endpoints fetch for a page of 100: one more tells that more remain
BIG_TABLES = {"repository", "tag", "log_entry"}
# A page may read its rows, the next one, the rows each access rule contributes, and a few filtered.
MAX_ROWS_READ = 8 * PAGE
PLAN_MODES = ("force_generic_plan", "force_custom_plan")


@dataclass(frozen=True)
class World:
    """Ids of the filled database's accounts and repositories."""

    big: int  # a user's namespace with 99,000 repositories, one in ten public
    owner: int  # its user
    acme: int  # an organization with 1,000 private repositories
    reader: int  # a user (and its namespace's id: reader_namespace) with permissions on 50 of big's and, by a team, 20 of acme's
    reader_namespace: int
    robot: int  # acme+ci, with permissions on 10 of acme's
    tagged: int  # a repository of big with 100,000 live tags and 20,000 ended ones
    middle_tag: str
    middle_history: tuple[datetime, str, int]
    now: datetime


FILL = """
INSERT INTO namespace (name, kind) VALUES ('big', 'user'), ('acme', 'organization'), ('reader', 'user');
INSERT INTO app_user (namespace_id, username, password_hash)
    SELECT id, name, 'x' FROM namespace WHERE kind = 'user';
INSERT INTO robot (namespace_id, shortname, token_hash)
    SELECT id, 'ci', 'x' FROM namespace WHERE name = 'acme';
INSERT INTO repository (namespace_id, name, visibility)
    SELECT n.id, 'repo-' || lpad(i::text, 6, '0'), CASE WHEN i % 10 = 0 THEN 'public' ELSE 'private' END
    FROM namespace n, generate_series(1, 99000) i WHERE n.name = 'big';
INSERT INTO repository (namespace_id, name)
    SELECT n.id, 'app-' || lpad(i::text, 4, '0') FROM namespace n, generate_series(1, 1000) i
    WHERE n.name = 'acme';
INSERT INTO team (namespace_id, name, role) SELECT id, 'readers', 'member' FROM namespace WHERE name = 'acme';
INSERT INTO team_member (team_id, user_id)
    SELECT t.id, u.id FROM team t, app_user u WHERE t.name = 'readers' AND u.username = 'reader';
INSERT INTO repository_permission (repository_id, user_id, role)
    SELECT r.id, u.id, 'read' FROM repository r, app_user u
    WHERE u.username = 'reader' AND r.full_name LIKE 'big/repo-%' AND r.id % 1980 = 0;
INSERT INTO repository_permission (repository_id, team_id, role)
    SELECT r.id, t.id, 'read' FROM repository r, team t
    WHERE t.name = 'readers' AND r.full_name LIKE 'acme/%' AND r.id % 50 = 0;
INSERT INTO repository_permission (repository_id, robot_id, role)
    SELECT r.id, b.id, 'write' FROM repository r, robot b
    WHERE r.full_name LIKE 'acme/%' AND r.id % 100 = 0;
INSERT INTO manifest (repository_id, digest, media_type, size, content)
    SELECT id, 'sha256:' || repeat('a', 64), 'application/vnd.oci.image.manifest.v1+json', 2, '{}'
    FROM repository WHERE full_name = 'big/repo-000001';
INSERT INTO tag (repository_id, name, manifest_id, lifetime_start)
    SELECT m.repository_id, 'v' || lpad(i::text, 6, '0'), m.id, now() - i * interval '1 second'
    FROM manifest m, generate_series(1, 100000) i;
INSERT INTO tag (repository_id, name, manifest_id, lifetime_start, lifetime_end)
    SELECT m.repository_id, 'v' || lpad((i * 5)::text, 6, '0'), m.id,
           now() - interval '2 days' - i * interval '1 second', now() - interval '1 day'
    FROM manifest m, generate_series(1, 20000) i;
INSERT INTO log_entry (kind, namespace_id, repository, performer_kind, performer_name, created_at)
    SELECT 'push_repo', n.id, CASE WHEN i % 2 = 0 THEN 'repo-000001' END, 'user',
           CASE WHEN i % 3 = 0 THEN 'reader' ELSE 'big' END, now() - i * interval '90 seconds'
    FROM namespace n, generate_series(1, 100000) i WHERE n.name = 'big';
"""


async def _fill(conn: asyncpg.Connection) -> World:
    await conn.execute(FILL)
    await conn.execute("VACUUM ANALYZE")
    ids = {row["name"]: row["id"] for row in await conn.fetch("SELECT id, name FROM namespace")}
    users = {row["username"]: row["id"] for row in await conn.fetch("SELECT id, username FROM app_user")}
    middle = await conn.fetchrow(
        "SELECT lifetime_start, name, id FROM tag ORDER BY lifetime_start DESC, name, id DESC OFFSET 60000 LIMIT 1"
    )
    return World(
        big=ids["big"],
        owner=users["big"],
        acme=ids["acme"],
        reader=users["reader"],
        reader_namespace=ids["reader"],
        robot=await conn.fetchval("SELECT id FROM robot"),
        tagged=await conn.fetchval("SELECT id FROM repository WHERE full_name = 'big/repo-000001'"),
        middle_tag="v050000",
        middle_history=(middle["lifetime_start"], middle["name"], middle["id"]),
        now=await conn.fetchval("SELECT now()"),
    )


@pytest.fixture(scope="module")
async def big_database(template_copies: TemplateCopies) -> AsyncIterator[tuple[asyncpg.Connection, World]]:
    """A database of the module's own, filled once: the tests only read it."""
    name = await template_copies.take()
    conn = await asyncpg.connect(_dsn_for(name))
    try:
        yield conn, await _fill(conn)
    finally:
        await conn.close()
        template_copies.release(name)


@dataclass(frozen=True)
class Case:
    """One query with realistic parameters; ``bounded``: a page of it reads at most MAX_ROWS_READ."""

    name: str
    sql: str
    parameters: list[Any]
    bounded: bool = True


def _cases(world: World) -> Iterator[Case]:
    middle_repository = "big/repo-050000"
    for label, after in (("first", listing.START), ("middle", middle_repository)):
        yield Case(f"catalog superuser {label}", listing.EVERY_REPOSITORY, [after, PAGE])
        yield Case(f"catalog anonymous {label}", listing.PUBLIC_REPOSITORIES, [after, PAGE])
        yield Case(
            f"catalog owner {label}",
            listing.READABLE_REPOSITORIES["user"],
            [after, PAGE, world.owner, world.big],
        )
        yield Case(
            f"catalog reader {label}",
            listing.READABLE_REPOSITORIES["user"],
            [after, PAGE, world.reader, world.reader_namespace],
        )
        yield Case(
            f"catalog robot {label}", listing.READABLE_REPOSITORIES["robot"], [after, PAGE, world.robot]
        )
        yield Case(f"namespace admin {label}", listing.NAMESPACE_REPOSITORIES, [after, PAGE, world.big])
        yield Case(
            f"namespace anonymous {label}", listing.NAMESPACE_PUBLIC_REPOSITORIES, [after, PAGE, world.big]
        )
        yield Case(
            f"namespace reader {label}",
            listing.NAMESPACE_READABLE_REPOSITORIES["user"],
            [after, PAGE, world.big, world.reader],
        )
        yield Case(
            f"namespace robot {label}",
            listing.NAMESPACE_READABLE_REPOSITORIES["robot"],
            [after, PAGE, world.acme, world.robot],
        )
    yield Case(
        "last pushed", listing.LAST_PUSHED, [[world.tagged, *range(world.tagged + 1, world.tagged + 100)]]
    )
    for label, after in (("first", ""), ("middle", world.middle_tag)):
        yield Case(f"v2 tags {label}", LIVE_TAGS, [world.tagged, after, PAGE])
    first = (HISTORY_START.lifetime_start, HISTORY_START.name, HISTORY_START.id)
    for variant, sql in HISTORY_QUERIES.items():
        filters = [world.middle_tag] if variant.by_name else []
        filters += ["v05"] if variant.containing else []
        for label, position in (("first", first), ("middle", world.middle_history)):
            yield Case(
                f"history {variant} {label}",
                sql,
                [world.tagged, *position, PAGE, 0, *filters],
                # A text search reads until it finds a page of matches.
                bounded=not variant.containing,
            )
    plain = HISTORY_QUERIES[HistoryVariant(by_name=False, containing=False, only_active=False)]
    yield Case("history page 500", plain, [world.tagged, *first, PAGE, 499 * 100], bounded=False)
    day = (world.now - timedelta(days=1), world.now + timedelta(days=1))
    middle_log = (world.now - timedelta(hours=12), 0)
    for narrowing, sql in LOG_PAGE_QUERIES.items():
        values = [
            v
            for v, wanted in (("repo-000001", narrowing.repository), ("reader", narrowing.performer))
            if wanted
        ]
        for label, log_position in (("first", (day[1], 0)), ("middle", middle_log)):
            yield Case(f"logs {narrowing} {label}", sql, [world.big, *day, *log_position, PAGE, *values])
    for narrowing, sql in LOG_COUNT_QUERIES.items():
        values = [
            v
            for v, wanted in (("repo-000001", narrowing.repository), ("reader", narrowing.performer))
            if wanted
        ]
        # Counting a time range reads the range, by definition.
        yield Case(f"log counts {narrowing}", sql, [world.big, *day, *values], bounded=False)


def _literal(value: Any) -> str:
    if isinstance(value, list):
        return "'{" + ",".join(str(item) for item in value) + "}'"
    if isinstance(value, datetime):
        return f"'{value.astimezone(UTC).isoformat()}'"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return str(value)


@dataclass
class PlanFacts:
    """What a plan does to the big tables."""

    seq_scans: list[str] = field(default_factory=list)
    largest_sort: int = 0
    rows_read: int = 0


def _facts(node: dict[str, Any], facts: PlanFacts) -> PlanFacts:
    relation = node.get("Relation Name")
    loops = node.get("Actual Loops", 1)
    if relation in BIG_TABLES:
        if node["Node Type"] == "Seq Scan":
            facts.seq_scans.append(relation)
        facts.rows_read += (node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)) * loops
    if node["Node Type"] in ("Sort", "Incremental Sort"):
        facts.largest_sort = max(facts.largest_sort, node.get("Actual Rows", 0) * loops)
    for child in node.get("Plans", []):
        _facts(child, facts)
    return facts


async def _explain(conn: asyncpg.Connection, case: Case, mode: str) -> dict[str, Any]:
    statement = f"plan_{uuid.uuid4().hex[:8]}"
    await conn.execute(f"SET plan_cache_mode = {mode}")
    await conn.execute(f"PREPARE {statement} AS {case.sql}")
    try:
        arguments = ", ".join(_literal(value) for value in case.parameters)
        document = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE {statement} ({arguments})")
    finally:
        await conn.execute(f"DEALLOCATE {statement}")
        await conn.execute("RESET plan_cache_mode")
    plan: dict[str, Any] = json.loads(document)[0]["Plan"]
    return plan


@pytest.mark.timeout(120)
async def test_no_list_query_scans_or_sorts_a_big_table(
    big_database: tuple[asyncpg.Connection, World],
) -> None:
    conn, world = big_database
    assert await conn.fetchval("SELECT count(*) FROM repository") == ROWS
    assert await conn.fetchval("SELECT count(*) FROM tag WHERE lifetime_end IS NULL") == ROWS
    failures = []
    for case in _cases(world):
        for mode in PLAN_MODES:
            facts = _facts(await _explain(conn, case, mode), PlanFacts())
            if facts.seq_scans:
                failures.append(f"{case.name} ({mode}): Seq Scan on {facts.seq_scans}")
            if case.bounded and facts.largest_sort > MAX_ROWS_READ:
                failures.append(f"{case.name} ({mode}): sorts {facts.largest_sort} rows")
            if case.bounded and facts.rows_read > MAX_ROWS_READ:
                failures.append(f"{case.name} ({mode}): reads {facts.rows_read} rows of big tables")
    assert failures == [], "\n".join(failures)
