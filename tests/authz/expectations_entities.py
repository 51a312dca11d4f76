"""Authorization-matrix entries for entity search, the superuser's user management, the first-user
initialization, global messages and manifest details (merged into the matrix by test_matrix.py)."""

from __future__ import annotations

from tests.authz.expectations import (
    AUTHENTICATED,
    PUBLIC,
    READ,
    REPO,
    SUPERUSER,
    Expectation,
    Probe,
    app,
    fixed,
    nothing,
    rule,
)
from tests.authz.world import BYSTANDER, ORG, Role, World, ok, unique

_NOTICE = {"content": "Maintenance tonight", "media_type": "text/plain", "severity": "info"}
# The scenario has users: the installation is initialized, and no one may initialize it again.
_NOBODY = rule("nobody: the installation has users already")


async def fresh_user(world: World, _role: Role) -> Probe:
    """A user of its own for each probe (deleting it must not change the scenario)."""
    account = await world.registry.user(unique("user"))
    return Probe({"username": account.username})


async def fresh_message(world: World, _role: Role) -> Probe:
    """A global message made for the probe by the superuser; its uuid."""
    async with world.client(Role.SUPERUSER) as client:
        before = {message["uuid"] for message in ok(await client.get("/api/v1/messages")).json()["messages"]}
        ok(await client.post("/api/v1/messages", json={"message": _NOTICE}))
        after = {message["uuid"] for message in ok(await client.get("/api/v1/messages")).json()["messages"]}
    [created] = after - before
    return Probe({"uuid": created})


EXPECTATIONS: dict[str, Expectation] = {
    "GET /api/v1/entities/{prefix}": Expectation(
        AUTHENTICATED,
        fixed(lambda _: Probe({"prefix": "re"}, query={"namespace": ORG, "includeTeams": "true"})),
    ),
    "GET /api/v1/superuser/users/{username}": Expectation(
        SUPERUSER, fixed(lambda _: Probe({"username": BYSTANDER}))
    ),
    "PUT /api/v1/superuser/users/{username}": Expectation(
        SUPERUSER, fixed(lambda _: Probe({"username": BYSTANDER}, json={"enabled": True}))
    ),
    "DELETE /api/v1/superuser/users/{username}": Expectation(SUPERUSER, fresh_user),
    "POST /api/v1/user/initialize": Expectation(
        _NOBODY,
        fixed(lambda _: Probe(json={"username": unique("first"), "password": "first-secret"})),
        refusal=400,
    ),
    "GET /api/v1/messages": Expectation(PUBLIC, nothing),
    "POST /api/v1/messages": Expectation(SUPERUSER, fixed(lambda _: Probe(json={"message": _NOTICE}))),
    "DELETE /api/v1/message/{uuid}": Expectation(SUPERUSER, fresh_message),
    f"GET {REPO}/manifest/{{manifestref}}": Expectation(
        READ, fixed(lambda w: Probe(app(manifestref=w.image.digest)))
    ),
}
