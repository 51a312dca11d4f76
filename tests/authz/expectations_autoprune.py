"""Authorization-matrix entries for auto-prune policies (merged into the matrix by test_matrix.py):
organization policies are for the organization's administrators, repository policies for the
repository's, a user's own policies for that user."""

from __future__ import annotations

import uuid

from tests.authz.expectations import (
    ACME,
    ORG_ADMIN,
    REPO,
    REPO_ADMIN,
    USERS,
    Expectation,
    Probe,
    acme,
    app,
    nothing,
    on_acme,
    on_app,
)
from tests.authz.world import Role, World, ok, unique

_ORGANIZATION_POLICIES = f"{ACME}/autoprunepolicy/"
_REPOSITORY_POLICIES = f"{REPO}/autoprunepolicy/"
_USER_POLICIES = "/api/v1/user/autoprunepolicy/"


def _new_policy_body() -> dict[str, object]:
    # A pattern no tag of the scenario has (and no gc worker runs here): the policy prunes nothing.
    return {"method": "number_of_tags", "value": 5, "tagPattern": f"{unique('pruned')}-.*"}


async def _new_policy(world: World, policies_path: str) -> str:
    created = await world.as_admin("POST", policies_path, json=_new_policy_body())
    policy_uuid: str = created.json()["uuid"]
    return policy_uuid


def _organization_path() -> str:
    return f"/api/v1/organization/{acme()['orgname']}/autoprunepolicy/"


def _repository_path() -> str:
    path = app()
    return f"/api/v1/repository/{path['namespace']}/{path['repository']}/autoprunepolicy/"


async def new_organization_policy_body(_world: World, _role: Role) -> Probe:
    return Probe(acme(), json=_new_policy_body())


async def fresh_organization_policy(world: World, _role: Role) -> Probe:
    return Probe(acme(policy_uuid=await _new_policy(world, _organization_path())))


async def fresh_organization_policy_update(world: World, _role: Role) -> Probe:
    policy_uuid = await _new_policy(world, _organization_path())
    return Probe(acme(policy_uuid=policy_uuid), json=_new_policy_body())


async def new_repository_policy_body(_world: World, _role: Role) -> Probe:
    return Probe(app(), json=_new_policy_body())


async def fresh_repository_policy(world: World, _role: Role) -> Probe:
    return Probe(app(policy_uuid=await _new_policy(world, _repository_path())))


async def fresh_repository_policy_update(world: World, _role: Role) -> Probe:
    policy_uuid = await _new_policy(world, _repository_path())
    return Probe(app(policy_uuid=policy_uuid), json=_new_policy_body())


async def _own_policy_uuid(world: World, role: Role) -> str:
    """One of the caller's own policies (a made-up uuid for callers that are not users)."""
    account = world.account(role)
    if role not in USERS.roles or account is None:
        return str(uuid.uuid4())
    async with world.registry.client(account) as client:
        created = ok(await client.post(_USER_POLICIES, json=_new_policy_body()))
    policy_uuid: str = created.json()["uuid"]
    return policy_uuid


async def own_user_policy(world: World, role: Role) -> Probe:
    return Probe({"policy_uuid": await _own_policy_uuid(world, role)})


async def own_user_policy_update(world: World, role: Role) -> Probe:
    return Probe({"policy_uuid": await _own_policy_uuid(world, role)}, json=_new_policy_body())


async def new_user_policy_body(_world: World, _role: Role) -> Probe:
    return Probe(json=_new_policy_body())


EXPECTATIONS: dict[str, Expectation] = {
    f"GET {_ORGANIZATION_POLICIES}": Expectation(ORG_ADMIN, on_acme),
    f"POST {_ORGANIZATION_POLICIES}": Expectation(ORG_ADMIN, new_organization_policy_body),
    f"GET {_ORGANIZATION_POLICIES}{{policy_uuid}}": Expectation(ORG_ADMIN, fresh_organization_policy),
    f"PUT {_ORGANIZATION_POLICIES}{{policy_uuid}}": Expectation(ORG_ADMIN, fresh_organization_policy_update),
    f"DELETE {_ORGANIZATION_POLICIES}{{policy_uuid}}": Expectation(ORG_ADMIN, fresh_organization_policy),
    f"GET {_REPOSITORY_POLICIES}": Expectation(REPO_ADMIN, on_app),
    f"POST {_REPOSITORY_POLICIES}": Expectation(REPO_ADMIN, new_repository_policy_body),
    f"GET {_REPOSITORY_POLICIES}{{policy_uuid}}": Expectation(REPO_ADMIN, fresh_repository_policy),
    f"PUT {_REPOSITORY_POLICIES}{{policy_uuid}}": Expectation(REPO_ADMIN, fresh_repository_policy_update),
    f"DELETE {_REPOSITORY_POLICIES}{{policy_uuid}}": Expectation(REPO_ADMIN, fresh_repository_policy),
    f"GET {_USER_POLICIES}": Expectation(USERS, nothing),
    f"POST {_USER_POLICIES}": Expectation(USERS, new_user_policy_body),
    f"GET {_USER_POLICIES}{{policy_uuid}}": Expectation(USERS, own_user_policy),
    f"PUT {_USER_POLICIES}{{policy_uuid}}": Expectation(USERS, own_user_policy_update),
    f"DELETE {_USER_POLICIES}{{policy_uuid}}": Expectation(USERS, own_user_policy),
}
