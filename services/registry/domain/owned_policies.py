"""What immutability and auto-prune policies have in common: each belongs to a namespace or to one
of its repositories, is named by a uuid, and at most MAX_POLICIES_PER_OWNER of them exist per owner.

``PolicyTable`` reads, counts, deletes and locks the owner's rows of one policy table; the rules
of each kind (what a row holds, what a duplicate is) stay in services.registry.domain.immutability
and services.registry.domain.autoprune_policies.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import asyncpg
from pydantic import BaseModel, ConfigDict

# Policies of one namespace, and of one repository: every evaluation reads them all.
MAX_POLICIES_PER_OWNER = 50

P = TypeVar("P")


class PolicyError(ValueError):
    """The policy cannot be stored as asked (bad rules, duplicate, too many); the message says why."""


class PolicyNotFoundError(LookupError):
    """No such policy for this namespace or repository."""


class PolicyOwner(BaseModel):
    """A namespace (``repository_id`` None) or one of its repositories."""

    model_config = ConfigDict(frozen=True)

    namespace_id: int
    repository_id: int | None = None


def owner_filter(owner: PolicyOwner, first_parameter: int) -> tuple[str, list[object]]:
    """The WHERE clause of the owner's own policies, with its parameters from ``$first_parameter``."""
    if owner.repository_id is None:
        return f"namespace_id = ${first_parameter} AND repository_id IS NULL", [owner.namespace_id]
    return f"repository_id = ${first_parameter}", [owner.repository_id]


@dataclass(frozen=True)
class PolicyTable(Generic[P]):
    """One policy table: ``columns`` are read into a policy by ``policy``; ``label`` names the kind
    in messages ("immutability", "auto-prune")."""

    table: str
    columns: str
    label: str
    policy: Callable[[asyncpg.Record], P]

    def not_found(self, policy_uuid: uuid.UUID) -> PolicyNotFoundError:
        return PolicyNotFoundError(f"no {self.label} policy {policy_uuid}")

    async def list(self, conn: asyncpg.Connection, owner: PolicyOwner) -> list[P]:
        """The owner's policies (at most MAX_POLICIES_PER_OWNER), oldest first."""
        where, parameters = owner_filter(owner, 1)
        rows = await conn.fetch(
            f"SELECT {self.columns} FROM {self.table} WHERE {where} ORDER BY id LIMIT {MAX_POLICIES_PER_OWNER}",
            *parameters,
        )
        return [self.policy(row) for row in rows]

    async def get(self, conn: asyncpg.Connection, owner: PolicyOwner, policy_uuid: uuid.UUID) -> P:
        where, parameters = owner_filter(owner, 2)
        row = await conn.fetchrow(
            f"SELECT {self.columns} FROM {self.table} WHERE uuid = $1 AND {where}", policy_uuid, *parameters
        )
        if row is None:
            raise self.not_found(policy_uuid)
        return self.policy(row)

    async def delete(self, conn: asyncpg.Connection, owner: PolicyOwner, policy_uuid: uuid.UUID) -> P:
        """Delete the policy; PolicyNotFoundError when the owner has none with this uuid."""
        where, parameters = owner_filter(owner, 2)
        row = await conn.fetchrow(
            f"DELETE FROM {self.table} WHERE uuid = $1 AND {where} RETURNING {self.columns}",
            policy_uuid,
            *parameters,
        )
        if row is None:
            raise self.not_found(policy_uuid)
        return self.policy(row)

    async def lock_room_for_one_more(self, conn: asyncpg.Connection, owner: PolicyOwner) -> None:
        """Lock the owner's policies until the caller's transaction ends (serializing its changes);
        PolicyError when it already has MAX_POLICIES_PER_OWNER."""
        await self.lock(conn, owner)
        where, parameters = owner_filter(owner, 1)
        count = await conn.fetchval(f"SELECT count(*) FROM {self.table} WHERE {where}", *parameters)
        if count >= MAX_POLICIES_PER_OWNER:
            raise PolicyError(f"at most {MAX_POLICIES_PER_OWNER} {self.label} policies are allowed here")

    async def lock(self, conn: asyncpg.Connection, owner: PolicyOwner) -> None:
        """Serialize the policy changes of one owner until the caller's transaction ends."""
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1 || ':' || $2::bigint || ':' || $3::text, 0))",
            self.table,
            owner.namespace_id,
            str(owner.repository_id),
        )
