"""The first user of an empty installation: POST /api/v1/user/initialize."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.api.conftest import Tokens
from tests.fixtures.registry import Account, Registry

FIRST = {"username": "admin", "password": "first-secret", "email": "admin@corp.test"}


async def _initialize(registry: Registry, body: object) -> httpx.Response:
    async with registry.client() as client:
        return await client.post("/api/v1/user/initialize", json=body)


async def _usernames(registry: Registry) -> list[str]:
    async with registry.context.pool.acquire() as conn:
        return [row["username"] for row in await conn.fetch("SELECT username FROM app_user ORDER BY id")]


async def test_the_first_user_is_a_superuser_with_a_token_of_every_scope(
    registry: Registry, tokens: Tokens
) -> None:
    created = await _initialize(registry, FIRST | {"access_token": True})

    assert created.status_code == 200, created.text
    answer = created.json()
    assert answer["username"] == "admin" and answer["email"] == "admin@corp.test"
    async with tokens.client(answer["access_token"]) as client:
        me = (await client.get("/api/v1/user/")).json()
        superuser_list = await client.get("/api/v1/superuser/users/")
    assert me["username"] == "admin" and me["super_user"] is True
    assert superuser_list.status_code == 200
    async with registry.client(Account("admin", "first-secret")) as client:
        assert (await client.get("/v2/")).status_code == 200


async def test_without_access_token_no_token_is_made(registry: Registry) -> None:
    created = await _initialize(registry, FIRST)
    assert created.status_code == 200, created.text
    assert "access_token" not in created.json()
    async with registry.context.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM api_token") == 0


async def test_an_installation_with_a_user_is_not_initialized_again(registry: Registry) -> None:
    await registry.user("someone")
    refused = await _initialize(registry, FIRST | {"access_token": True})
    assert refused.status_code == 400
    assert refused.json()["detail"] == "Cannot initialize user in a non-empty database"
    assert await _usernames(registry) == ["someone"]


async def test_of_two_concurrent_initializations_one_wins(registry: Registry) -> None:
    answers = await asyncio.gather(
        *(_initialize(registry, FIRST | {"username": name}) for name in ("first", "second", "third"))
    )
    assert sorted(answer.status_code for answer in answers) == [200, 400, 400]
    [winner] = [answer.json()["username"] for answer in answers if answer.status_code == 200]
    assert await _usernames(registry) == [winner]


@pytest.mark.parametrize(
    "body",
    [
        {"username": "admin", "email": "admin@corp.test"},
        FIRST | {"password": "short"},
        FIRST | {"password": "long-enough\x00"},
        FIRST | {"username": "Admin/../x"},
        FIRST | {"username": "a\x00b"},
        FIRST | {"email": "not-an-address"},
        FIRST | {"access_token": "yes"},
        ["admin", "first-secret"],
    ],
)
async def test_bad_bodies_are_refused_and_leave_the_installation_empty(
    registry: Registry, body: object
) -> None:
    refused = await _initialize(registry, body)
    assert refused.status_code == 400, refused.text
    assert isinstance(refused.json()["detail"], str)
    assert await _usernames(registry) == []
    assert (await _initialize(registry, FIRST)).status_code == 200
