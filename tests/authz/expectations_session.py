"""Authorization-matrix entries for the session endpoints (merged into the matrix by test_matrix.py).

Signin takes the credentials in its body, not the caller's: every role signs in with its own
(anonymous callers with a new user's), with the CSRF token and cookie that GET /csrf_token gave
them. Only the robot is refused: robots do not sign in.
"""

from __future__ import annotations

from tests.authz.expectations import PUBLIC, Expectation, Probe, nothing, rule
from tests.authz.world import Role, World

SIGNIN_WITH_OWN_PASSWORD = rule("a user's password", *(role for role in Role if role is not Role.ROBOT))


async def signin_with_own_credentials(world: World, role: Role) -> Probe:
    account = world.account(role) or await world.registry.user()
    async with world.registry.client() as client:
        csrf = await client.get("/csrf_token")
    headers = {
        "X-CSRF-Token": csrf.json()["csrf_token"],
        "Cookie": f"quayside_csrf={csrf.cookies['quayside_csrf']}",
    }
    return Probe(json={"username": account.username, "password": account.password}, headers=headers)


EXPECTATIONS: dict[str, Expectation] = {
    "GET /csrf_token": Expectation(PUBLIC, nothing),
    "POST /api/v1/signin": Expectation(SIGNIN_WITH_OWN_PASSWORD, signin_with_own_credentials),
    "POST /api/v1/signout": Expectation(PUBLIC, nothing),
}
