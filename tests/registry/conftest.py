"""Fixtures of the /v2 tests: a user owning the repositories under test, and a client logged in as it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.fixtures.registry import Account, Registry


@pytest.fixture
async def owner(registry: Registry) -> Account:
    return await registry.user()


@pytest.fixture
async def client(registry: Registry, owner: Account) -> AsyncIterator[httpx.AsyncClient]:
    async with registry.client(owner) as client:
        yield client
