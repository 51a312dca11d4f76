"""Tag immutability policies, Quay's /api/v1/organization/{orgname}/immutabilitypolicy/ and
/api/v1/repository/{namespace}/{repository}/immutabilitypolicy/ (rules in
services.registry.domain.immutability).

Organization policies are managed by the organization's administrators (credentials with
'org:admin'), repository policies by the repository's administrators ('repo:admin'). Bodies are
Quay's ``{"tagPattern": <regex, fullmatch>, "tagPatternMatches": <bool, default true>}``. Changes
are recorded in the usage logs (create_, update_, delete_immutability_policy). A change of a tag
that a policy protects answers 409, as Quay does (``immutable_tags_as_conflict``).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
from fastapi import Depends, Request, Response
from pydantic import Field

from services.registry.api.common import ApiModel, api_router, db_connection
from services.registry.api.owned_policies import log_namespace_change, policy_errors
from services.registry.api.repositories import REPOSITORY_PATH, RepositoryAccess, administered_repository
from services.registry.api.security import ApiCaller, administered_organization, org_admin_user
from services.registry.domain import immutability
from shared.api_errors import QuayHTTPException
from shared.auth.accounts import Namespace

router = api_router(tags=["Immutability policies"])

_ORGANIZATION_POLICIES = "/organization/{orgname}/immutabilitypolicy/"
_REPOSITORY_POLICIES = f"{REPOSITORY_PATH}/immutabilitypolicy/"


class PolicyBody(ApiModel):
    """Quay's ImmutabilityPolicyConfig."""

    tag_pattern: str = Field(
        alias="tagPattern",
        max_length=1024,
        description="Regular expression a whole tag name must match (fullmatch), at most 256 characters",
    )
    tag_pattern_matches: bool = Field(
        default=True,
        alias="tagPatternMatches",
        description="True: the matching tags are immutable; false: the tags that do not match",
    )

    def rules(self) -> immutability.PolicyRules:
        with policy_errors():
            pattern = immutability.checked_pattern(self.tag_pattern)
        return immutability.PolicyRules(tag_pattern=pattern, tag_pattern_matches=self.tag_pattern_matches)


async def immutable_tags_as_conflict() -> AsyncIterator[None]:
    """Router dependency: an ImmutableTagError from the endpoint answers 409 (Quay's tag_immutable)."""
    try:
        yield
    except immutability.ImmutableTagError as error:
        raise QuayHTTPException(409, str(error), "tag_immutable") from error


def policy_view(policy: immutability.ImmutabilityPolicy) -> dict[str, Any]:
    return {
        "uuid": str(policy.uuid),
        "tagPattern": policy.tag_pattern,
        "tagPatternMatches": policy.tag_pattern_matches,
    }


def _log_metadata(policy: immutability.ImmutabilityPolicy) -> dict[str, Any]:
    return {
        "policy_uuid": str(policy.uuid),
        "tag_pattern": policy.tag_pattern,
        "tag_pattern_matches": policy.tag_pattern_matches,
    }


# Organizations


def _organization_owner(organization: Namespace) -> immutability.PolicyOwner:
    return immutability.PolicyOwner(namespace_id=organization.id)


@router.get(_ORGANIZATION_POLICIES)
async def list_organization_policies(
    organization: Namespace = Depends(administered_organization),
    conn: asyncpg.Connection = Depends(db_connection),
) -> dict[str, Any]:
    """The organization's policies, oldest first (Quay's listOrgImmutabilityPolicies)."""
    policies = await immutability.list_policies(conn, _organization_owner(organization))
    return {"policies": [policy_view(policy) for policy in policies]}


@router.post(_ORGANIZATION_POLICIES, status_code=201)
async def create_organization_policy(
    body: PolicyBody,
    request: Request,
    organization: Namespace = Depends(administered_organization),
    caller: ApiCaller = Depends(org_admin_user),
    conn: asyncpg.Connection = Depends(db_connection),
) -> dict[str, str]:
    """A policy over every repository of the organization; 201 with its uuid."""
    async with conn.transaction():
        with policy_errors():
            policy = await immutability.create_policy(conn, _organization_owner(organization), body.rules())
        await log_namespace_change(
            conn, request, caller, organization, "create_immutability_policy", _log_metadata(policy)
        )
    return {"uuid": str(policy.uuid)}


@router.get(f"{_ORGANIZATION_POLICIES}{{policy_uuid}}")
async def get_organization_policy(
    policy_uuid: uuid.UUID,
    organization: Namespace = Depends(administered_organization),
    conn: asyncpg.Connection = Depends(db_connection),
) -> dict[str, Any]:
    with policy_errors():
        return policy_view(
            await immutability.get_policy(conn, _organization_owner(organization), policy_uuid)
        )


@router.put(f"{_ORGANIZATION_POLICIES}{{policy_uuid}}", status_code=204)
async def update_organization_policy(
    policy_uuid: uuid.UUID,
    body: PolicyBody,
    request: Request,
    organization: Namespace = Depends(administered_organization),
    caller: ApiCaller = Depends(org_admin_user),
    conn: asyncpg.Connection = Depends(db_connection),
) -> Response:
    """Replace the policy's pattern and sense; 204."""
    async with conn.transaction():
        with policy_errors():
            policy = await immutability.update_policy(
                conn, _organization_owner(organization), policy_uuid, body.rules()
            )
        await log_namespace_change(
            conn, request, caller, organization, "update_immutability_policy", _log_metadata(policy)
        )
    return Response(status_code=204)


@router.delete(f"{_ORGANIZATION_POLICIES}{{policy_uuid}}")
async def delete_organization_policy(
    policy_uuid: uuid.UUID,
    request: Request,
    organization: Namespace = Depends(administered_organization),
    caller: ApiCaller = Depends(org_admin_user),
    conn: asyncpg.Connection = Depends(db_connection),
) -> dict[str, str]:
    """Delete the policy: the tags only it protected are mutable again."""
    async with conn.transaction():
        with policy_errors():
            policy = await immutability.delete_policy(conn, _organization_owner(organization), policy_uuid)
        await log_namespace_change(
            conn, request, caller, organization, "delete_immutability_policy", _log_metadata(policy)
        )
    return {"uuid": str(policy.uuid)}


# Repositories


def _repository_owner(access: RepositoryAccess) -> immutability.PolicyOwner:
    return immutability.PolicyOwner(
        namespace_id=access.repository.namespace_id, repository_id=access.repository.id
    )


@router.get(_REPOSITORY_POLICIES)
async def list_repository_policies(
    access: RepositoryAccess = Depends(administered_repository),
) -> dict[str, Any]:
    """The repository's own policies, oldest first (its organization's are listed there)."""
    policies = await immutability.list_policies(access.conn, _repository_owner(access))
    return {"policies": [policy_view(policy) for policy in policies]}


@router.post(_REPOSITORY_POLICIES, status_code=201)
async def create_repository_policy(
    body: PolicyBody, access: RepositoryAccess = Depends(administered_repository)
) -> dict[str, str]:
    """A policy over the repository's tags; 201 with its uuid."""
    async with access.conn.transaction():
        with policy_errors():
            policy = await immutability.create_policy(access.conn, _repository_owner(access), body.rules())
        await access.log("create_immutability_policy", _log_metadata(policy))
    return {"uuid": str(policy.uuid)}


@router.get(f"{_REPOSITORY_POLICIES}{{policy_uuid}}")
async def get_repository_policy(
    policy_uuid: uuid.UUID, access: RepositoryAccess = Depends(administered_repository)
) -> dict[str, Any]:
    with policy_errors():
        return policy_view(await immutability.get_policy(access.conn, _repository_owner(access), policy_uuid))


@router.put(f"{_REPOSITORY_POLICIES}{{policy_uuid}}", status_code=204)
async def update_repository_policy(
    policy_uuid: uuid.UUID, body: PolicyBody, access: RepositoryAccess = Depends(administered_repository)
) -> Response:
    """Replace the policy's pattern and sense; 204."""
    async with access.conn.transaction():
        with policy_errors():
            policy = await immutability.update_policy(
                access.conn, _repository_owner(access), policy_uuid, body.rules()
            )
        await access.log("update_immutability_policy", _log_metadata(policy))
    return Response(status_code=204)


@router.delete(f"{_REPOSITORY_POLICIES}{{policy_uuid}}")
async def delete_repository_policy(
    policy_uuid: uuid.UUID, access: RepositoryAccess = Depends(administered_repository)
) -> dict[str, str]:
    """Delete the policy: the tags only it protected are mutable again."""
    async with access.conn.transaction():
        with policy_errors():
            policy = await immutability.delete_policy(access.conn, _repository_owner(access), policy_uuid)
        await access.log("delete_immutability_policy", _log_metadata(policy))
    return {"uuid": str(policy.uuid)}
