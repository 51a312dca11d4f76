"""E-mail fields are checked in one way everywhere (shared.auth.names.EmailAddress): RFC 5322 syntax,
site-local domains allowed, no DNS; a bad address is a Quay-shaped 400 naming the field, and
nothing is stored."""

from __future__ import annotations

import pytest

from tests.fixtures.registry import Registry

BAD_ADDRESSES = [
    "ops",
    "ops@",
    "ops@@acme.test",
    "ops@acme",
    "ops@acme.test\n",
    "o ps@acme.test",
    "x" * 250 + "@a.test",
]


@pytest.mark.parametrize("address", BAD_ADDRESSES)
async def test_an_organization_with_a_bad_email_is_refused_and_not_created(
    registry: Registry, address: str
) -> None:
    alice = await registry.user()
    async with registry.client(alice) as client:
        response = await client.post("/api/v1/organization/", json={"name": "acme", "email": address})
        missing = await client.get("/api/v1/organization/acme")
    body = response.json()
    assert response.status_code == 400
    assert isinstance(body["detail"], str) and "body.email" in body["detail"]
    assert body["error_type"] == "invalid_request"
    assert missing.status_code == 404


async def test_addresses_on_site_local_and_test_domains_are_accepted_normalized(registry: Registry) -> None:
    alice = await registry.user()
    async with registry.client(alice) as client:
        created = await client.post("/api/v1/organization/", json={"name": "acme", "email": "Ops@Corp.LOCAL"})
        changed = await client.put("/api/v1/organization/acme", json={"email": "ops@acme.test"})
        view = (await client.get("/api/v1/organization/acme")).json()
    assert created.status_code == 201
    assert changed.status_code == 200
    assert view["email"] == "ops@acme.test"


async def test_a_changed_email_is_checked_too(registry: Registry) -> None:
    alice = await registry.user()
    async with registry.client(alice) as client:
        await client.post("/api/v1/organization/", json={"name": "acme", "email": "ops@acme.test"})
        refused = await client.put("/api/v1/organization/acme", json={"email": "not-an-address"})
        view = (await client.get("/api/v1/organization/acme")).json()
    assert refused.status_code == 400 and "body.email" in refused.json()["detail"]
    assert view["email"] == "ops@acme.test"


async def test_superuser_user_changes_check_the_email(registry: Registry) -> None:
    admin = await registry.user(superuser=True)
    bob = await registry.user()
    async with registry.client(admin) as client:
        refused = await client.put(f"/api/v1/superuser/users/{bob.username}", json={"email": "bob@"})
        accepted = await client.put(
            f"/api/v1/superuser/users/{bob.username}", json={"email": "bob@corp.test"}
        )
    assert refused.status_code == 400 and "email" in refused.json()["detail"]
    assert accepted.status_code == 200
