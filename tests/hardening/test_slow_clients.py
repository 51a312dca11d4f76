"""Slow and idle clients: a connection that never finishes its headers, a body shorter than its
Content-Length, an idle keep-alive connection are closed within their time limits, while the server
keeps answering everyone else; beyond the connection cap new requests get a 503."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse

from shared.config import Settings
from shared.http_guard import install_http_guard
from tests.fixtures.live_registry import LiveRegistry
from tests.support.served import served
from tests.support.waiting import eventually

HEADER_TIMEOUT_S = 0.5
BODY_TIMEOUT_S = 0.5
KEEP_ALIVE_S = 0.5
# How much later than its time limit a connection may close on a busy machine.
MARGIN_S = 5.0


def guarded_app(settings: Settings) -> FastAPI:
    app = FastAPI()

    @app.get("/ok")
    async def ok() -> PlainTextResponse:
        return PlainTextResponse("ok")

    @app.post("/v2/echo")
    async def echo(request: Request) -> PlainTextResponse:
        return PlainTextResponse(str(len(await request.body())))

    install_http_guard(app, settings)
    return app


@contextlib.asynccontextmanager
async def server(**limits: float) -> AsyncIterator[int]:
    defaults = {
        "http_header_timeout_s": HEADER_TIMEOUT_S,
        "http_body_timeout_s": BODY_TIMEOUT_S,
        "http_keep_alive_s": KEEP_ALIVE_S,
    }
    settings = Settings.model_validate({**defaults, **limits})
    async with served(guarded_app(settings), settings) as port:
        yield port


async def read_until_closed(reader: asyncio.StreamReader, timeout_s: float) -> bytes:
    """Everything the server sends until it closes the connection; TimeoutError if it does not."""
    async with asyncio.timeout(timeout_s):
        return await reader.read()


async def others_are_served(port: int, count: int = 5) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        answers = await asyncio.gather(*(client.get("/ok") for _ in range(count)))
    assert [answer.status_code for answer in answers] == [200] * count


async def test_unfinished_headers_are_cut_off_while_others_are_served() -> None:
    async with server() as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        started = time.monotonic()
        writer.write(b"GET /ok HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        await writer.drain()
        await others_are_served(port)
        answer = await read_until_closed(reader, HEADER_TIMEOUT_S + MARGIN_S)
        elapsed = time.monotonic() - started
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"connection: close" in answer.lower()
    assert elapsed >= HEADER_TIMEOUT_S * 0.9


async def test_a_connection_that_sends_nothing_is_closed() -> None:
    async with server() as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        answer = await read_until_closed(reader, HEADER_TIMEOUT_S + MARGIN_S)
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408 ")


async def test_a_body_shorter_than_its_length_ends_in_408_and_a_closed_connection() -> None:
    async with server() as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /v2/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
        await writer.drain()
        await others_are_served(port)
        answer = await read_until_closed(reader, BODY_TIMEOUT_S + MARGIN_S)
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ")
    assert b"connection: close" in head.lower()
    assert b'"code":"UNKNOWN"' in body


async def test_a_complete_body_is_read_whatever_its_pace() -> None:
    async with server() as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /v2/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 6\r\nConnection: close\r\n\r\n"
        )
        for piece in (b"ab", b"cd", b"ef"):
            writer.write(piece)
            await writer.drain()
        answer = await read_until_closed(reader, MARGIN_S)
        writer.close()
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"\r\n\r\n6")


async def test_an_idle_keep_alive_connection_is_closed() -> None:
    async with server() as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /ok HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await writer.drain()
        answer = await read_until_closed(reader, KEEP_ALIVE_S + MARGIN_S)
        writer.close()
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"ok")


async def test_beyond_the_connection_cap_requests_get_503_until_connections_close() -> None:
    cap = 4
    async with server(http_max_connections=cap, http_header_timeout_s=60.0) as port:
        idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(cap)]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            refused = await client.get("/ok")
            for _, writer in idle:
                writer.close()

            async def served_again() -> bool:
                return (await client.get("/ok")).status_code == 200

            await eventually(served_again, timeout_s=MARGIN_S)
    assert refused.status_code == 503


@pytest.fixture
def live_registry_env() -> dict[str, str]:
    return {"QUAYSIDE_HTTP_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S)}


async def test_an_upload_chunk_shorter_than_its_length_is_cut_off_and_stores_nothing(
    live_registry: LiveRegistry,
) -> None:
    owner = await live_registry.user()
    async with httpx.AsyncClient(base_url=live_registry.url, auth=owner.auth, timeout=10) as client:
        started = await client.post(f"/v2/{owner.username}/app/blobs/uploads/")
        assert started.status_code == 202, started.text
        location = started.headers["Location"]
        path = httpx.URL(location).raw_path.decode() if location.startswith("http") else location
        basic = owner.basic_header["Authorization"]

        reader, writer = await asyncio.open_connection("127.0.0.1", live_registry.port)
        writer.write(
            f"PATCH {path} HTTP/1.1\r\nHost: {live_registry.host}\r\nAuthorization: {basic}\r\n"
            "Content-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n".encode()
            + b"x" * 1000
        )
        await writer.drain()
        assert (await client.get("/v2/")).status_code == 200, "others are served meanwhile"
        answer = await read_until_closed(reader, BODY_TIMEOUT_S + MARGIN_S)
        writer.close()
        status = await client.get(path)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b"docker-distribution-api-version: registry/2.0" in answer.lower()
    assert status.status_code == 204
    assert status.headers.get("Range", "0-0") == "0-0", "a cut-off chunk must not be kept"
