"""Auto-prune policies, Quay's /api/v1/organization/{orgname}/autoprunepolicy/,
/api/v1/repository/{namespace}/{repository}/autoprunepolicy/ and /api/v1/user/autoprunepolicy/
(rules in services.registry.domain.autoprune_policies; the gc worker applies them).

Organization policies are managed by the organization's administrators ('org:admin'), repository
policies by the repository's administrators ('repo:admin'), a user's own by the user ('user:admin').
Bodies are Quay's ``{"method": "number_of_tags" | "creation_date", "value": 10 | "7d",
"tagPattern": <regex, fullmatch, optional>, "tagPatternMatches": <bool, default true>}``; lists
answer ``{"policies": [...]}``, creation ``{"uuid": ...}`` (201). Changes are recorded in the usage
logs under Quay's kinds (create_, update_, delete_namespace_autoprune_policy and
..._repository_autoprune_policy).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, Request, Response
from pydantic import Field

from services.registry.api.common import ApiModel, api_router, db_connection, not_found
from services.registry.api.owned_policies import log_namespace_change, policy_errors
from services.registry.api.repositories import REPOSITORY_PATH, RepositoryAccess, administered_repository
from services.registry.api.security import (
    ApiCaller,
    administered_organization,
    caller_user,
    org_admin_user,
    user_with_scope,
)
from services.registry.domain import autoprune_policies as policies
from shared.auth.accounts import Namespace, find_namespace

router = api_router(tags=["Auto-prune policies"])

_ORGANIZATION_POLICIES = "/organization/{orgname}/autoprunepolicy/"
_REPOSITORY_POLICIES = f"{REPOSITORY_PATH}/autoprunepolicy/"
_USER_POLICIES = "/user/autoprunepolicy/"

_user_admin = user_with_scope("user:admin")


class PolicyBody(ApiModel):
    """Quay's AutoPrunePolicyConfig."""

    method: str = Field(max_length=64, description="number_of_tags or creation_date")
    value: Annotated[int, Field(ge=-(2**63), le=2**63 - 1)] | Annotated[str, Field(max_length=32)] = Field(
        description="number_of_tags: how many tags to keep (1 to 100000); creation_date: the age beyond"
        " which tags are pruned, a count and a unit (s, m minutes, h, d, w, y), e.g. 7d"
    )
    tag_pattern: str | None = Field(
        default=None,
        alias="tagPattern",
        max_length=1024,
        description="Only tags whose whole name matches this regular expression (at most 256 characters)",
    )
    tag_pattern_matches: bool = Field(
        default=True,
        alias="tagPatternMatches",
        description="True: prune the tags matching tagPattern; false: those not matching it",
    )

    def rules(self) -> policies.PruneRules:
        with policy_errors():
            return policies.checked_rules(self.method, self.value, self.tag_pattern, self.tag_pattern_matches)


def policy_view(policy: policies.AutoprunePolicy) -> dict[str, Any]:
    return {
        "uuid": str(policy.uuid),
        "method": policy.method,
        "value": policy.value,
        "tagPattern": policy.tag_pattern,
        "tagPatternMatches": policy.tag_pattern_matches,
    }


def _log_metadata(policy: policies.AutoprunePolicy) -> dict[str, Any]:
    return {
        "policy_uuid": str(policy.uuid),
        "method": policy.method,
        "value": policy.value,
        "tag_pattern": policy.tag_pattern,
        "tag_pattern_matches": policy.tag_pattern_matches,
    }


# Namespaces: organizations and the caller's own user namespace.


def _namespace_owner(namespace: Namespace) -> policies.PolicyOwner:
    return policies.PolicyOwner(namespace_id=namespace.id)


async def _user_namespace(
    caller: ApiCaller = Depends(_user_admin), conn: asyncpg.Connection = Depends(db_connection)
) -> Namespace:
    """The calling user's own namespace."""
    namespace = await find_namespace(conn, caller_user(caller).name)
    if namespace is None:
        raise not_found("no namespace of the calling user")
    return namespace


async def _list(conn: asyncpg.Connection, namespace: Namespace) -> dict[str, Any]:
    found = await policies.list_policies(conn, _namespace_owner(namespace))
    return {"policies": [policy_view(policy) for policy in found]}


async def _create(
    conn: asyncpg.Connection, request: Request, caller: ApiCaller, namespace: Namespace, body: PolicyBody
) -> dict[str, str]:
    async with conn.transaction():
        with policy_errors():
            policy = await policies.create_policy(conn, _namespace_owner(namespace), body.rules())
        await log_namespace_change(
            conn, request, caller, namespace, "create_namespace_autoprune_policy", _log_metadata(policy)
        )
    return {"uuid": str(policy.uuid)}


async def _update(
    conn: asyncpg.Connection,
    request: Request,
    caller: ApiCaller,
    namespace: Namespace,
    policy_uuid: uuid.UUID,
    body: PolicyBody,
) -> Response:
    async with conn.transaction():
        with policy_errors():
            policy = await policies.update_policy(
                conn, _namespace_owner(namespace), policy_uuid, body.rules()
            )
        await log_namespace_change(
            conn, request, caller, namespace, "update_namespace_autoprune_policy", _log_metadata(policy)
        )
    return Response(status_code=204)


async def _delete(
    conn: asyncpg.Connection,
    request: Request,
    caller: ApiCaller,
    namespace: Namespace,
    policy_uuid: uuid.UUID,
) -> dict[str, str]:
    async with conn.transaction():
        with policy_errors():
            policy = await policies.delete_policy(conn, _namespace_owner(namespace), policy_uuid)
        await log_namespace_change(
            conn, request, caller, namespace, "delete_namespace_autoprune_policy", _log_metadata(policy)
        )
    return {"uuid": str(policy.uuid)}


@router.get(_ORGANIZATION_POLICIES)
async def list_organization_policies(
    organization: Namespace = Depends(administered_organization),
    conn: asyncpg.Connection = Depends(db_connection),
) -> dict[str, Any]:
    """The organization's policies, oldest first (Quay's listOrganizationAutoPrunePolicies)."""
    return await _list(conn, organization)


@router.post(_ORGANIZATION_POLICIES, status_code=201)
async def create_organization_policy(
    body: PolicyBody,
    request: Request,
    organization: Namespace = Depends(administered_organization),
    caller: ApiCaller = Depends(org_admin_user),
    conn: asyncpg.Connection = Depends(db_connection),
) -> dict[str, str]:
    """A policy over every repository of the organization; 201 with its uuid."""
    return await _create(conn, request, caller, organization, body)


@router.get(f"{_ORGANIZATION_POLICIES}{{policy_uuid}}")
async def get_organization_policy(
    policy_uuid: uuid.UUID,
    organization: Namespace = Depends(administered_organization),
    conn: asyncpg.Connection = Depends(db_connection),
) -> dict[str, Any]:
    with policy_errors():
        return policy_view(await policies.get_policy(conn, _namespace_owner(organization), policy_uuid))


@router.put(f"{_ORGANIZATION_POLICIES}{{policy_uuid}}", status_code=204)
async def update_organization_policy(
    policy_uuid: uuid.UUID,
    body: PolicyBody,
    request: Request,
    organization: Namespace = Depends(administered_organization),
    caller: ApiCaller = Depends(org_admin_user),
    conn: asyncpg.Connection = Depends(db_connection),
) -> Response:
    """Replace the policy's method, value and pattern; 204."""
    return await _update(conn, request, caller, organization, policy_uuid, body)


@router.delete(f"{_ORGANIZATION_POLICIES}{{policy_uuid}}")
async def delete_organization_policy(
    policy_uuid: uuid.UUID,
    request: Request,
    organization: Namespace = Depends(administered_organization),
    caller: ApiCaller = Depends(org_admin_user),
    conn: asyncpg.Connection = Depends(db_connection),
) -> dict[str, str]:
    return await _delete(conn, request, caller, organization, policy_uuid)


@router.get(_USER_POLICIES)
async def list_user_policies(
    namespace: Namespace = Depends(_user_namespace), conn: asyncpg.Connection = Depends(db_connection)
) -> dict[str, Any]:
    """The calling user's policies, oldest first (Quay's listUserAutoPrunePolicies)."""
    return await _list(conn, namespace)


@router.post(_USER_POLICIES, status_code=201)
async def create_user_policy(
    body: PolicyBody,
    request: Request,
    namespace: Namespace = Depends(_user_namespace),
    caller: ApiCaller = Depends(_user_admin),
    conn: asyncpg.Connection = Depends(db_connection),
) -> dict[str, str]:
    """A policy over every repository of the calling user; 201 with its uuid."""
    return await _create(conn, request, caller, namespace, body)


@router.get(f"{_USER_POLICIES}{{policy_uuid}}")
async def get_user_policy(
    policy_uuid: uuid.UUID,
    namespace: Namespace = Depends(_user_namespace),
    conn: asyncpg.Connection = Depends(db_connection),
) -> dict[str, Any]:
    with policy_errors():
        return policy_view(await policies.get_policy(conn, _namespace_owner(namespace), policy_uuid))


@router.put(f"{_USER_POLICIES}{{policy_uuid}}", status_code=204)
async def update_user_policy(
    policy_uuid: uuid.UUID,
    body: PolicyBody,
    request: Request,
    namespace: Namespace = Depends(_user_namespace),
    caller: ApiCaller = Depends(_user_admin),
    conn: asyncpg.Connection = Depends(db_connection),
) -> Response:
    return await _update(conn, request, caller, namespace, policy_uuid, body)


@router.delete(f"{_USER_POLICIES}{{policy_uuid}}")
async def delete_user_policy(
    policy_uuid: uuid.UUID,
    request: Request,
    namespace: Namespace = Depends(_user_namespace),
    caller: ApiCaller = Depends(_user_admin),
    conn: asyncpg.Connection = Depends(db_connection),
) -> dict[str, str]:
    return await _delete(conn, request, caller, namespace, policy_uuid)


# Repositories


def _repository_owner(access: RepositoryAccess) -> policies.PolicyOwner:
    return policies.PolicyOwner(
        namespace_id=access.repository.namespace_id, repository_id=access.repository.id
    )


@router.get(_REPOSITORY_POLICIES)
async def list_repository_policies(
    access: RepositoryAccess = Depends(administered_repository),
) -> dict[str, Any]:
    """The repository's own policies, oldest first (its namespace's are listed there)."""
    found = await policies.list_policies(access.conn, _repository_owner(access))
    return {"policies": [policy_view(policy) for policy in found]}


@router.post(_REPOSITORY_POLICIES, status_code=201)
async def create_repository_policy(
    body: PolicyBody, access: RepositoryAccess = Depends(administered_repository)
) -> dict[str, str]:
    """A policy over the repository's tags; 201 with its uuid."""
    async with access.conn.transaction():
        with policy_errors():
            policy = await policies.create_policy(access.conn, _repository_owner(access), body.rules())
        await access.log("create_repository_autoprune_policy", _log_metadata(policy))
    return {"uuid": str(policy.uuid)}


@router.get(f"{_REPOSITORY_POLICIES}{{policy_uuid}}")
async def get_repository_policy(
    policy_uuid: uuid.UUID, access: RepositoryAccess = Depends(administered_repository)
) -> dict[str, Any]:
    with policy_errors():
        return policy_view(await policies.get_policy(access.conn, _repository_owner(access), policy_uuid))


@router.put(f"{_REPOSITORY_POLICIES}{{policy_uuid}}", status_code=204)
async def update_repository_policy(
    policy_uuid: uuid.UUID, body: PolicyBody, access: RepositoryAccess = Depends(administered_repository)
) -> Response:
    """Replace the policy's method, value and pattern; 204."""
    async with access.conn.transaction():
        with policy_errors():
            policy = await policies.update_policy(
                access.conn, _repository_owner(access), policy_uuid, body.rules()
            )
        await access.log("update_repository_autoprune_policy", _log_metadata(policy))
    return Response(status_code=204)


@router.delete(f"{_REPOSITORY_POLICIES}{{policy_uuid}}")
async def delete_repository_policy(
    policy_uuid: uuid.UUID, access: RepositoryAccess = Depends(administered_repository)
) -> dict[str, str]:
    async with access.conn.transaction():
        with policy_errors():
            policy = await policies.delete_policy(access.conn, _repository_owner(access), policy_uuid)
        await access.log("delete_repository_autoprune_policy", _log_metadata(policy))
    return {"uuid": str(policy.uuid)}
