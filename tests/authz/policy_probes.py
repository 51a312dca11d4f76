"""Authorization-matrix entries of a policy kind served per organization and per repository
(/organization/{orgname}/<kind>/ and /repository/{namespace}/{repository}/<kind>/, with
{policy_uuid} below each): the organization's administrators manage the first, the repository's
the second. Used by expectations_conformance.py (immutability) and expectations_autoprune.py."""

from __future__ import annotations

from collections.abc import Callable

from tests.authz.expectations import (
    ACME,
    ORG_ADMIN,
    REPO,
    REPO_ADMIN,
    Expectation,
    Probe,
    acme,
    app,
    on_acme,
    on_app,
)
from tests.authz.world import Role, World

PolicyBody = Callable[[], dict[str, object]]


def policy_expectations(kind: str, new_body: PolicyBody) -> dict[str, Expectation]:
    """The ten entries of the policies at ``kind`` (a path segment, "immutabilitypolicy"), each new
    policy made by the administrator from ``new_body()``."""
    organization_policies = f"{ACME}/{kind}/"
    repository_policies = f"{REPO}/{kind}/"

    async def new_policy(world: World, policies_path: str) -> str:
        created = await world.as_admin("POST", policies_path, json=new_body())
        policy_uuid: str = created.json()["uuid"]
        return policy_uuid

    def organization_path() -> str:
        return f"/api/v1/organization/{acme()['orgname']}/{kind}/"

    def repository_path() -> str:
        path = app()
        return f"/api/v1/repository/{path['namespace']}/{path['repository']}/{kind}/"

    async def new_organization_policy_body(_world: World, _role: Role) -> Probe:
        return Probe(acme(), json=new_body())

    async def fresh_organization_policy(world: World, _role: Role) -> Probe:
        return Probe(acme(policy_uuid=await new_policy(world, organization_path())))

    async def fresh_organization_policy_update(world: World, _role: Role) -> Probe:
        policy_uuid = await new_policy(world, organization_path())
        return Probe(acme(policy_uuid=policy_uuid), json=new_body())

    async def new_repository_policy_body(_world: World, _role: Role) -> Probe:
        return Probe(app(), json=new_body())

    async def fresh_repository_policy(world: World, _role: Role) -> Probe:
        return Probe(app(policy_uuid=await new_policy(world, repository_path())))

    async def fresh_repository_policy_update(world: World, _role: Role) -> Probe:
        policy_uuid = await new_policy(world, repository_path())
        return Probe(app(policy_uuid=policy_uuid), json=new_body())

    return {
        f"GET {organization_policies}": Expectation(ORG_ADMIN, on_acme),
        f"POST {organization_policies}": Expectation(ORG_ADMIN, new_organization_policy_body),
        f"GET {organization_policies}{{policy_uuid}}": Expectation(ORG_ADMIN, fresh_organization_policy),
        f"PUT {organization_policies}{{policy_uuid}}": Expectation(
            ORG_ADMIN, fresh_organization_policy_update
        ),
        f"DELETE {organization_policies}{{policy_uuid}}": Expectation(ORG_ADMIN, fresh_organization_policy),
        f"GET {repository_policies}": Expectation(REPO_ADMIN, on_app),
        f"POST {repository_policies}": Expectation(REPO_ADMIN, new_repository_policy_body),
        f"GET {repository_policies}{{policy_uuid}}": Expectation(REPO_ADMIN, fresh_repository_policy),
        f"PUT {repository_policies}{{policy_uuid}}": Expectation(REPO_ADMIN, fresh_repository_policy_update),
        f"DELETE {repository_policies}{{policy_uuid}}": Expectation(REPO_ADMIN, fresh_repository_policy),
    }
