"""Tag immutability policies: which live tags may not be moved, deleted or expired.

A policy belongs to an organization (covering every repository of it) or to one repository. Its
``tag_pattern`` is a regular expression matched against the whole tag name (fullmatch semantics:
``v1`` covers ``v1`` only, ``v1.*`` covers ``v1`` and ``v1.2``). ``tag_pattern_matches`` true makes
the tags it matches immutable, false the tags it does not match. A tag is immutable while at least
one policy covering its repository says so: policies are evaluated at each change, so a new policy
protects existing tags at once and a deleted one releases them.

Patterns come from administrators but are still untrusted input: they run under the ``regex``
library's time limit, off the event loop, and a pattern that exceeds it counts as covering the tag
(the safe answer is "immutable").
"""

from __future__ import annotations

import uuid
from collections.abc import Collection

import asyncpg
import regex
from pydantic import BaseModel, ConfigDict

from services.registry.domain.owned_policies import MAX_POLICIES_PER_OWNER as MAX_POLICIES_PER_OWNER
from services.registry.domain.owned_policies import PolicyError as PolicyError
from services.registry.domain.owned_policies import PolicyOwner as PolicyOwner
from services.registry.domain.owned_policies import PolicyTable, owner_filter
from shared.tags import compiled_pattern, immutable_tags, lock_tag

MAX_PATTERN_LENGTH = 256


class ImmutableTagError(Exception):
    """The change would move, delete or expire an immutable tag."""

    def __init__(self, tag: str) -> None:
        super().__init__(
            f"tag {tag!r} is immutable: an immutability policy of its repository or organization protects it"
        )
        self.tag = tag


class PolicyRules(BaseModel):
    model_config = ConfigDict(frozen=True)

    tag_pattern: str
    tag_pattern_matches: bool = True


class ImmutabilityPolicy(PolicyRules):
    uuid: uuid.UUID


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:  # a lone surrogate: no PostgreSQL text holds it
        return False
    return True


def checked_pattern(pattern: str) -> str:
    """The pattern without surrounding blanks; PolicyError when empty, too long or not a regex."""
    stripped = pattern.strip()
    if not stripped:
        raise PolicyError("tagPattern is required and must be a non-empty string")
    if len(stripped) > MAX_PATTERN_LENGTH:
        raise PolicyError(f"tagPattern must be {MAX_PATTERN_LENGTH} characters or less")
    if "\0" in stripped or not _encodable(stripped):
        raise PolicyError("tagPattern must be UTF-8 text without NUL characters")
    try:
        compiled_pattern(stripped)
    except regex.error as error:
        raise PolicyError(f"Invalid regex pattern: {error}") from error
    return stripped


async def refuse_immutable(conn: asyncpg.Connection, repository_id: int, tags: Collection[str]) -> None:
    """ImmutableTagError naming the first of ``tags`` that a policy protects."""
    protected = await immutable_tags(conn, repository_id, tags)
    if protected:
        raise ImmutableTagError(protected[0])


async def refuse_moving_immutable_tags(
    conn: asyncpg.Connection, repository_id: int, tags: Collection[str], digest: str
) -> None:
    """For a push of ``digest`` under ``tags``: ImmutableTagError when it would move a live immutable
    tag to another manifest (creating a tag, or pushing the digest it points at, is fine).

    Locks the tag names until the caller's transaction ends, so no concurrent push moves them between
    this check and the caller's change.
    """
    if not tags:
        return
    for tag in sorted(tags):
        await lock_tag(conn, repository_id, tag)
    rows = await conn.fetch(
        "SELECT t.name FROM tag t JOIN manifest m ON m.id = t.manifest_id"
        " WHERE t.repository_id = $1 AND t.name = ANY($2::text[])"
        " AND (t.lifetime_end IS NULL OR t.lifetime_end > now()) AND m.digest <> $3",
        repository_id,
        list(tags),
        digest,
    )
    await refuse_immutable(conn, repository_id, [row["name"] for row in rows])


def _policy(row: asyncpg.Record) -> ImmutabilityPolicy:
    return ImmutabilityPolicy(
        uuid=row["uuid"], tag_pattern=row["tag_pattern"], tag_pattern_matches=row["tag_pattern_matches"]
    )


_COLUMNS = "uuid, tag_pattern, tag_pattern_matches"
_TABLE = PolicyTable("immutability_policy", _COLUMNS, "immutability", _policy)
list_policies = _TABLE.list
get_policy = _TABLE.get
delete_policy = _TABLE.delete


def _duplicate(rules: PolicyRules) -> PolicyError:
    return PolicyError(f"A policy with the tagPattern {rules.tag_pattern!r} already exists")


async def create_policy(
    conn: asyncpg.Connection, owner: PolicyOwner, rules: PolicyRules
) -> ImmutabilityPolicy:
    """Store a new policy of the owner; PolicyError for a duplicate pattern or one policy too many."""
    async with conn.transaction():
        await _TABLE.lock_room_for_one_more(conn, owner)
        try:
            row = await conn.fetchrow(
                "INSERT INTO immutability_policy"
                " (uuid, namespace_id, repository_id, tag_pattern, tag_pattern_matches)"
                f" VALUES ($1, $2, $3, $4, $5) RETURNING {_COLUMNS}",
                uuid.uuid4(),
                owner.namespace_id,
                owner.repository_id,
                rules.tag_pattern,
                rules.tag_pattern_matches,
            )
        except asyncpg.UniqueViolationError as error:
            raise _duplicate(rules) from error
    return _policy(row)


async def update_policy(
    conn: asyncpg.Connection, owner: PolicyOwner, policy_uuid: uuid.UUID, rules: PolicyRules
) -> ImmutabilityPolicy:
    """Replace the policy's rules; PolicyNotFoundError, or PolicyError for a duplicate pattern."""
    where, parameters = owner_filter(owner, 4)
    try:
        async with conn.transaction():
            row = await conn.fetchrow(
                "UPDATE immutability_policy SET tag_pattern = $2, tag_pattern_matches = $3"
                f" WHERE uuid = $1 AND {where} RETURNING {_COLUMNS}",
                policy_uuid,
                rules.tag_pattern,
                rules.tag_pattern_matches,
                *parameters,
            )
    except asyncpg.UniqueViolationError as error:
        raise _duplicate(rules) from error
    if row is None:
        raise _TABLE.not_found(policy_uuid)
    return _policy(row)
