"""Deletes through the challenge, both sides: the challenge names ``repository:<name>:delete``; the
token endpoint grants it to roles with write permission (delete belongs to write, as in Quay) and
leaves it out for readers, whose delete is then refused and changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from shared.oci.digest import digest_bytes
from tests.conformance.strict_client import ChallengeAuth, parse_challenge
from tests.fixtures.live_registry import LiveRegistry
from tests.fixtures.registry import Account
from tests.support.oci import Image, push_image, random_image

TAG = "v1"


@dataclass
class SharedRepository:
    """An organization's repository holding one tagged image, pushed by its owner."""

    registry: LiveRegistry
    owner: Account
    name: str
    image: Image

    async def member(self, role: str) -> Account:
        """A new user with ``role`` permission on the repository."""
        account = await self.registry.user()
        namespace, _, repository = self.name.partition("/")
        async with httpx.AsyncClient(base_url=self.registry.url, auth=self.owner.auth) as client:
            response = await client.put(
                f"/api/v1/repository/{namespace}/{repository}/permissions/user/{account.username}",
                json={"role": role},
            )
        assert response.status_code == 200, response.text
        return account


@pytest.fixture
async def shared(live_registry: LiveRegistry) -> AsyncIterator[SharedRepository]:
    owner = await live_registry.user()
    organization = await live_registry.organization(owner)
    name = f"{organization}/app"
    image = random_image()
    async with httpx.AsyncClient(base_url=live_registry.url, auth=owner.auth) as client:
        await push_image(client, name, image, TAG)
    yield SharedRepository(registry=live_registry, owner=owner, name=name, image=image)


def strict_client(registry: LiveRegistry, account: Account) -> tuple[httpx.AsyncClient, ChallengeAuth]:
    auth = ChallengeAuth(account.username, account.password)
    return httpx.AsyncClient(base_url=registry.url, auth=auth, timeout=30), auth


@pytest.mark.parametrize("role", ["write", "admin"])
async def test_a_writer_following_the_challenge_deletes(shared: SharedRepository, role: str) -> None:
    account = await shared.member(role)
    client, auth = strict_client(shared.registry, account)
    async with client:
        by_tag = await client.delete(f"/v2/{shared.name}/manifests/{TAG}")
        blob = await client.delete(f"/v2/{shared.name}/blobs/{digest_bytes(shared.image.config)}")
        by_digest = await client.delete(f"/v2/{shared.name}/manifests/{shared.image.digest}")
        gone = await client.get(f"/v2/{shared.name}/manifests/{shared.image.digest}")

    for deleted in (by_tag, blob, by_digest):
        assert deleted.status_code == 202, deleted.text
    assert gone.status_code == 404
    challenged = {exchange.challenge.scope for exchange in auth.exchanges if exchange.challenge.scope}
    assert f"repository:{shared.name}:delete" in challenged
    assert all(
        exchange.granted == {f"repository:{shared.name}": ["delete"]}
        for exchange in auth.exchanges
        if exchange.challenge.scope == f"repository:{shared.name}:delete"
    )


async def test_a_reader_gets_a_token_without_delete_and_the_delete_is_refused(
    shared: SharedRepository,
) -> None:
    account = await shared.member("read")
    client, auth = strict_client(shared.registry, account)
    async with client:
        by_tag = await client.delete(f"/v2/{shared.name}/manifests/{TAG}")
        by_digest = await client.delete(f"/v2/{shared.name}/manifests/{shared.image.digest}")
        blob = await client.delete(f"/v2/{shared.name}/blobs/{digest_bytes(shared.image.config)}")
        still_there = await client.get(f"/v2/{shared.name}/manifests/{TAG}")

    for refused in (by_tag, by_digest, blob):
        assert refused.status_code == 401, refused.text
        assert refused.json()["errors"][0]["code"] == "UNAUTHORIZED"
        challenge = parse_challenge(refused.headers["www-authenticate"])
        assert challenge is not None
        assert challenge.scope == f"repository:{shared.name}:delete"
        assert challenge.error == "insufficient_scope"
    deletes = [
        exchange
        for exchange in auth.exchanges
        if exchange.challenge.scope == f"repository:{shared.name}:delete"
    ]
    assert len(deletes) == 3
    assert all(exchange.status_code == 200 and exchange.granted == {} for exchange in deletes)
    assert still_there.status_code == 200
    assert still_there.content == shared.image.manifest


async def test_a_push_challenge_still_names_pull_and_push(shared: SharedRepository) -> None:
    async with httpx.AsyncClient(base_url=shared.registry.url) as anonymous:
        response = await anonymous.post(f"/v2/{shared.name}/blobs/uploads/")

    challenge = parse_challenge(response.headers["www-authenticate"])
    assert response.status_code == 401
    assert challenge is not None
    assert challenge.scope == f"repository:{shared.name}:pull,push"
