"""Real receivers for what the registry sends out: an HTTP server (webhooks, Slack, callbacks) and an
SMTP server (aiosmtpd), both listening on loopback in the test's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import httpx
from aiosmtpd.smtp import SMTP, Envelope, Session
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shared.serving import ListenAddress, serve
from tests.support.process import free_port
from tests.support.waiting import wait_until


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HttpReceiver:
    """Records every request; answers `status`, or holds requests until `release` is set when `hang`."""

    base_url: str
    status: int = 200
    hang: bool = False
    requests: list[ReceivedRequest] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str = "/hook") -> str:
        return f"{self.base_url}{path}"

    def received(self, path: str = "/hook") -> list[ReceivedRequest]:
        return [request for request in self.requests if request.path == path]

    async def wait_for(
        self, count: int, path: str = "/hook", timeout_s: float = 20.0
    ) -> list[ReceivedRequest]:
        await wait_until(lambda: len(self.received(path)) >= count, timeout_s)
        return self.received(path)

    async def _handle(self, request: Request) -> Response:
        if request.url.path == "/ready":
            return Response(status_code=204)
        self.requests.append(
            ReceivedRequest(request.method, request.url.path, dict(request.headers), await request.body())
        )
        if self.hang:
            await self.release.wait()
        return Response(status_code=self.status)


async def _forever() -> None:
    await asyncio.Event().wait()


@contextlib.asynccontextmanager
async def http_receiver() -> AsyncIterator[HttpReceiver]:
    """An HTTP server on a free loopback port, recording what it receives, for the block."""
    port = free_port()
    receiver = HttpReceiver(base_url=f"http://127.0.0.1:{port}")
    app = Starlette(routes=[Route("/{path:path}", receiver._handle, methods=["GET", "POST", "PUT"])])
    stop = asyncio.Event()
    server = asyncio.create_task(serve(app, ListenAddress(host="127.0.0.1", port=port), _forever(), stop))

    async def ready() -> bool:
        try:
            async with httpx.AsyncClient() as client:
                return (await client.get(receiver.url("/ready"))).status_code == 204
        except httpx.TransportError:
            return False

    try:
        await wait_until(ready)
        yield receiver
    finally:
        receiver.release.set()
        stop.set()
        await server


class _MailHandler:
    def __init__(self, inbox: list[EmailMessage]) -> None:
        self._inbox = inbox

    async def handle_DATA(self, _server: SMTP, _session: Session, envelope: Envelope) -> str:
        message = message_from_bytes(envelope.original_content or b"", policy=policy.default)
        assert isinstance(message, EmailMessage)
        self._inbox.append(message)
        return "250 Message accepted for delivery"


@dataclass
class SmtpServer:
    port: int
    inbox: list[EmailMessage] = field(default_factory=list)

    async def wait_for(self, count: int, timeout_s: float = 20.0) -> list[EmailMessage]:
        await wait_until(lambda: len(self.inbox) >= count, timeout_s)
        return list(self.inbox)


@contextlib.asynccontextmanager
async def smtp_server() -> AsyncIterator[SmtpServer]:
    """An aiosmtpd SMTP server on a free loopback port, keeping every message it accepts."""
    smtp = SmtpServer(port=0)
    handler = _MailHandler(smtp.inbox)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(handler, hostname="smtp.test"), "127.0.0.1", 0)
    smtp.port = server.sockets[0].getsockname()[1]
    try:
        yield smtp
    finally:
        server.close()
        await server.wait_closed()
