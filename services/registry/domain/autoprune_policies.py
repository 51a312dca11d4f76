"""Auto-prune policies: which tags the gc worker ends on its own (services/gc/autoprune.py).

A policy belongs to a namespace (an organization or a user: it covers every repository of it) or to
one repository. Its method is Quay's: ``number_of_tags`` keeps that many of the most recently
started tags it covers, ``creation_date`` ends the tags it covers that started longer ago than a
duration ('7d'). It covers every tag, or with ``tag_pattern`` the tags whose whole name matches it
(``tag_pattern_matches`` true) or does not (false). Policies of one owner are unique: Quay refuses a
second policy with the same method, value and pattern.
"""

from __future__ import annotations

import re
import uuid
from typing import Literal

import asyncpg
from pydantic import BaseModel, ConfigDict

from services.registry.domain import immutability

Method = Literal["number_of_tags", "creation_date"]
METHODS: tuple[Method, ...] = ("number_of_tags", "creation_date")
MAX_TAG_COUNT = 100_000
# Policies of one namespace, and of one repository: each pass of the worker evaluates them all.
MAX_POLICIES_PER_OWNER = 50
# Quay's duration strings (TAG_EXPIRATION_OPTIONS): a count and a unit, m = minutes, y = 365 days.
_DURATION = re.compile(r"([0-9]{1,6})([smhdwy])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800, "y": 365 * 86_400}


class PolicyError(ValueError):
    """The policy cannot be stored as asked (bad method, value or pattern, duplicate, too many)."""


class PolicyNotFoundError(LookupError):
    """No such policy for this namespace or repository."""


class PolicyOwner(BaseModel):
    """A namespace (``repository_id`` None) or one of its repositories."""

    model_config = ConfigDict(frozen=True)

    namespace_id: int
    repository_id: int | None = None


class PruneRules(BaseModel):
    """A checked policy: ``value`` is a tag count for number_of_tags, a duration for creation_date."""

    model_config = ConfigDict(frozen=True)

    method: Method
    value: int | str
    tag_pattern: str | None = None
    tag_pattern_matches: bool = True


class AutoprunePolicy(PruneRules):
    uuid: uuid.UUID


def duration_seconds(text: str) -> int | None:
    """The seconds of a positive Quay duration ('30s', '90m', '3h', '7d', '2w', '1y'); None otherwise."""
    matched = _DURATION.fullmatch(text)
    if matched is None or int(matched[1]) == 0:
        return None
    return int(matched[1]) * _UNIT_SECONDS[matched[2]]


def checked_rules(
    method: object, value: object, tag_pattern: str | None, tag_pattern_matches: bool
) -> PruneRules:
    """The rules of a request body; PolicyError with Quay's message when one is not acceptable."""
    if method not in METHODS:
        raise PolicyError("Invalid method provided")
    if method == "number_of_tags":
        # bool is an int to Python, never to a JSON client.
        if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= MAX_TAG_COUNT:
            raise PolicyError(
                f"Invalid value given for method type: number_of_tags takes a tag count from 1 to {MAX_TAG_COUNT}"
            )
    elif not isinstance(value, str) or duration_seconds(value.strip()) is None:
        raise PolicyError(
            "Invalid value given for method type: creation_date takes a duration such as 30s, 90m, 3h, 7d, 4w or 1y"
        )
    pattern = None
    if tag_pattern is not None:
        try:
            pattern = immutability.checked_pattern(tag_pattern)
        except immutability.PolicyError as error:
            raise PolicyError(str(error)) from error
    return PruneRules(
        method=method,
        value=value.strip() if isinstance(value, str) else value,
        tag_pattern=pattern,
        tag_pattern_matches=tag_pattern_matches,
    )


def _owner_filter(owner: PolicyOwner, first_parameter: int) -> tuple[str, list[object]]:
    """The WHERE clause of the owner's own policies, with its parameters from ``$first_parameter``."""
    if owner.repository_id is None:
        return f"namespace_id = ${first_parameter} AND repository_id IS NULL", [owner.namespace_id]
    return f"repository_id = ${first_parameter}", [owner.repository_id]


_COLUMNS = "uuid, method, tag_count, max_age, tag_pattern, tag_pattern_matches"


def _policy(row: asyncpg.Record) -> AutoprunePolicy:
    return AutoprunePolicy(
        uuid=row["uuid"],
        method=row["method"],
        value=row["tag_count"] if row["method"] == "number_of_tags" else row["max_age"],
        tag_pattern=row["tag_pattern"],
        tag_pattern_matches=row["tag_pattern_matches"],
    )


def _stored_values(rules: PruneRules) -> tuple[int | None, str | None, int | None]:
    """(tag_count, max_age, max_age_s) of the rules."""
    if rules.method == "number_of_tags":
        assert isinstance(rules.value, int)
        return rules.value, None, None
    assert isinstance(rules.value, str)
    return None, rules.value, duration_seconds(rules.value)


async def list_policies(conn: asyncpg.Connection, owner: PolicyOwner) -> list[AutoprunePolicy]:
    """The owner's policies (at most MAX_POLICIES_PER_OWNER), oldest first."""
    where, parameters = _owner_filter(owner, 1)
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM autoprune_policy WHERE {where} ORDER BY id LIMIT {MAX_POLICIES_PER_OWNER}",
        *parameters,
    )
    return [_policy(row) for row in rows]


async def get_policy(conn: asyncpg.Connection, owner: PolicyOwner, policy_uuid: uuid.UUID) -> AutoprunePolicy:
    where, parameters = _owner_filter(owner, 2)
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM autoprune_policy WHERE uuid = $1 AND {where}", policy_uuid, *parameters
    )
    if row is None:
        raise PolicyNotFoundError(f"no auto-prune policy {policy_uuid}")
    return _policy(row)


async def _lock_owner(conn: asyncpg.Connection, owner: PolicyOwner) -> None:
    """Serialize the policy changes of one owner until the caller's transaction ends."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('autoprune:' || $1::bigint || ':' || $2::text, 0))",
        owner.namespace_id,
        str(owner.repository_id),
    )


async def _refuse_duplicate(
    conn: asyncpg.Connection, owner: PolicyOwner, rules: PruneRules, other_than: uuid.UUID | None
) -> None:
    existing = [policy for policy in await list_policies(conn, owner) if policy.uuid != other_than]
    if any(PruneRules.model_validate(policy.model_dump(exclude={"uuid"})) == rules for policy in existing):
        scope = "namespace" if owner.repository_id is None else "repository"
        raise PolicyError(
            f"Existing policy with same values for this {scope}, duplicate policies are not permitted"
        )


async def create_policy(conn: asyncpg.Connection, owner: PolicyOwner, rules: PruneRules) -> AutoprunePolicy:
    """Store a new policy of the owner; PolicyError for a duplicate or one policy too many."""
    async with conn.transaction():
        await _lock_owner(conn, owner)
        where, parameters = _owner_filter(owner, 1)
        count = await conn.fetchval(f"SELECT count(*) FROM autoprune_policy WHERE {where}", *parameters)
        if count >= MAX_POLICIES_PER_OWNER:
            raise PolicyError(f"at most {MAX_POLICIES_PER_OWNER} auto-prune policies are allowed here")
        await _refuse_duplicate(conn, owner, rules, None)
        row = await conn.fetchrow(
            "INSERT INTO autoprune_policy (uuid, namespace_id, repository_id, method, tag_count, max_age,"
            " max_age_s, tag_pattern, tag_pattern_matches) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            f" RETURNING {_COLUMNS}",
            uuid.uuid4(),
            owner.namespace_id,
            owner.repository_id,
            rules.method,
            *_stored_values(rules),
            rules.tag_pattern,
            rules.tag_pattern_matches,
        )
    return _policy(row)


async def update_policy(
    conn: asyncpg.Connection, owner: PolicyOwner, policy_uuid: uuid.UUID, rules: PruneRules
) -> AutoprunePolicy:
    """Replace the policy's rules; PolicyNotFoundError, or PolicyError for a duplicate."""
    async with conn.transaction():
        await _lock_owner(conn, owner)
        await get_policy(conn, owner, policy_uuid)
        await _refuse_duplicate(conn, owner, rules, policy_uuid)
        where, parameters = _owner_filter(owner, 8)
        row = await conn.fetchrow(
            "UPDATE autoprune_policy SET method = $2, tag_count = $3, max_age = $4, max_age_s = $5,"
            f" tag_pattern = $6, tag_pattern_matches = $7 WHERE uuid = $1 AND {where} RETURNING {_COLUMNS}",
            policy_uuid,
            rules.method,
            *_stored_values(rules),
            rules.tag_pattern,
            rules.tag_pattern_matches,
            *parameters,
        )
    return _policy(row)


async def delete_policy(
    conn: asyncpg.Connection, owner: PolicyOwner, policy_uuid: uuid.UUID
) -> AutoprunePolicy:
    """Delete the policy; PolicyNotFoundError when the owner has none with this uuid."""
    where, parameters = _owner_filter(owner, 2)
    row = await conn.fetchrow(
        f"DELETE FROM autoprune_policy WHERE uuid = $1 AND {where} RETURNING {_COLUMNS}",
        policy_uuid,
        *parameters,
    )
    if row is None:
        raise PolicyNotFoundError(f"no auto-prune policy {policy_uuid}")
    return _policy(row)
