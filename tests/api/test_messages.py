"""Global messages: anyone reads them, superusers create and delete them (/api/v1/messages, /message/{uuid})."""

from __future__ import annotations

import httpx
import pytest

from services.registry.api.messages import MAX_CONTENT_CHARS
from services.registry.domain.global_messages import MAX_MESSAGES
from tests.api.conftest import Tokens
from tests.fixtures.registry import Account, Registry

NOTICE = {"content": "Maintenance **tonight**", "media_type": "text/markdown", "severity": "warning"}


async def _messages(registry: Registry, account: Account | None = None) -> list[dict[str, str]]:
    async with registry.client(account) as client:
        response = await client.get("/api/v1/messages")
    assert response.status_code == 200, response.text
    messages: list[dict[str, str]] = response.json()["messages"]
    return messages


async def _create(registry: Registry, account: Account | None, body: object) -> httpx.Response:
    async with registry.client(account) as client:
        return await client.post("/api/v1/messages", json=body)


async def _log_kinds(registry: Registry) -> list[str]:
    async with registry.context.pool.acquire() as conn:
        rows = await conn.fetch("SELECT kind FROM log_entry WHERE kind LIKE '%global_message' ORDER BY id")
    return [row["kind"] for row in rows]


async def test_a_superusers_message_is_shown_to_everyone_until_deleted(
    registry: Registry, superuser: Account
) -> None:
    alice = await registry.user()
    assert await _messages(registry) == []

    created = await _create(registry, superuser, {"message": NOTICE})

    assert created.status_code == 201 and created.content == b""
    [shown] = await _messages(registry)
    assert shown == NOTICE | {"uuid": shown["uuid"]}
    assert await _messages(registry, alice) == [shown]
    async with registry.client(superuser) as client:
        deleted = await client.delete(f"/api/v1/message/{shown['uuid']}")
        again = await client.delete(f"/api/v1/message/{shown['uuid']}")
    assert deleted.status_code == 204
    assert again.status_code == 404 and isinstance(again.json()["detail"], str)
    assert await _messages(registry) == []
    assert await _log_kinds(registry) == ["create_global_message", "delete_global_message"]


async def test_only_superusers_with_the_superuser_scope_manage_messages(
    registry: Registry, superuser: Account, tokens: Tokens
) -> None:
    alice = await registry.user()
    await _create(registry, superuser, {"message": NOTICE})
    [shown] = await _messages(registry)
    by_anonymous = await _create(registry, None, {"message": NOTICE})
    by_user = await _create(registry, alice, {"message": NOTICE})
    async with tokens.with_scopes(superuser, ["user:admin", "org:admin"]) as client:
        without_scope = await client.post("/api/v1/messages", json={"message": NOTICE})
        delete_without_scope = await client.delete(f"/api/v1/message/{shown['uuid']}")
    async with registry.client(alice) as client:
        delete_by_user = await client.delete(f"/api/v1/message/{shown['uuid']}")
    async with tokens.with_scopes(superuser, ["super:user"]) as client:
        with_scope = await client.post("/api/v1/messages", json={"message": NOTICE})

    assert by_anonymous.status_code == 401
    assert [by_user.status_code, without_scope.status_code] == [403, 403]
    assert [delete_by_user.status_code, delete_without_scope.status_code] == [403, 403]
    assert with_scope.status_code == 201
    assert len(await _messages(registry)) == 2


@pytest.mark.parametrize(
    "body",
    [
        NOTICE,
        {"message": NOTICE | {"severity": "critical"}},
        {"message": NOTICE | {"media_type": "text/html"}},
        {"message": NOTICE | {"content": ""}},
        {"message": NOTICE | {"content": "x" * (MAX_CONTENT_CHARS + 1)}},
        {"message": NOTICE | {"content": "nul\x00"}},
        {"message": NOTICE | {"content": 7}},
        {"message": {"content": "no severity", "media_type": "text/plain"}},
        {"message": [NOTICE]},
        [NOTICE],
    ],
)
async def test_bad_messages_are_refused_and_create_nothing(
    registry: Registry, superuser: Account, body: object
) -> None:
    refused = await _create(registry, superuser, body)
    assert refused.status_code == 400, refused.text
    assert isinstance(refused.json()["detail"], str)
    assert await _messages(registry) == []


@pytest.mark.parametrize("reference", ["2f6c1d5e-0b1a-4c3e-9a7d-5e8f0c1b2a3d", "not-a-uuid", "x" * 300])
async def test_deleting_an_unknown_message_answers_404(
    registry: Registry, superuser: Account, reference: str
) -> None:
    await _create(registry, superuser, {"message": NOTICE})
    async with registry.client(superuser) as client:
        response = await client.delete(f"/api/v1/message/{reference}")
    assert response.status_code == 404
    assert isinstance(response.json()["detail"], str)
    assert len(await _messages(registry)) == 1


async def test_no_more_than_the_bound_of_messages_exist(registry: Registry, superuser: Account) -> None:
    async with registry.context.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO global_message (uuid, content, media_type, severity)"
            " SELECT gen_random_uuid(), 'm' || i, 'text/plain', 'info' FROM generate_series(1, $1) AS i",
            MAX_MESSAGES,
        )
    refused = await _create(registry, superuser, {"message": NOTICE})
    assert refused.status_code == 400 and "delete one first" in refused.json()["detail"]
    assert len(await _messages(registry)) == MAX_MESSAGES
