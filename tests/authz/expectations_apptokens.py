"""Authorization-matrix entries for app-specific tokens, OAuth applications and their token flow,
and pull statistics (merged into the matrix by test_matrix.py)."""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

from tests.authz.expectations import (
    ACME,
    ORG_ADMIN,
    READ,
    REPO,
    USERS,
    Expectation,
    Probe,
    acme,
    app,
    fixed,
    nothing,
    on_acme,
)
from tests.authz.world import TAG, Role, World, ok, unique

_REDIRECT = "https://matrix.acme.test/callback"


async def own_app_token(world: World, role: Role) -> Probe:
    """One of the caller's own app-specific tokens (a made-up id for callers that are not users)."""
    account = world.account(role)
    if role not in USERS.roles or account is None:
        return Probe({"token_uuid": str(uuid.uuid4())})
    async with world.registry.client(account) as client:
        created = ok(await client.post("/api/v1/user/apptoken", json={"title": "own"}))
    return Probe({"token_uuid": created.json()["token"]["uuid"]})


async def _new_application(world: World) -> str:
    created = await world.as_admin(
        "POST",
        f"/api/v1/organization/{acme()['orgname']}/applications",
        json={"name": unique("app"), "redirect_uri": _REDIRECT},
    )
    client_id: str = created.json()["client_id"]
    return client_id


async def fresh_application(world: World, _role: Role) -> Probe:
    return Probe(acme(client_id=await _new_application(world)))


async def fresh_application_update(world: World, _role: Role) -> Probe:
    body = {"name": unique("app"), "redirect_uri": _REDIRECT, "application_uri": "https://acme.test"}
    return Probe(acme(client_id=await _new_application(world)), json=body)


async def authorization_request(world: World, _role: Role) -> Probe:
    form = {
        "client_id": await _new_application(world),
        "redirect_uri": _REDIRECT,
        "scope": "repo:read",
        "response_type": "token",
    }
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    return Probe(content=urlencode(form).encode(), headers=headers)


_APPLICATIONS = f"{ACME}/applications"

EXPECTATIONS: dict[str, Expectation] = {
    "GET /api/v1/user/apptoken": Expectation(USERS, nothing),
    "POST /api/v1/user/apptoken": Expectation(USERS, fixed(lambda _: Probe(json={"title": "matrix"}))),
    "GET /api/v1/user/apptoken/{token_uuid}": Expectation(USERS, own_app_token),
    "DELETE /api/v1/user/apptoken/{token_uuid}": Expectation(USERS, own_app_token),
    f"GET {_APPLICATIONS}": Expectation(ORG_ADMIN, on_acme),
    f"POST {_APPLICATIONS}": Expectation(
        ORG_ADMIN, fixed(lambda _: Probe(acme(), json={"name": unique("app")}))
    ),
    f"GET {_APPLICATIONS}/{{client_id}}": Expectation(ORG_ADMIN, fresh_application),
    f"PUT {_APPLICATIONS}/{{client_id}}": Expectation(ORG_ADMIN, fresh_application_update),
    f"DELETE {_APPLICATIONS}/{{client_id}}": Expectation(ORG_ADMIN, fresh_application),
    f"POST {_APPLICATIONS}/{{client_id}}/resetclientsecret": Expectation(ORG_ADMIN, fresh_application),
    # Any user may grant any application a token of their own (a redirect: 302).
    "POST /oauth/authorizeapp": Expectation(USERS, authorization_request),
    f"GET {REPO}/tag/{{tag}}/pull_statistics": Expectation(READ, fixed(lambda _: Probe(app(tag=TAG)))),
    f"GET {REPO}/manifest/{{manifestref}}/pull_statistics": Expectation(
        READ, fixed(lambda w: Probe(app(manifestref=w.image.digest)))
    ),
}
