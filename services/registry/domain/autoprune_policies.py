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

from services.registry.domain.immutability import checked_pattern
from services.registry.domain.owned_policies import PolicyError as PolicyError
from services.registry.domain.owned_policies import PolicyOwner as PolicyOwner
from services.registry.domain.owned_policies import PolicyTable, owner_filter

Method = Literal["number_of_tags", "creation_date"]
METHODS: tuple[Method, ...] = ("number_of_tags", "creation_date")
MAX_TAG_COUNT = 100_000
# Quay's duration strings (TAG_EXPIRATION_OPTIONS): a count and a unit, m = minutes, y = 365 days.
_DURATION = re.compile(r"([0-9]{1,6})([smhdwy])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800, "y": 365 * 86_400}


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
    pattern = None if tag_pattern is None else checked_pattern(tag_pattern)
    return PruneRules(
        method=method,
        value=value.strip() if isinstance(value, str) else value,
        tag_pattern=pattern,
        tag_pattern_matches=tag_pattern_matches,
    )


_COLUMNS = "uuid, method, tag_count, max_age, tag_pattern, tag_pattern_matches"


def _policy(row: asyncpg.Record) -> AutoprunePolicy:
    return AutoprunePolicy(
        uuid=row["uuid"],
        method=row["method"],
        value=row["tag_count"] if row["method"] == "number_of_tags" else row["max_age"],
        tag_pattern=row["tag_pattern"],
        tag_pattern_matches=row["tag_pattern_matches"],
    )


_TABLE = PolicyTable("autoprune_policy", _COLUMNS, "auto-prune", _policy)
list_policies = _TABLE.list
get_policy = _TABLE.get
delete_policy = _TABLE.delete


def _stored_values(rules: PruneRules) -> tuple[int | None, str | None, int | None]:
    """(tag_count, max_age, max_age_s) of the rules."""
    if rules.method == "number_of_tags":
        assert isinstance(rules.value, int)
        return rules.value, None, None
    assert isinstance(rules.value, str)
    return None, rules.value, duration_seconds(rules.value)


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
        await _TABLE.lock_room_for_one_more(conn, owner)
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
        await _TABLE.lock(conn, owner)
        await get_policy(conn, owner, policy_uuid)
        await _refuse_duplicate(conn, owner, rules, policy_uuid)
        where, parameters = owner_filter(owner, 8)
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
