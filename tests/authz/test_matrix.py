"""The authorization matrix: every role x every operation of the registry app → allowed or refused.

Callers present their own credentials (Basic: a user's password, the robot's token). A refusal is
401 for anonymous callers and 403 for everyone else (JSON or OCI error alike); an allowed call
succeeds (2xx or 3xx); nothing answers 5xx. An operation without an entry in
tests.authz.expectations fails here, so no new endpoint escapes the matrix.

The /v2 repository operations are also called as Docker clients do, with the bearer token that
GET /v2/auth gives the role for the repository: the same decisions, every refusal a 401.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest

from tests.authz import (
    expectations_apptokens,
    expectations_autoprune,
    expectations_conformance,
    expectations_entities,
    expectations_members,
    expectations_placements,
    expectations_proxycache,
    expectations_quota,
    expectations_readonly,
    expectations_replication,
    expectations_session,
    expectations_ui,
)
from tests.authz.expectations import EXPECTATIONS as CORE_EXPECTATIONS
from tests.authz.expectations import ORG_ADMIN, PUBLIC, Expectation, Probe, Rule
from tests.authz.routes import filled, registry_operations
from tests.authz.world import DESCRIPTION, PUBLIC_REPO, TAG, Role, World, unique
from tests.support.oci import bearer_header, bearer_token

OPERATIONS = registry_operations()
EXPECTATIONS: dict[str, Expectation] = {
    **CORE_EXPECTATIONS,
    **expectations_conformance.EXPECTATIONS,
    **expectations_session.EXPECTATIONS,
    **expectations_entities.EXPECTATIONS,
    **expectations_apptokens.EXPECTATIONS,
    **expectations_autoprune.EXPECTATIONS,
    **expectations_readonly.EXPECTATIONS,
    **expectations_proxycache.EXPECTATIONS,
    **expectations_quota.EXPECTATIONS,
    **expectations_replication.EXPECTATIONS,
    **expectations_ui.EXPECTATIONS,
    **expectations_members.EXPECTATIONS,
    **expectations_placements.EXPECTATIONS,
}
V2_REPOSITORY_OPERATIONS = [operation for operation in OPERATIONS if " /v2/{name:path}/" in operation]


def _expectation(operation: str) -> Expectation:
    expectation = EXPECTATIONS.get(operation)
    assert expectation is not None, f"{operation} has no entry in tests/authz/expectations*.py"
    return expectation


def _refusal(role: Role) -> int:
    return 401 if role is Role.ANONYMOUS else 403


def _check_decision(role: Role, rule: Rule, request: str, response: httpx.Response, refusal: int) -> None:
    """The rule's roles succeed, the others get the refusal; no one gets a server error."""
    answer = f"{role} {request} -> {response.status_code} {response.text[:300]}"
    assert response.status_code < 500, answer
    if role in rule.roles:
        assert response.status_code < 400, f"refused, but {rule.name} may: {answer}"
    else:
        assert response.status_code == refusal, f"only {rule.name} may: {answer}"


async def _call(client: httpx.AsyncClient, operation: str, probe: Probe) -> httpx.Response:
    method, _, template = operation.partition(" ")
    return await client.request(
        method,
        filled(template, probe.path),
        params=probe.query,
        json=probe.json,
        content=probe.content,
        headers=probe.headers,
    )


async def _bearer_client(world: World, role: Role, repository: str) -> httpx.AsyncClient:
    """A client presenting the token the role gets for every action on the repository."""
    async with world.client(role) as client:
        token = await bearer_token(client, f"repository:{repository}:pull,push,delete")
    bearer = world.registry.client()
    bearer.headers.update(bearer_header(token))
    return bearer


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("role", list(Role))
async def test_authorization(world: World, role: Role, operation: str) -> None:
    expectation = _expectation(operation)
    probe = await expectation.target(world, role)
    async with world.client(role) as client:
        response = await _call(client, operation, probe)
    _check_decision(role, expectation.rule, operation, response, expectation.refusal or _refusal(role))


@pytest.mark.parametrize("operation", V2_REPOSITORY_OPERATIONS)
@pytest.mark.parametrize("role", list(Role))
async def test_authorization_with_bearer_tokens(world: World, role: Role, operation: str) -> None:
    expectation = _expectation(operation)
    probe = await expectation.target(world, role)
    async with await _bearer_client(world, role, probe.path["name"]) as client:
        response = await _call(client, operation, probe)
    _check_decision(role, expectation.rule, operation, response, 401)
    if role not in expectation.rule.roles:
        assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]


@dataclass(frozen=True)
class PublicProbe:
    """A request on acme/public: the rule, then the request; ``{digest}`` is its image's digest."""

    rule: Rule
    method: str
    path: str
    body: dict[str, str] | None = None

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


_ON_PUBLIC = f"/api/v1/repository/{PUBLIC_REPO}"
# A public repository is read by all; only acme's admins (no one has a grant on it) change it.
PUBLIC_REPOSITORY_PROBES = [
    PublicProbe(PUBLIC, "GET", f"/v2/{PUBLIC_REPO}/manifests/{TAG}"),
    PublicProbe(PUBLIC, "HEAD", f"/v2/{PUBLIC_REPO}/manifests/{TAG}"),
    PublicProbe(PUBLIC, "GET", f"/v2/{PUBLIC_REPO}/tags/list"),
    PublicProbe(PUBLIC, "GET", _ON_PUBLIC),
    PublicProbe(PUBLIC, "GET", f"{_ON_PUBLIC}/tag/"),
    PublicProbe(PUBLIC, "GET", _ON_PUBLIC + "/manifest/{digest}/labels"),
    PublicProbe(ORG_ADMIN, "POST", f"/v2/{PUBLIC_REPO}/blobs/uploads/"),
    PublicProbe(ORG_ADMIN, "PUT", _ON_PUBLIC, {"description": DESCRIPTION}),
    PublicProbe(ORG_ADMIN, "PUT", _ON_PUBLIC + "/tag/{new_tag}", {"manifest_digest": "{digest}"}),
    PublicProbe(ORG_ADMIN, "POST", _ON_PUBLIC + "/manifest/{digest}/labels", {"key": "stage", "value": "qa"}),
    PublicProbe(ORG_ADMIN, "POST", f"{_ON_PUBLIC}/changevisibility", {"visibility": "public"}),
    PublicProbe(ORG_ADMIN, "GET", f"{_ON_PUBLIC}/permissions/user/"),
    PublicProbe(ORG_ADMIN, "GET", f"{_ON_PUBLIC}/logs"),
    PublicProbe(ORG_ADMIN, "GET", f"{_ON_PUBLIC}/notification/"),
]


@pytest.mark.parametrize("probe", PUBLIC_REPOSITORY_PROBES, ids=str)
@pytest.mark.parametrize("role", list(Role))
async def test_public_repository(world: World, role: Role, probe: PublicProbe) -> None:
    values = {"digest": world.public_image.digest, "new_tag": unique("tag")}
    body = {key: value.format(**values) for key, value in probe.body.items()} if probe.body else None
    async with world.client(role) as client:
        response = await client.request(probe.method, probe.path.format(**values), json=body)
    _check_decision(role, probe.rule, str(probe), response, _refusal(role))


def test_every_expectation_names_an_operation_of_the_app() -> None:
    """Entries of removed or renamed routes would hide that their successors are missing."""
    assert set(EXPECTATIONS) - set(OPERATIONS) == set()
