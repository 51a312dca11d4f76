"""Authorization-matrix entries for auto-prune policies (merged into the matrix by test_matrix.py):
organization policies are for the organization's administrators, repository policies for the
repository's, a user's own policies for that user."""

from __future__ import annotations

import uuid

from tests.authz.expectations import USERS, Expectation, Probe, nothing
from tests.authz.policy_probes import policy_expectations
from tests.authz.world import Role, World, ok, unique

_USER_POLICIES = "/api/v1/user/autoprunepolicy/"


def _new_policy_body() -> dict[str, object]:
    # A pattern no tag of the scenario has (and no gc worker runs here): the policy prunes nothing.
    return {"method": "number_of_tags", "value": 5, "tagPattern": f"{unique('pruned')}-.*"}


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
    **policy_expectations("autoprunepolicy", _new_policy_body),
    f"GET {_USER_POLICIES}": Expectation(USERS, nothing),
    f"POST {_USER_POLICIES}": Expectation(USERS, new_user_policy_body),
    f"GET {_USER_POLICIES}{{policy_uuid}}": Expectation(USERS, own_user_policy),
    f"PUT {_USER_POLICIES}{{policy_uuid}}": Expectation(USERS, own_user_policy_update),
    f"DELETE {_USER_POLICIES}{{policy_uuid}}": Expectation(USERS, own_user_policy),
}
