"""Many connections that never finish their headers, against the default connection limits.

Run from the repository root: `python bench/bench_slow_clients.py [CONNECTIONS]` (default 1100,
the issue's reproduction). Serves a small app through shared.serving with the default
QUAYSIDE_HTTP_* limits, opens the connections, each sending a request line and one header, then
reports what a new request gets meanwhile, how long until every slow connection is closed, and
what a request gets afterwards. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import httpx
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared.config import Settings
from shared.http_guard import install_http_guard
from tests.support.served import served


def small_app(settings: Settings) -> FastAPI:
    app = FastAPI()

    @app.get("/ok")
    async def ok() -> PlainTextResponse:
        return PlainTextResponse("ok")

    install_http_guard(app, settings)
    return app


async def measure(count: int) -> None:
    settings = Settings()
    async with served(small_app(settings), settings) as port:
        url = f"http://127.0.0.1:{port}/ok"
        connections = [await asyncio.open_connection("127.0.0.1", port) for _ in range(count)]
        for _, writer in connections:
            writer.write(b"GET /ok HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        started = time.monotonic()
        async with httpx.AsyncClient(timeout=5) as client:
            during = (await client.get(url)).status_code
        answers = await asyncio.gather(*(reader.read() for reader, _ in connections))
        closed_after = time.monotonic() - started
        async with httpx.AsyncClient(timeout=5) as client:
            after = (await client.get(url)).status_code
        timed_out = sum(answer.startswith(b"HTTP/1.1 408 ") for answer in answers)
        print(
            f"{count} slow connections (header timeout {settings.http_header_timeout_s:g} s, cap "
            f"{settings.http_max_connections}): a request meanwhile got {during}; {timed_out} answered 408 "
            f"and all closed after {closed_after:.1f} s; a request afterwards got {after}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("connections", type=int, nargs="?", default=1100)
    asyncio.run(measure(parser.parse_args().connections))


if __name__ == "__main__":
    main()
