"""Tag changes that more than one service makes: the per-name lock, ending a live tag row into the
time machine and announcing it, and the immutability check that guards both.

The registry (tag DELETE, pushes) and the gc service (auto-prune) end tags the same way, so that an
auto-pruned tag is exactly as restorable as a deleted one.

Tag patterns (immutability and auto-prune policies) are regular expressions matched against the
whole tag name. They come from administrators but are still untrusted input: they run under the
``regex`` library's time limit, off the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterable, Mapping
from functools import lru_cache

import asyncpg
import regex

from shared.events.models import TagDeleted
from shared.events.outbox import enqueue

MATCH_TIMEOUT_S = 0.05


@lru_cache(maxsize=1024)
def compiled_pattern(pattern: str) -> regex.Pattern[str]:
    """The compiled pattern; regex.error when it is not a regular expression."""
    return regex.compile(pattern)


def fully_matches(pattern: str, tag: str) -> bool | None:
    """Whether the whole tag name matches the pattern; None when matching exceeds MATCH_TIMEOUT_S."""
    try:
        return compiled_pattern(pattern).fullmatch(tag, timeout=MATCH_TIMEOUT_S) is not None
    except TimeoutError:
        return None


def _protects(pattern: str, pattern_matches: bool, tag: str) -> bool:
    matched = fully_matches(pattern, tag)
    if matched is None:  # the safe answer is "immutable"
        return True
    return matched if pattern_matches else not matched


def _protected(policies: list[tuple[str, bool]], tags: Iterable[str]) -> list[str]:
    return [tag for tag in tags if any(_protects(pattern, matches, tag) for pattern, matches in policies)]


async def immutable_tags(conn: asyncpg.Connection, repository_id: int, tags: Collection[str]) -> list[str]:
    """The names among ``tags`` that the immutability policies of the repository and its organization
    protect (migration 0007: a policy protects the names it fully matches, or with
    tag_pattern_matches false those it does not; a match that times out protects)."""
    if not tags:
        return []
    rows = await conn.fetch(
        "SELECT p.tag_pattern, p.tag_pattern_matches FROM immutability_policy p"
        " JOIN repository r ON r.namespace_id = p.namespace_id"
        " WHERE r.id = $1 AND p.repository_id IS NULL"
        " UNION ALL"
        " SELECT tag_pattern, tag_pattern_matches FROM immutability_policy WHERE repository_id = $1",
        repository_id,
    )
    if not rows:
        return []
    policies = [(row[0], row[1]) for row in rows]
    return await asyncio.to_thread(_protected, policies, list(tags))


async def lock_tag(conn: asyncpg.Connection, repository_id: int, tag: str) -> None:
    """Serialize the writers of one tag name until the caller's transaction ends."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('tag:' || $1::bigint || ':' || $2, 0))",
        repository_id,
        tag,
    )


async def end_live_row(conn: asyncpg.Connection, tag_id: int, *, remove_from_time_machine: bool) -> None:
    """End a live tag row now: it enters the time machine (restorable for the namespace's window),
    unless ``remove_from_time_machine``. The caller holds the name's lock."""
    await conn.execute(
        "UPDATE tag SET lifetime_end = now(), expiry_pending = false,"
        " time_machine_removed = time_machine_removed OR $2 WHERE id = $1",
        tag_id,
        remove_from_time_machine,
    )


async def announce_deleted_tags(
    conn: asyncpg.Connection,
    namespace: str,
    repository: str,
    deleted: Mapping[str, str],
    performer: str | None,
) -> None:
    """Enqueue TagDeleted for each deleted tag (name -> the digest it pointed at), in the caller's
    transaction."""
    for tag, digest in deleted.items():
        await enqueue(
            conn,
            TagDeleted(
                namespace=namespace, repository=repository, tag=tag, digest=digest, performer=performer
            ),
        )
