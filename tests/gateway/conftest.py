"""The gateway as a real server process (`python -m services.gateway`) in front of "regions":
in-process echo apps served on loopback ports (they answer what they received, and have a
switchable /health/endtoend), or real registry processes.

Clients pick their region by source address: `client_from("127.0.0.2")` binds its connections there.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import hashlib
import json
import os
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from starlette.types import Receive, Scope, Send

from shared.config import Settings
from tests.fixtures.live_registry import REPOSITORY_ROOT
from tests.support.process import ServerProcess, free_port
from tests.support.served import served

# 127.0.0.3 is in both networks: the more specific one wins. 127.0.0.5 is in none.
US_CLIENT, EU_CLIENT, UNMAPPED_CLIENT = "127.0.0.2", "127.0.0.3", "127.0.0.5"
CLIENT_NETWORKS = [{"cidr": "127.0.0.0/30", "region": "us"}, {"cidr": "127.0.0.3/32", "region": "eu"}]
# Health checks often, so that tests waiting on a region's state wait little.
FAST_HEALTH = {"QUAYSIDE_GATEWAY_HEALTH_INTERVAL_S": "0.1", "QUAYSIDE_GATEWAY_HEALTH_TIMEOUT_S": "2"}


def client_from(address: str, base_url: str, **options: object) -> httpx.AsyncClient:
    """An HTTP client whose connections leave from `address` (a loopback address)."""
    transport = httpx.AsyncHTTPTransport(local_address=address)
    return httpx.AsyncClient(base_url=base_url, transport=transport, timeout=60, **options)  # type: ignore[arg-type]


@dataclass
class Gateway:
    url: str
    port: int
    server: ServerProcess

    async def status(self) -> dict[str, Any]:
        """GET /gateway/status's answer (JSON)."""
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.get(f"{self.url}/gateway/status")
        response.raise_for_status()
        answer: dict[str, Any] = response.json()
        return answer

    async def region_state(self, name: str) -> dict[str, Any]:
        regions: list[dict[str, Any]] = (await self.status())["regions"]
        return next(region for region in regions if region["name"] == name)

    async def metric(self, name: str, labels: Mapping[str, str]) -> float:
        """A sample's value on the gateway's /metrics (0 when absent)."""
        async with httpx.AsyncClient(timeout=10) as http:
            text = (await http.get(f"{self.url}/metrics")).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    return float(sample.value)
        return 0.0


def gateway_environment(regions: Mapping[str, str], port: int, extra: Mapping[str, str]) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("QUAYSIDE_")}
    env.update(
        QUAYSIDE_GATEWAY_REGIONS=json.dumps(dict(regions)),
        QUAYSIDE_GATEWAY_CLIENT_NETWORKS=json.dumps([n for n in CLIENT_NETWORKS if n["region"] in regions]),
        QUAYSIDE_GATEWAY_LISTEN=f"127.0.0.1:{port}",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


async def refused_start_output(regions: Mapping[str, str], extra: Mapping[str, str]) -> str:
    """Start `python -m services.gateway` with settings it must refuse: the end of its output,
    once it has exited with status 2 (a settings error)."""
    env = gateway_environment(regions, free_port(), extra)
    server = await ServerProcess.start([sys.executable, "-m", "services.gateway"], env, REPOSITORY_ROOT)
    try:
        await asyncio.wait_for(server.process.wait(), timeout=30)
    finally:
        await server.stop()
    assert server.process.returncode == 2
    return server.output_tail()


@asynccontextmanager
async def running_gateway(regions: Mapping[str, str], **extra: str) -> AsyncIterator[Gateway]:
    """`python -m services.gateway` in front of regions, until the block ends (SIGTERM, then SIGKILL)."""
    port = free_port()
    env = gateway_environment(regions, port, extra)
    server = await ServerProcess.start([sys.executable, "-m", "services.gateway"], env, REPOSITORY_ROOT)
    try:
        url = f"http://127.0.0.1:{port}"
        await server.wait_until_serving(f"{url}/health/instance", accepted=frozenset({200, 503}))
        yield Gateway(url=url, port=port, server=server)
    finally:
        await server.stop()


@dataclass
class EchoRegion:
    """An app standing in for a region's registry; see ``__call__`` for what each path does."""

    name: str
    healthy: bool = True
    # A registry with one of its storage locations down still answers 200, naming it false.
    storage_eu_healthy: bool = True
    health_checks: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    endless_aborted: asyncio.Event = field(default_factory=asyncio.Event)
    stalled_aborted: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        path: str = scope["path"]
        if path == "/health/endtoend":
            self.health_checks += 1
            status = 200 if self.healthy else 503
            services = {"database": self.healthy, "storage:us": True, "storage:eu": self.storage_eu_healthy}
            body = {"data": {"services": services}, "status_code": status}
            await _respond(send, status, [(b"content-type", b"application/json")], json.dumps(body).encode())
            return
        if path.startswith("/download/"):
            await self._download(send, int(path.removeprefix("/download/")))
            return
        if path.startswith("/numbered/"):
            await _numbered(send, int(path.removeprefix("/numbered/")))
            return
        if path.startswith("/stalled/"):
            await self._stalled(receive, send, int(path.removeprefix("/stalled/")))
            return
        if path == "/endless":
            await self._endless(receive, send)
            return
        await self._echo(scope, receive, send)

    async def _echo(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Reads the whole body (hashing it, never keeping it) and answers what it received.

        /hop answers hop-by-hop headers; /redirect/self a 307 to its own URL with a token challenge
        naming its own realm; /redirect/s3 a 307 to a presigned-looking URL elsewhere."""
        digest, size = hashlib.sha256(), 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            digest.update(chunk)
            size += len(chunk)
            if not message.get("more_body", False):
                break
        seen = {
            "region": self.name,
            "method": scope["method"],
            "path": scope["path"],
            "raw_path": scope["raw_path"].decode(),
            "query": scope["query_string"].decode(),
            "headers": [[name.decode(), value.decode()] for name, value in scope["headers"]],
            "body_sha256": digest.hexdigest(),
            "body_bytes": size,
        }
        self.requests.append(seen)
        headers = [(b"content-type", b"application/json")]
        status = 200
        if scope["path"] == "/hop":
            headers += [
                (b"connection", b"x-private, keep-alive"),
                (b"x-private", b"for the gateway only"),
                (b"keep-alive", b"timeout=5"),
                (b"proxy-authenticate", b"Basic"),
                (b"set-cookie", b"session=one; Path=/; HttpOnly"),
                (b"set-cookie", b"other=two; Path=/"),
                (b"x-end-to-end", b"kept"),
            ]
        elif scope["path"] == "/redirect/self":
            status = 307
            headers += [
                (b"location", f"{self.url}/v2/ns/app/blobs/uploads/abc?state=1".encode()),
                (b"www-authenticate", f'Bearer realm="{self.url}/v2/auth",service="quayside"'.encode()),
            ]
        elif scope["path"] == "/redirect/s3":
            status = 307
            headers += [(b"location", b"http://s3.example:8333/bucket/blobs/sha256/ab?X-Amz-Signature=f00")]
        await _respond(send, status, headers, json.dumps(seen).encode())

    async def _endless(self, receive: Receive, send: Send) -> None:
        """A body without end, until the connection is closed (then ``endless_aborted`` is set)."""
        await send({"type": "http.response.start", "status": 200, "headers": []})
        chunk = b"\x00" * (256 * 1024)

        async def stream() -> None:
            while True:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})

        streaming = asyncio.create_task(stream())
        try:
            while (await receive())["type"] != "http.disconnect":
                pass
        finally:
            streaming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await streaming
        self.endless_aborted.set()

    @staticmethod
    async def _download(send: Send, size: int) -> None:
        chunk = b"\x5a" * (1024 * 1024)
        headers = [(b"content-type", b"application/octet-stream"), (b"content-length", str(size).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        remaining = size
        while remaining:
            piece = chunk[: min(len(chunk), remaining)]
            remaining -= len(piece)
            await send({"type": "http.response.body", "body": piece, "more_body": bool(remaining)})

    async def _stalled(self, receive: Receive, send: Send, size: int) -> None:
        """Half of a numbered body of ``size`` bytes, then nothing until the connection is closed
        (then ``stalled_aborted`` is set)."""
        headers = [(b"content-length", str(size).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": numbered_bytes(0, size // 2), "more_body": True})
        while (await receive())["type"] != "http.disconnect":
            pass
        self.stalled_aborted.set()


def numbered_bytes(start: int, size: int) -> bytes:
    """Bytes ``start`` to ``start + size`` of a body made of consecutive 8-byte big-endian counters,
    in which a byte lost, repeated or moved shows (start and size multiples of 8)."""
    counters = array.array("Q", range(start // 8, (start + size) // 8))
    if sys.byteorder == "little":
        counters.byteswap()
    return counters.tobytes()


async def _numbered(send: Send, size: int) -> None:
    headers = [(b"content-type", b"application/octet-stream"), (b"content-length", str(size).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    piece = 1024 * 1024
    for start in range(0, size, piece):
        body = numbered_bytes(start, min(piece, size - start))
        await send({"type": "http.response.body", "body": body, "more_body": start + piece < size})


async def _respond(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@asynccontextmanager
async def echo_regions(*names: str) -> AsyncIterator[dict[str, EchoRegion]]:
    """Echo regions of these names, each served on its own loopback port for the block."""
    regions = {name: EchoRegion(name) for name in names}
    async with _serve_all(list(regions.values())):
        yield regions


@asynccontextmanager
async def _serve_all(pending: list[EchoRegion]) -> AsyncIterator[None]:
    if not pending:
        yield
        return
    first, *rest = pending
    async with served(first, Settings(), ready_path="/health/endtoend") as port:
        first.port = port
        async with _serve_all(rest):
            yield
