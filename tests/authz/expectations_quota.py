"""Authorization-matrix entries for the storage quota API (merged by test_matrix.py).

Superusers write quotas, organization members read them (Quay's OrganizationMemberPermission: the
reads probe acme, which gets a quota without a Reject limit), users read their own. Every probe
acts on a fresh organization of the acme admin (or a fresh user), so that acme's pushes never meet a
quota; quotas made for probes have no Reject limit, so they hold no one's pushes either.
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.authz.expectations import ORG_MEMBER, SUPERUSER, USERS, Expectation, Probe, nothing
from tests.authz.world import ORG, Role, World, ok

_ORGANIZATION = "/api/v1/organization/{orgname}/quota"
_USER = "/api/v1/user/quota"
_SUPERUSER_ORGANIZATION = "/api/v1/superuser/organization/{namespace}/quota"
_SUPERUSER_USERS = "/api/v1/superuser/users/{namespace}/quota"
_QUOTA = {"limit_bytes": 10**12}


async def _as_superuser(world: World, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async with world.registry.client(world.accounts[Role.SUPERUSER]) as client:
        return ok(await client.request(method, path, **kwargs))


async def _organization_quota(world: World, organization: str) -> dict[str, str]:
    """The ids of a new quota of the organization and of its Warning limit."""
    quotas = f"/api/v1/organization/{organization}/quota"
    await _as_superuser(world, "POST", quotas, json=_QUOTA)
    [quota] = (await _as_superuser(world, "GET", quotas)).json()
    limit = {"type": "Warning", "threshold_percent": 80}
    await _as_superuser(world, "POST", f"{quotas}/{quota['id']}/limit", json=limit)
    [quota] = (await _as_superuser(world, "GET", quotas)).json()
    return {"quota_id": str(quota["id"]), "limit_id": str(quota["limits"][0]["id"])}


async def acme_quota(world: World, _role: Role) -> Probe:
    """acme's quota (made once, with a Warning limit only) and that limit."""
    quotas = f"/api/v1/organization/{ORG}/quota"
    existing = (await _as_superuser(world, "GET", quotas)).json()
    if not existing or existing[0].get("default_config"):
        return Probe({"orgname": ORG, **await _organization_quota(world, ORG)})
    [quota] = existing
    return Probe({"orgname": ORG, "quota_id": str(quota["id"]), "limit_id": str(quota["limits"][0]["id"])})


async def fresh_organization(world: World, _role: Role) -> Probe:
    return Probe({"orgname": await world.new_organization()}, json=_QUOTA)


async def organization_quota(world: World, _role: Role) -> Probe:
    organization = await world.new_organization()
    ids = await _organization_quota(world, organization)
    return Probe({"orgname": organization, **ids}, json={"limit_bytes": 2 * 10**12})


async def organization_limit(world: World, _role: Role) -> Probe:
    organization = await world.new_organization()
    ids = await _organization_quota(world, organization)
    return Probe({"orgname": organization, **ids}, json={"type": "Reject", "threshold_percent": 90})


async def own_quota(world: World, role: Role) -> Probe:
    """The caller's own quota with a Warning limit, made by the superuser (the API sets limits on
    organizations only: the limit is written directly), or made-up ids for callers that are not users."""
    account = world.account(role)
    if role not in USERS.roles or account is None:
        return Probe({"quota_id": "1", "limit_id": "1"})
    quotas = f"/api/v1/superuser/users/{account.username}/quota"
    if not (await _as_superuser(world, "GET", quotas)).json():
        await _as_superuser(world, "POST", quotas, json=_QUOTA)
        [quota] = (await _as_superuser(world, "GET", quotas)).json()
        async with world.registry.context.pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO quota_limit (quota_id, limit_type, threshold_percent) VALUES ($1, 'Warning', 80)",
                quota["id"],
            )
    [quota] = (await _as_superuser(world, "GET", quotas)).json()
    return Probe({"quota_id": str(quota["id"]), "limit_id": str(quota["limits"][0]["id"])})


async def fresh_user(world: World, _role: Role) -> Probe:
    return Probe({"namespace": (await world.registry.user()).username}, json=_QUOTA)


async def fresh_user_quota(world: World, _role: Role) -> Probe:
    username = (await world.registry.user()).username
    quotas = f"/api/v1/superuser/users/{username}/quota"
    await _as_superuser(world, "POST", quotas, json=_QUOTA)
    [quota] = (await _as_superuser(world, "GET", quotas)).json()
    return Probe({"namespace": username, "quota_id": str(quota["id"])}, json={"limit_bytes": 2 * 10**12})


async def fresh_superuser_organization(world: World, _role: Role) -> Probe:
    return Probe({"namespace": await world.new_organization()}, json=_QUOTA)


async def superuser_organization_quota(world: World, _role: Role) -> Probe:
    organization = await world.new_organization()
    ids = await _organization_quota(world, organization)
    return Probe({"namespace": organization, "quota_id": ids["quota_id"]}, json={"limit_bytes": 2 * 10**12})


EXPECTATIONS: dict[str, Expectation] = {
    f"GET {_ORGANIZATION}": Expectation(ORG_MEMBER, acme_quota),
    f"POST {_ORGANIZATION}": Expectation(SUPERUSER, fresh_organization),
    f"GET {_ORGANIZATION}/{{quota_id}}": Expectation(ORG_MEMBER, acme_quota),
    f"PUT {_ORGANIZATION}/{{quota_id}}": Expectation(SUPERUSER, organization_quota),
    f"DELETE {_ORGANIZATION}/{{quota_id}}": Expectation(SUPERUSER, organization_quota),
    f"GET {_ORGANIZATION}/{{quota_id}}/limit": Expectation(ORG_MEMBER, acme_quota),
    f"POST {_ORGANIZATION}/{{quota_id}}/limit": Expectation(SUPERUSER, organization_limit),
    f"GET {_ORGANIZATION}/{{quota_id}}/limit/{{limit_id}}": Expectation(ORG_MEMBER, acme_quota),
    f"PUT {_ORGANIZATION}/{{quota_id}}/limit/{{limit_id}}": Expectation(SUPERUSER, organization_limit),
    f"DELETE {_ORGANIZATION}/{{quota_id}}/limit/{{limit_id}}": Expectation(SUPERUSER, organization_limit),
    f"GET {_USER}": Expectation(USERS, nothing),
    f"GET {_USER}/{{quota_id}}": Expectation(USERS, own_quota),
    f"GET {_USER}/{{quota_id}}/limit": Expectation(USERS, own_quota),
    f"GET {_USER}/{{quota_id}}/limit/{{limit_id}}": Expectation(USERS, own_quota),
    f"GET {_SUPERUSER_ORGANIZATION}": Expectation(SUPERUSER, fresh_superuser_organization),
    f"POST {_SUPERUSER_ORGANIZATION}": Expectation(SUPERUSER, fresh_superuser_organization),
    f"PUT {_SUPERUSER_ORGANIZATION}/{{quota_id}}": Expectation(SUPERUSER, superuser_organization_quota),
    f"DELETE {_SUPERUSER_ORGANIZATION}/{{quota_id}}": Expectation(SUPERUSER, superuser_organization_quota),
    f"GET {_SUPERUSER_USERS}": Expectation(SUPERUSER, fresh_user),
    f"POST {_SUPERUSER_USERS}": Expectation(SUPERUSER, fresh_user),
    f"PUT {_SUPERUSER_USERS}/{{quota_id}}": Expectation(SUPERUSER, fresh_user_quota),
    f"DELETE {_SUPERUSER_USERS}/{{quota_id}}": Expectation(SUPERUSER, fresh_user_quota),
    "GET /api/v1/superuser/quotareport": Expectation(SUPERUSER, nothing),
}
