"""Every HTTP server (shared.serving) takes the client's address and scheme from X-Forwarded-For
and X-Forwarded-Proto only on connections from QUAYSIDE_HTTP_TRUSTED_PROXIES, loopback included."""

from __future__ import annotations

import json

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from shared.config import Settings
from tests.gateway.conftest import client_from
from tests.support.served import served

FORWARDED = {"X-Forwarded-For": "203.0.113.9, 198.51.100.4", "X-Forwarded-Proto": "https"}


async def client_as_seen(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = json.dumps({"client": scope["client"][0], "scheme": scope["scheme"]}).encode()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": body})


async def seen_from(address: str, settings: Settings) -> dict[str, str]:
    async with (
        served(client_as_seen, settings) as port,
        client_from(address, f"http://127.0.0.1:{port}") as http,
    ):
        answer: httpx.Response = await http.get("/", headers=FORWARDED)
    seen: dict[str, str] = answer.json()
    return seen


@pytest.mark.parametrize("trusted", [[], ["127.0.0.3/32"]], ids=["none", "another-address"])
async def test_forwarded_headers_of_untrusted_connections_are_ignored(trusted: list[str]) -> None:
    settings = Settings.model_validate({"http_trusted_proxies": trusted})
    assert await seen_from("127.0.0.2", settings) == {"client": "127.0.0.2", "scheme": "http"}


async def test_a_trusted_proxy_forwards_the_nearest_untrusted_address() -> None:
    # 198.51.100.4 is the address the trusted proxy saw; 203.0.113.9 is only what that client claimed.
    settings = Settings.model_validate({"http_trusted_proxies": ["127.0.0.0/30"]})
    assert await seen_from("127.0.0.2", settings) == {"client": "198.51.100.4", "scheme": "https"}
