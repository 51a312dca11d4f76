"""Writing usage logs (shared.usage_logs.record) and reading them back (usage_log_queries)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from services.registry.domain.usage_log_queries import (
    InvalidLogQueryError,
    LogScope,
    TimeRange,
    aggregated_counts,
    all_logs,
    page_of_logs,
    time_range,
)
from shared.auth.accounts import create_organization, create_user
from shared.auth.identity import Identity
from shared.usage_logs import Performer, UnknownLogKindError, record

NOW = datetime(2024, 3, 15, 12, 30, tzinfo=UTC)
EVERYTHING = TimeRange(datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


async def organization(pool: asyncpg.Pool, name: str) -> tuple[Identity, int]:
    async with pool.acquire() as conn:
        owner = await create_user(conn, f"{name}-owner", "password")
        return owner, await create_organization(conn, name, owner.name)


async def test_record_writes_kind_performer_ip_and_quays_metadata(db_pool: asyncpg.Pool) -> None:
    owner, org_id = await organization(db_pool, "acme")
    async with db_pool.acquire() as conn, conn.transaction():
        await record(
            conn,
            "create_tag",
            performer=owner,
            ip="192.0.2.7",
            namespace="acme",
            repository="app",
            metadata={"tag": "v1"},
        )

    logs, next_page = await page_of_logs(db_pool, LogScope(org_id), EVERYTHING, None)

    assert next_page is None
    [entry] = logs
    assert entry["kind"] == "create_tag"
    assert entry["ip"] == "192.0.2.7"
    assert entry["metadata"] == {"tag": "v1", "namespace": "acme", "repo": "app"}
    assert entry["performer"] == {"kind": "user", "name": "acme-owner", "is_robot": False}
    assert entry["namespace"] == {"kind": "org", "name": "acme"}
    assert entry["datetime"].endswith("-0000")


async def test_a_rolled_back_change_leaves_no_log(db_pool: asyncpg.Pool) -> None:
    _, org_id = await organization(db_pool, "acme")
    with pytest.raises(RuntimeError):
        async with db_pool.acquire() as conn, conn.transaction():
            await record(conn, "create_repo", performer=None, ip=None, namespace="acme", repository="app")
            raise RuntimeError("the change failed")

    assert (await page_of_logs(db_pool, LogScope(org_id), EVERYTHING, None))[0] == []


async def test_record_refuses_unknown_kinds_and_namespaces(db_pool: asyncpg.Pool) -> None:
    await organization(db_pool, "acme")
    async with db_pool.acquire() as conn:
        with pytest.raises(UnknownLogKindError):
            await record(conn, "push_rpeo", performer=None, ip=None, namespace="acme")
        with pytest.raises(LookupError):
            await record(conn, "push_repo", performer=None, ip=None, namespace="nobody")


async def add_logs(
    pool: asyncpg.Pool, namespace: str, entries: list[tuple[str, datetime, str | None]]
) -> None:
    """Write entries (kind, time, repository) as a robot of the namespace would."""
    robot = Performer(kind="robot", name=f"{namespace}+bot")
    async with pool.acquire() as conn, conn.transaction():
        for kind, moment, repository in entries:
            await record(conn, kind, performer=robot, ip=None, namespace=namespace, repository=repository)
            await conn.execute(
                "UPDATE log_entry SET created_at = $1 WHERE id = (SELECT max(id) FROM log_entry)", moment
            )


async def test_pages_run_newest_first_without_gaps_or_repeats(db_pool: asyncpg.Pool) -> None:
    _, org_id = await organization(db_pool, "acme")
    # 45 entries, several sharing a timestamp, so the cursor must break ties by id.
    await add_logs(
        db_pool, "acme", [("push_repo", NOW - timedelta(minutes=n // 3), "app") for n in range(45)]
    )

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        logs, cursor = await page_of_logs(db_pool, LogScope(org_id), EVERYTHING, cursor)
        pages += 1
        seen.extend(entry["datetime"] for entry in logs)
        if cursor is None:
            break

    assert pages == 3
    assert len(seen) == 45
    times = [datetime.strptime(text, "%a, %d %b %Y %H:%M:%S -0000") for text in seen]
    assert times == sorted(times, reverse=True)


async def test_queries_stay_inside_their_scope_and_range(db_pool: asyncpg.Pool) -> None:
    _, acme = await organization(db_pool, "acme")
    _, other = await organization(db_pool, "other")
    await add_logs(
        db_pool,
        "acme",
        [
            ("push_repo", NOW, "app"),
            ("delete_tag", NOW - timedelta(days=1), "web"),
            ("create_repo", NOW - timedelta(days=10), "app"),
        ],
    )
    await add_logs(db_pool, "other", [("push_repo", NOW, "app")])
    last_two_days = TimeRange(NOW - timedelta(days=2), NOW + timedelta(seconds=1))

    def kinds(logs: list[dict[str, object]]) -> list[object]:
        return [entry["kind"] for entry in logs]

    assert kinds((await page_of_logs(db_pool, LogScope(acme), last_two_days, None))[0]) == [
        "push_repo",
        "delete_tag",
    ]
    assert kinds((await page_of_logs(db_pool, LogScope(acme, "app"), EVERYTHING, None))[0]) == [
        "push_repo",
        "create_repo",
    ]
    assert kinds((await page_of_logs(db_pool, LogScope(other), EVERYTHING, None))[0]) == ["push_repo"]
    assert (await page_of_logs(db_pool, LogScope(acme, performer="someone"), EVERYTHING, None))[0] == []
    assert len((await page_of_logs(db_pool, LogScope(acme, performer="acme+bot"), EVERYTHING, None))[0]) == 3
    exported = [entry async for batch in all_logs(db_pool, LogScope(acme), EVERYTHING) for entry in batch]
    assert kinds(exported) == ["push_repo", "delete_tag", "create_repo"]


async def test_aggregates_count_per_kind_and_day(db_pool: asyncpg.Pool) -> None:
    _, acme = await organization(db_pool, "acme")
    yesterday = NOW - timedelta(days=1)
    await add_logs(
        db_pool,
        "acme",
        [
            ("push_repo", NOW, "app"),
            ("push_repo", NOW, "web"),
            ("push_repo", yesterday, "app"),
            ("delete_tag", yesterday, "app"),
        ],
    )

    counts = await aggregated_counts(db_pool, LogScope(acme), EVERYTHING)

    assert counts == [
        {"kind": "delete_tag", "count": 1, "datetime": "Thu, 14 Mar 2024 00:00:00 -0000"},
        {"kind": "push_repo", "count": 1, "datetime": "Thu, 14 Mar 2024 00:00:00 -0000"},
        {"kind": "push_repo", "count": 2, "datetime": "Fri, 15 Mar 2024 00:00:00 -0000"},
    ]


def test_time_ranges_follow_quays_day_rules_and_accept_iso() -> None:
    assert time_range("03/01/2024", "03/02/2024", NOW) == TimeRange(
        datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 3, 3, tzinfo=UTC)
    )
    assert time_range("2024-03-01", "2024-03-01T10:00:00+01:00", NOW) == TimeRange(
        datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 3, 1, 9, tzinfo=UTC)
    )
    assert time_range(None, None, NOW) == TimeRange(NOW - timedelta(days=1), NOW + timedelta(days=1))
    with pytest.raises(InvalidLogQueryError, match="starttime"):
        time_range("yesterday", None, NOW)
    with pytest.raises(InvalidLogQueryError, match="Invalid time span"):
        time_range("03/05/2024", "03/01/2024", NOW)
