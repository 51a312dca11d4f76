"""Auto-prune: the gc worker ends the live tags that auto-prune policies select (Quay's auto-prune).

Policies (migration 0015, managed through the registry's autoprunepolicy API) belong to a namespace
(every repository of it) or to one repository. A policy covers the live tags whose whole name
matches its pattern (tagPatternMatches true) or does not (false); without a pattern, every live tag.
A match that exceeds the regex time limit counts as not covered: such a tag is neither kept nor
pruned by that policy.

- number_of_tags N: the N most recently started covered tags (by lifetime_start) stay, the others
  are ended;
- creation_date D: the covered tags that started more than D ago are ended.

Ending a tag is what a tag DELETE does (shared.tags): under the name's lock, lifetime_end = now, so
the tag enters the time machine and stays restorable for its namespace's window; TagDeleted is
published through the outbox and a usage log line of Quay's kind ``autoprune_tag_delete`` is written,
in the same transaction. Immutable tags (immutability policies) are never ended. Tags are read in
pages of PAGE_SIZE on the tag_repository_history index and ended in one transaction per page.
"""

from __future__ import annotations

import asyncio
from collections import Counter as Tally
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Literal

import asyncpg
from prometheus_client import Counter
from pydantic import BaseModel, Field

from shared.readonly_state import registry_read_only
from shared.tags import announce_deleted_tags, end_live_row, fully_matches, immutable_tags, lock_tag
from shared.usage_logs import record

PAGE_SIZE = 200
POLICY_BATCH_SIZE = 100
# How many pruned tags a report lists by name (its counts are always complete).
REPORT_TAG_LIMIT = 1000
PERFORMER = "autoprune worker"

TAGS_PRUNED = Counter(
    "quayside_gc_autoprune_tags_pruned_total",
    "Tags ended by auto-prune policies, by method (number_of_tags, creation_date)",
    ["method"],
)
IMMUTABLE_KEPT = Counter(
    "quayside_gc_autoprune_immutable_kept_total",
    "Tags an auto-prune policy selected but left alive because they are immutable",
)

_LIVE = "(t.lifetime_end IS NULL OR t.lifetime_end > now())"
# Newest first, in the order of the tag_repository_history index (migration 0012); $2..$4 the position.
_PAGE = (
    "SELECT t.id, t.name, t.lifetime_start, m.digest FROM tag t JOIN manifest m ON m.id = t.manifest_id"
    f" WHERE t.repository_id = $1 AND {_LIVE}"
    " AND t.lifetime_start <= $2 AND (t.lifetime_start < $2 OR t.name > $3 OR (t.name = $3 AND t.id < $4))"
    " {extra} ORDER BY t.lifetime_start DESC, t.name, t.id DESC LIMIT {limit}"
)
_PAGE_ALL = _PAGE.format(extra="", limit=PAGE_SIZE)
_PAGE_STARTED_BEFORE = _PAGE.format(extra="AND t.lifetime_start < $5", limit=PAGE_SIZE)


class PrunedTag(BaseModel):
    namespace: str
    repository: str
    tag: str
    digest: str
    method: str


class AutopruneReport(BaseModel):
    """What one auto-prune pass ended (with dry_run: would end)."""

    dry_run: bool
    skipped_read_only: bool = False
    policies: int = 0
    repositories: int = 0
    tags_pruned: dict[str, int] = Field(default_factory=dict)
    immutable_kept: int = 0
    # The first REPORT_TAG_LIMIT pruned tags.
    pruned: list[PrunedTag] = Field(default_factory=list)

    @property
    def total_pruned(self) -> int:
        return sum(self.tags_pruned.values())


class _Policy(BaseModel):
    uuid: str
    namespace_id: int
    namespace: str
    repository_id: int | None
    method: Literal["number_of_tags", "creation_date"]
    tag_count: int | None
    max_age: str | None
    max_age_s: int | None
    tag_pattern: str | None
    tag_pattern_matches: bool

    @property
    def value(self) -> int | str | None:
        return self.tag_count if self.method == "number_of_tags" else self.max_age

    def covers(self, tag: str) -> bool:
        if self.tag_pattern is None:
            return True
        matched = fully_matches(self.tag_pattern, tag)
        if matched is None:
            return False
        return matched if self.tag_pattern_matches else not matched


class _Repository(BaseModel):
    id: int
    name: str


class _Tag(BaseModel):
    id: int
    name: str
    lifetime_start: datetime
    digest: str


async def run_autoprune(
    pool: asyncpg.Pool, *, now: datetime | None = None, dry_run: bool = False
) -> AutopruneReport:
    """Apply every auto-prune policy once; ``now`` (default: the current time) is the instant
    creation_date ages are measured from. Nothing is ended while the registry is read-only."""
    report = AutopruneReport(dry_run=dry_run)
    if not dry_run and await registry_read_only(pool):
        report.skipped_read_only = True
        return report
    now = now or datetime.now(UTC)
    pruned: Tally[str] = Tally()
    async for policy in _policies(pool):
        report.policies += 1
        async for repository in _repositories(pool, policy):
            report.repositories += 1
            await _apply(pool, policy, repository, now, dry_run, report, pruned)
    report.tags_pruned = dict(pruned)
    if not dry_run:
        for method, count in pruned.items():
            TAGS_PRUNED.labels(method).inc(count)
        IMMUTABLE_KEPT.inc(report.immutable_kept)
    return report


async def _policies(pool: asyncpg.Pool) -> AsyncIterator[_Policy]:
    after = 0
    while True:
        rows = await pool.fetch(
            "SELECT p.id, p.uuid::text AS uuid, p.namespace_id, n.name AS namespace, p.repository_id, p.method,"
            " p.tag_count, p.max_age, p.max_age_s, p.tag_pattern, p.tag_pattern_matches"
            " FROM autoprune_policy p JOIN namespace n ON n.id = p.namespace_id"
            " WHERE p.id > $1 AND NOT n.marked_for_deletion ORDER BY p.id LIMIT $2",
            after,
            POLICY_BATCH_SIZE,
        )
        for row in rows:
            yield _Policy.model_validate(dict(row))
        if len(rows) < POLICY_BATCH_SIZE:
            return
        after = rows[-1]["id"]


async def _repositories(pool: asyncpg.Pool, policy: _Policy) -> AsyncIterator[_Repository]:
    """The repositories the policy covers, except those being deleted."""
    if policy.repository_id is not None:
        row = await pool.fetchrow(
            "SELECT id, name FROM repository WHERE id = $1 AND state <> 'MARKED_FOR_DELETION'",
            policy.repository_id,
        )
        if row is not None:
            yield _Repository.model_validate(dict(row))
        return
    after = ""
    while True:
        rows = await pool.fetch(
            'SELECT id, name FROM repository WHERE namespace_id = $1 AND name COLLATE "C" > $2'
            " AND state <> 'MARKED_FOR_DELETION' ORDER BY name COLLATE \"C\" LIMIT $3",
            policy.namespace_id,
            after,
            PAGE_SIZE,
        )
        for row in rows:
            yield _Repository.model_validate(dict(row))
        if len(rows) < PAGE_SIZE:
            return
        after = rows[-1]["name"]


async def _live_pages(
    pool: asyncpg.Pool, repository_id: int, started_before: datetime | None
) -> AsyncIterator[list[_Tag]]:
    """The repository's live tags, newest first, a page at a time (only those started before
    ``started_before`` when given)."""
    position: tuple[datetime, str, int] = (datetime.max.replace(tzinfo=UTC), "", 0)
    while True:
        if started_before is None:
            rows = await pool.fetch(_PAGE_ALL, repository_id, *position)
        else:
            rows = await pool.fetch(_PAGE_STARTED_BEFORE, repository_id, *position, started_before)
        if not rows:
            return
        yield [_Tag.model_validate(dict(row)) for row in rows]
        if len(rows) < PAGE_SIZE:
            return
        last = rows[-1]
        position = (last["lifetime_start"], last["name"], last["id"])


def _covered(policy: _Policy, tags: list[_Tag]) -> list[_Tag]:
    return [tag for tag in tags if policy.covers(tag.name)]


async def _apply(
    pool: asyncpg.Pool,
    policy: _Policy,
    repository: _Repository,
    now: datetime,
    dry_run: bool,
    report: AutopruneReport,
    pruned: Tally[str],
) -> None:
    kept = 0
    started_before = None
    if policy.method == "creation_date":
        assert policy.max_age_s is not None
        started_before = now - timedelta(seconds=policy.max_age_s)
    async for page in _live_pages(pool, repository.id, started_before):
        covered = await asyncio.to_thread(_covered, policy, page)
        if policy.method == "number_of_tags":
            assert policy.tag_count is not None
            keep = max(0, min(len(covered), policy.tag_count - kept))
            kept += keep
            covered = covered[keep:]
        if covered:
            await _end_tags(pool, policy, repository, covered, dry_run, report, pruned)


async def _end_tags(
    pool: asyncpg.Pool,
    policy: _Policy,
    repository: _Repository,
    tags: list[_Tag],
    dry_run: bool,
    report: AutopruneReport,
    pruned: Tally[str],
) -> None:
    """End the tags that are still live and not immutable, in one transaction."""
    async with pool.acquire() as conn, conn.transaction():
        if not dry_run:
            for name in sorted({tag.name for tag in tags}):
                await lock_tag(conn, repository.id, name)
            still_live = {
                row["id"]
                for row in await conn.fetch(
                    f"SELECT t.id FROM tag t WHERE t.id = ANY($1::bigint[]) AND {_LIVE}",
                    [tag.id for tag in tags],
                )
            }
            tags = [tag for tag in tags if tag.id in still_live]
        protected = set(await immutable_tags(conn, repository.id, [tag.name for tag in tags]))
        report.immutable_kept += sum(1 for tag in tags if tag.name in protected)
        for tag in tags:
            if tag.name in protected:
                continue
            pruned[policy.method] += 1
            if len(report.pruned) < REPORT_TAG_LIMIT:
                report.pruned.append(
                    PrunedTag(
                        namespace=policy.namespace,
                        repository=repository.name,
                        tag=tag.name,
                        digest=tag.digest,
                        method=policy.method,
                    )
                )
            if dry_run:
                continue
            await end_live_row(conn, tag.id, remove_from_time_machine=False)
            await announce_deleted_tags(conn, policy.namespace, repository.name, {tag.name: tag.digest}, None)
            await record(
                conn,
                "autoprune_tag_delete",
                performer=None,
                ip=None,
                namespace=policy.namespace,
                repository=repository.name,
                metadata={
                    "performer": PERFORMER,
                    "tag": tag.name,
                    "manifest_digest": tag.digest,
                    "method": policy.method,
                    "value": policy.value,
                    "policy_uuid": policy.uuid,
                },
            )
