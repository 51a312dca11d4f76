"""The tag lifecycle: history, expiration, deletion into the time machine, restore, permanent expiry,
and the announcement of tags whose expiration has passed.

A tag row is alive while its lifetime_end is NULL or in the future (manifest_store). Deleting a tag
ends its row: it stays restorable while ``lifetime_end + tag_expiration_s`` of its namespace (the
time-machine window) has not passed and it was not permanently expired. An expiration is a future
lifetime_end; once it passes the tag is simply no longer alive, and ``expire_due_tags`` announces it
(TagExpired). Every change to a tag name holds that name's lock (manifest_store.lock_tag).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta

import asyncpg
from pydantic import AwareDatetime, BaseModel, Field

from services.registry.domain.immutability import refuse_immutable
from services.registry.domain.manifest_store import lock_tag, point_tag
from services.registry.domain.repositories import Repository
from shared.events.models import TagExpired
from shared.events.outbox import enqueue
from shared.oci.mediatypes import INDEX_MANIFESTS
from shared.tags import announce_deleted_tags, end_live_row

logger = logging.getLogger(__name__)

EXPIRES_AFTER_LABEL = "quay.expires-after"
# Quay's LABELED_EXPIRATION_MAXIMUM: a label never keeps a tag longer than this.
MAX_LABELED_EXPIRATION = timedelta(weeks=104)
_MAX_LABELED_SECONDS = int(MAX_LABELED_EXPIRATION.total_seconds())
_DURATION = re.compile(r"([0-9]{1,9})([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
# How often the worker looks for tags whose expiration has passed, and how many it announces at once.
EXPIRY_CHECK_INTERVAL_S = 30.0
EXPIRY_BATCH_SIZE = 500

_LIVE = "(t.lifetime_end IS NULL OR t.lifetime_end > now())"
# Ended rows still in the time machine: not permanently expired and within the namespace's window.
_IN_TIME_MACHINE = (
    "t.lifetime_end <= now() AND NOT t.time_machine_removed"
    " AND t.lifetime_end > now() - make_interval(secs => n.tag_expiration_s)"
)


class TagNotFoundError(LookupError):
    """No such tag (or no such tag history) in the repository; the message says which."""


class ManifestNotFoundError(LookupError):
    """The repository has no manifest with this digest."""


class TimeMachineError(ValueError):
    """The tag can no longer be restored: it left the time machine; the message says why."""


class TagRecord(BaseModel):
    """One row of a tag's history: which manifest the name pointed at, and when."""

    name: str
    manifest_digest: str
    is_manifest_list: bool
    size: int | None
    lifetime_start: datetime
    lifetime_end: datetime | None
    reversion: bool


class HistoryPosition(BaseModel):
    """Where a history page starts: after the row (lifetime_start, name, id) in history order."""

    lifetime_start: AwareDatetime
    name: str = Field(max_length=128)
    id: int = Field(ge=0, le=2**63 - 1)


class TagHistoryPage(BaseModel):
    """A page of history rows, the position the page starts after (None past the history's end),
    and the position of its last row (where the next page starts)."""

    tags: list[TagRecord]
    has_additional: bool
    starts_after: HistoryPosition | None
    last: HistoryPosition | None


class ExpirationChange(BaseModel):
    """A live tag's expiration before and after a change (None: never expires)."""

    digest: str
    previous: datetime | None
    current: datetime | None


class HistoryFilter(BaseModel):
    """Which history rows to list: one tag name, names containing or equal to a text, live only."""

    specific_tag: str | None = None
    name_contains: str | None = None
    name_equals: str | None = None
    only_active: bool = False

    def names(self) -> set[str]:
        """The one name the rows must have, if any (two different names leave none)."""
        return {name for name in (self.specific_tag, self.name_equals) if name is not None}

    def variant(self) -> HistoryVariant:
        return HistoryVariant(
            by_name=bool(self.names()),
            containing=self.name_contains is not None,
            only_active=self.only_active,
        )

    def parameters(self) -> tuple[str, ...]:
        """The variant's query parameters after the fixed ones: the name, the contained text."""
        return (*self.names(), *((self.name_contains,) if self.name_contains is not None else ()))


class HistoryVariant(BaseModel, frozen=True):
    """Which filters a history query has: each combination is its own SQL (HISTORY_QUERIES)."""

    by_name: bool
    containing: bool
    only_active: bool


# History order: most recently started first; the tag_repository_history index (migration 0012) has it.
_HISTORY_ORDER = "t.lifetime_start DESC, t.name, t.id DESC"
_AFTER_POSITION = (
    "t.lifetime_start <= $2 AND (t.lifetime_start < $2 OR t.name > $3 OR (t.name = $3 AND t.id < $4))"
)


def _history_sql(variant: HistoryVariant) -> str:
    """$1 repository, $2..$4 the position (lifetime_start, name, id), $5 limit, $6 offset, then the
    name ($7) and/or the contained text (next) when filtered by them."""
    conditions = ["t.repository_id = $1", "NOT t.time_machine_removed", _AFTER_POSITION]
    next_parameter = 7
    if variant.by_name:
        conditions.append(f"t.name = ${next_parameter}")
        next_parameter += 1
    if variant.containing:
        conditions.append(f"strpos(t.name, ${next_parameter}) > 0")
    if variant.only_active:
        conditions.append(_LIVE)
    # The page's rows come from the index alone (keyset or offset); only they are joined to manifests.
    return (
        "SELECT t.id, t.name, m.digest, m.media_type, t.lifetime_start, t.lifetime_end, t.reversion,"
        " (SELECT sum(b.size) FROM manifest_blob mb JOIN blob b ON b.digest = mb.digest"
        "  WHERE mb.manifest_id = m.id AND mb.digest IS DISTINCT FROM m.config_digest) AS layers_size"
        " FROM (SELECT t.id, t.name, t.manifest_id, t.lifetime_start, t.lifetime_end, t.reversion"
        f" FROM tag t WHERE {' AND '.join(conditions)}"
        f" ORDER BY {_HISTORY_ORDER} LIMIT $5 OFFSET $6) t"
        " JOIN manifest m ON m.id = t.manifest_id"
        f" ORDER BY {_HISTORY_ORDER}"
    )


# Before every row: the first page.
HISTORY_START = HistoryPosition(lifetime_start=datetime.max.replace(tzinfo=UTC), name="", id=0)
HISTORY_QUERIES: dict[HistoryVariant, str] = {
    variant: _history_sql(variant)
    for variant in (
        HistoryVariant(by_name=by_name, containing=containing, only_active=only_active)
        for by_name in (False, True)
        for containing in (False, True)
        for only_active in (False, True)
    )
}


async def tag_history(
    db: asyncpg.Pool | asyncpg.Connection,
    repository_id: int,
    wanted: HistoryFilter,
    *,
    limit: int,
    after: HistoryPosition = HISTORY_START,
    skip: int = 0,
) -> TagHistoryPage:
    """Tag rows, live and ended (permanently expired ones excepted), most recently started first:
    up to ``limit`` of them after the position ``after``, skipping ``skip`` first (page numbers)."""
    names = wanted.names()
    if len(names) > 1:
        return TagHistoryPage(tags=[], has_additional=False, starts_after=after, last=None)
    # A skipping page also reads the row just before it: the position the page starts after.
    lead = 1 if skip > 0 else 0
    rows = await db.fetch(
        HISTORY_QUERIES[wanted.variant()],
        repository_id,
        after.lifetime_start,
        after.name,
        after.id,
        limit + 1 + lead,
        skip - lead,
        *wanted.parameters(),
    )
    starts_after = after if not lead else _position(rows[0]) if rows else None
    page_rows = rows[lead : lead + limit]
    records = [
        TagRecord(
            name=row["name"],
            manifest_digest=row["digest"],
            is_manifest_list=row["media_type"] in INDEX_MANIFESTS,
            size=None if row["media_type"] in INDEX_MANIFESTS else int(row["layers_size"] or 0),
            lifetime_start=row["lifetime_start"],
            lifetime_end=row["lifetime_end"],
            reversion=row["reversion"],
        )
        for row in page_rows
    ]
    return TagHistoryPage(
        tags=records,
        has_additional=len(rows) > lead + limit,
        starts_after=starts_after,
        last=_position(page_rows[-1]) if page_rows else None,
    )


def _position(row: asyncpg.Record) -> HistoryPosition:
    return HistoryPosition(lifetime_start=row["lifetime_start"], name=row["name"], id=row["id"])


async def _live_target(conn: asyncpg.Connection, repository_id: int, name: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT t.id, t.manifest_id, t.lifetime_end, m.digest FROM tag t JOIN manifest m ON m.id = t.manifest_id"
        f" WHERE t.repository_id = $1 AND t.name = $2 AND {_LIVE}",
        repository_id,
        name,
    )


async def retarget_tag(conn: asyncpg.Connection, repository_id: int, name: str, digest: str) -> str | None:
    """Create the tag or move it to the repository's manifest ``digest``; the digest it pointed at before.

    ManifestNotFoundError when the repository has no such manifest; ImmutableTagError when it would
    move an immutable tag.
    """
    async with conn.transaction():
        manifest_id = await conn.fetchval(
            "SELECT id FROM manifest WHERE repository_id = $1 AND digest = $2 FOR KEY SHARE",
            repository_id,
            digest,
        )
        if manifest_id is None:
            raise ManifestNotFoundError(f"no manifest {digest} in this repository")
        await lock_tag(conn, repository_id, name)
        previous = await _live_target(conn, repository_id, name)
        if previous is not None and previous["digest"] != digest:
            await refuse_immutable(conn, repository_id, [name])
        await point_tag(conn, repository_id, name, manifest_id)
    return previous["digest"] if previous else None


async def set_expiration(
    conn: asyncpg.Connection, repository_id: int, name: str, expiration: datetime | None
) -> ExpirationChange:
    """Make the live tag expire at ``expiration`` (a future instant), or never when None.

    TagNotFoundError when the tag is not alive; ImmutableTagError when it is immutable and would expire.
    """
    async with conn.transaction():
        await lock_tag(conn, repository_id, name)
        live = await _live_target(conn, repository_id, name)
        if live is None:
            raise TagNotFoundError(f"no tag {name!r} in this repository")
        if expiration is not None:
            await refuse_immutable(conn, repository_id, [name])
        await conn.execute(
            "UPDATE tag SET lifetime_end = $2, expiry_pending = $2::timestamptz IS NOT NULL WHERE id = $1",
            live["id"],
            expiration,
        )
    return ExpirationChange(digest=live["digest"], previous=live["lifetime_end"], current=expiration)


async def delete_tag(
    conn: asyncpg.Connection,
    repository: Repository,
    name: str,
    performer: str | None,
    *,
    permanently: bool = False,
) -> str:
    """End the live tag and announce it (TagDeleted); its digest. The ended tag enters the time
    machine, unless ``permanently``: then it can never be restored.

    TagNotFoundError when the tag is not alive, ImmutableTagError when it is immutable.
    """
    async with conn.transaction():
        await lock_tag(conn, repository.id, name)
        live = await _live_target(conn, repository.id, name)
        if live is None:
            raise TagNotFoundError(f"no tag {name!r} in this repository")
        await refuse_immutable(conn, repository.id, [name])
        await end_live_row(conn, live["id"], remove_from_time_machine=permanently)
        await announce_deleted_tags(
            conn, repository.namespace, repository.name, {name: live["digest"]}, performer
        )
    digest: str = live["digest"]
    return digest


async def restore_tag(conn: asyncpg.Connection, repository_id: int, name: str, digest: str) -> None:
    """Point the tag at ``digest`` again, a manifest it pointed at before, as a new reversion row.

    Allowed while a row of that tag and manifest is in the time machine; nothing changes when the
    tag points there already. TagNotFoundError when the tag never pointed at the manifest,
    TimeMachineError when that history has left the time machine, ImmutableTagError when the live tag
    is immutable.
    """
    async with conn.transaction():
        await lock_tag(conn, repository_id, name)
        live = await _live_target(conn, repository_id, name)
        if live is not None and live["digest"] == digest:
            return
        former = await conn.fetchrow(
            "SELECT t.manifest_id, n.tag_expiration_s, bool_or(" + _IN_TIME_MACHINE + ") AS restorable"
            " FROM tag t JOIN manifest m ON m.id = t.manifest_id"
            " JOIN repository r ON r.id = t.repository_id JOIN namespace n ON n.id = r.namespace_id"
            " WHERE t.repository_id = $1 AND t.name = $2 AND m.digest = $3 AND t.lifetime_end <= now()"
            " GROUP BY t.manifest_id, n.tag_expiration_s",
            repository_id,
            name,
            digest,
        )
        if former is None:
            raise TagNotFoundError(f"tag {name!r} never pointed at {digest} in this repository")
        if not former["restorable"]:
            raise TimeMachineError(
                f"tag {name!r} can no longer be restored to {digest}: it has left the time machine"
                f" (deleted tags are kept {former['tag_expiration_s']} seconds in this namespace,"
                " unless permanently expired)"
            )
        if live is not None:
            await refuse_immutable(conn, repository_id, [name])
            await end_live_row(conn, live["id"], remove_from_time_machine=False)
        await conn.execute(
            "INSERT INTO tag (repository_id, name, manifest_id, reversion) VALUES ($1, $2, $3, true)",
            repository_id,
            name,
            former["manifest_id"],
        )


async def remove_from_time_machine(
    conn: asyncpg.Connection, repository_id: int, name: str, digest: str
) -> None:
    """Take the tag's ended rows for ``digest`` out of the time machine: they can no longer be restored.

    TagNotFoundError when no such row is in the time machine.
    """
    async with conn.transaction():
        await lock_tag(conn, repository_id, name)
        removed = await conn.fetch(
            "UPDATE tag t SET time_machine_removed = true FROM manifest m, repository r, namespace n"
            " WHERE m.id = t.manifest_id AND r.id = t.repository_id AND n.id = r.namespace_id"
            f" AND t.repository_id = $1 AND t.name = $2 AND m.digest = $3 AND {_IN_TIME_MACHINE}"
            " RETURNING t.id",
            repository_id,
            name,
            digest,
        )
    if not removed:
        raise TagNotFoundError(f"no deleted tag {name!r} for {digest} in the time machine")


def labeled_expiration(text: str) -> timedelta | None:
    """The lifetime a ``quay.expires-after`` value gives: a positive '<n><s|m|h|d|w>' duration (Quay's
    timedelta strings: 30s, 90m, 3h, 1d, 2w), at most MAX_LABELED_EXPIRATION; None when unreadable."""
    matched = _DURATION.fullmatch(text.strip())
    if matched is None or int(matched[1]) == 0:
        return None
    seconds = int(matched[1]) * _UNIT_SECONDS[matched[2]]
    return timedelta(seconds=min(seconds, _MAX_LABELED_SECONDS))


async def expire_pushed_tags(
    conn: asyncpg.Connection, repository_id: int, manifest_id: int, tags: list[str], labels: Mapping[str, str]
) -> None:
    """Apply the ``quay.expires-after`` label of a pushed manifest to the tag rows the push created.

    Each expires the label's lifetime after its start (labeled_expiration); an unreadable value is
    ignored, as Quay does. Run it in the push's transaction, after the tags were pointed.
    """
    lifetime = labeled_expiration(labels.get(EXPIRES_AFTER_LABEL, ""))
    if lifetime is None or not tags:
        return
    # lifetime_start = now(): the rows inserted by this transaction. A tag that already pointed at
    # the manifest keeps its row, and its expiration (or none), as a re-push changes nothing.
    await conn.execute(
        "UPDATE tag SET lifetime_end = lifetime_start + $4::interval, expiry_pending = true"
        " WHERE repository_id = $1 AND name = ANY($2::text[]) AND manifest_id = $3"
        " AND lifetime_end IS NULL AND lifetime_start = now()",
        repository_id,
        tags,
        manifest_id,
        lifetime,
    )


async def expire_due_tags(conn: asyncpg.Connection, now: datetime, limit: int = EXPIRY_BATCH_SIZE) -> int:
    """Announce (TagExpired) the tags whose expiration is at or before ``now`` and not yet announced.

    Each is announced once, in the transaction that marks it announced; several workers may run
    this at once. Returns how many were announced (at most ``limit``: call again while it is).
    """
    async with conn.transaction():
        rows = await conn.fetch(
            "WITH due AS (SELECT id FROM tag WHERE expiry_pending AND lifetime_end <= $1"
            "  ORDER BY lifetime_end LIMIT $2 FOR UPDATE SKIP LOCKED)"
            " UPDATE tag t SET expiry_pending = false FROM due, manifest m, repository r, namespace n"
            " WHERE t.id = due.id AND m.id = t.manifest_id AND r.id = t.repository_id AND n.id = r.namespace_id"
            " RETURNING n.name AS namespace, r.name AS repository, r.state, t.name AS tag, m.digest",
            now,
            limit,
        )
        for row in rows:
            if row["state"] == "MARKED_FOR_DELETION":
                continue
            await enqueue(
                conn,
                TagExpired(
                    namespace=row["namespace"],
                    repository=row["repository"],
                    tag=row["tag"],
                    digest=row["digest"],
                ),
            )
    return len(rows)


async def _announce_expirations_forever(pool: asyncpg.Pool, interval_s: float) -> None:
    while True:
        try:
            async with pool.acquire() as conn:
                now = await conn.fetchval("SELECT now()")
                while await expire_due_tags(conn, now) == EXPIRY_BATCH_SIZE:
                    pass
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            logger.exception("announcing expired tags failed; retrying in %s s", interval_s)
        await asyncio.sleep(interval_s)


@contextlib.asynccontextmanager
async def announcing_expired_tags(
    pool: asyncpg.Pool, interval_s: float = EXPIRY_CHECK_INTERVAL_S
) -> AsyncIterator[None]:
    """Run expire_due_tags every ``interval_s`` seconds while the context is open."""
    task = asyncio.create_task(_announce_expirations_forever(pool, interval_s))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
