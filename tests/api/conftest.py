"""Fixtures for /api/v1 tests: the registry app with an organization, and API-token clients."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

import httpx
import pytest

from tests.fixtures.registry import Account, Registry


@dataclass
class Organization:
    name: str
    owner: Account


@pytest.fixture
async def organization(registry: Registry) -> Organization:
    owner = await registry.user()
    return Organization(name=await registry.organization(owner), owner=owner)


@pytest.fixture
async def superuser(registry: Registry) -> Account:
    return await registry.user(superuser=True)


@dataclass
class Tokens:
    """Create API tokens through the API and open clients that present them."""

    registry: Registry

    async def create(self, account: Account, scopes: list[str], expiration: str | None = None) -> str:
        body: dict[str, object] = {"name": "test", "scopes": scopes}
        if expiration is not None:
            body["expiration"] = expiration
        async with self.registry.client(account) as client:
            response = await client.post("/api/v1/user/apitokens", json=body)
        assert response.status_code == 201, response.text
        token: str = response.json()["token"]
        return token

    def client(self, token: str) -> httpx.AsyncClient:
        client = self.registry.client()
        client.headers["Authorization"] = f"Bearer {token}"
        return client

    def with_scopes(
        self, account: Account, scopes: list[str]
    ) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        """A client presenting a new token of the account with exactly these scopes."""

        @asynccontextmanager
        async def opened() -> AsyncIterator[httpx.AsyncClient]:
            async with self.client(await self.create(account, scopes)) as client:
                yield client

        return opened()


@pytest.fixture
def tokens(registry: Registry) -> Tokens:
    return Tokens(registry)
