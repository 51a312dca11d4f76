"""Forwarding a request to its region's registry and its answer back, streamed both ways.

- Request bodies are passed on as they arrive (a monolithic PUT of hundreds of MiB is never held
  whole); responses are passed back chunk by chunk as the region sends them (``aiter_raw``: no
  decompression). A client that goes away ends the upstream exchange.
- Hop-by-hop headers (RFC 9110 §7.6.1, and every header the ``Connection`` header names) are
  dropped both ways; ``Host`` becomes the region's; ``X-Forwarded-For`` gets the client's address
  appended, ``X-Forwarded-Proto`` and ``X-Forwarded-Host`` say how the client reached the gateway.
- ``Location`` and the ``WWW-Authenticate`` realm that point at the region's own URL are rewritten to
  point at the gateway; any other absolute URL (an S3 presigned redirect) is passed untouched, and so
  are redirects, cookies and every other header. Each answer carries ``Quayside-Region``.
- A region that refuses the connection is marked down at once and the request, which it never
  received, goes to the next region. A GET or HEAD whose exchange failed otherwise before the
  answer began is retried on the next region too. Other failures answer 502 (504 on a timeout),
  503 when no region is left, in the protocol's error format of the path.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import httpx
from starlette.types import Message, Receive, Scope, Send

from services.gateway import metrics
from services.gateway.routing import Regions, Route, UnknownRegionError
from services.gateway.settings import GatewaySettings
from shared.http_guard import protocol_error

log = logging.getLogger(__name__)

REGION_ANSWER_HEADER = b"quayside-region"
_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Not forwarded either: uvicorn already answered any `Expect: 100-continue`, and the gateway sets these.
_REPLACED_REQUEST_HEADERS = frozenset({b"host", b"expect", b"x-forwarded-proto", b"x-forwarded-host"})
_RETRIED_METHODS = frozenset({"GET", "HEAD"})
# Responses up to this size are sent without watching for the client's disconnect meanwhile.
_WATCH_DISCONNECT_ABOVE_BYTES = 1024 * 1024
HeaderList = list[tuple[bytes, bytes]]


@dataclass(frozen=True)
class Refusal:
    """The gateway's own error answer (OCI ``UNAVAILABLE`` below /v2, Quay's JSON elsewhere)."""

    status: int
    message: str


class ClientDisconnectedError(Exception):
    """The client went away while its request body was being forwarded."""


class RequestBody:
    """The request body as an async stream of chunks, read from ASGI ``receive`` as the region takes it."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self.started = False

    async def chunks(self) -> AsyncIterator[bytes]:
        self.started = True
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnectedError
            if chunk := message.get("body", b""):
                yield chunk
            if not message.get("more_body", False):
                return


class UrlRewriter:
    """Rewrites URLs that point at a region's registry (either scheme, as X-Forwarded-Proto may have
    made it https) so that they point at the gateway."""

    def __init__(self, region_urls: Mapping[str, str]) -> None:
        self._patterns = {
            name: re.compile(rf"https?://{re.escape(httpx.URL(url).netloc.decode())}(?=[/\"?#,]|$)")
            for name, url in region_urls.items()
        }

    def rewrite(self, region: str, value: str, gateway_base: str) -> str:
        return self._patterns[region].sub(gateway_base, value)


def _connection_named(headers: HeaderList) -> frozenset[bytes]:
    """Header names the Connection header lists (hop-by-hop too)."""
    named: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            named.update(token.strip().lower() for token in value.split(b","))
    return frozenset(named)


def _end_to_end(headers: HeaderList, also_dropped: frozenset[bytes]) -> HeaderList:
    dropped = _HOP_BY_HOP | also_dropped | _connection_named(headers)
    return [(name, value) for name, value in headers if name.lower() not in dropped]


class Proxy:
    """The ASGI app forwarding every request it gets to a region."""

    def __init__(
        self,
        settings: GatewaySettings,
        regions: Regions,
        transports: Mapping[str, httpx.AsyncBaseTransport],
    ) -> None:
        self._settings = settings
        self._regions = regions
        self._transports = transports
        self._urls = {name: httpx.URL(url) for name, url in settings.regions.items()}
        self._rewriter = UrlRewriter(settings.regions)
        self._region_header = settings.region_header.lower().encode("latin-1")
        self._timeout = httpx.Timeout(
            connect=settings.connect_timeout_s,
            read=settings.read_timeout_s,
            write=settings.write_timeout_s,
            pool=settings.connect_timeout_s,
        ).as_dict()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        path: str = scope["path"]
        headers: HeaderList = scope["headers"]
        requested = next(
            (value.decode("latin-1") for name, value in headers if name == self._region_header), None
        )
        client = scope.get("client")
        try:
            home = self._regions.home(client[0] if client else None, requested)
        except UnknownRegionError as error:
            await protocol_error(path, 400, "UNSUPPORTED", str(error), {})(scope, receive, send)
            return
        body = RequestBody(receive) if _has_body(headers) else None
        try:
            outcome = await self._exchange(scope, home, body)
        except ClientDisconnectedError:
            return  # nobody to answer
        if isinstance(outcome, Refusal):
            await protocol_error(path, outcome.status, "UNAVAILABLE", outcome.message, {})(
                scope, receive, send
            )
            return
        route, response = outcome
        try:
            await self._answer(scope, receive, send, route, response)
        finally:
            await response.aclose()

    async def _exchange(
        self, scope: Scope, home: str, body: RequestBody | None
    ) -> tuple[Route, httpx.Response] | Refusal:
        """The region's response, trying the next region while that is safe; else the error to answer.
        ClientDisconnectedError when the client went away while its body was being forwarded."""
        tried: set[str] = set()
        while (route := self._regions.route(home, frozenset(tried))) is not None:
            tried.add(route.region)
            started = time.perf_counter()
            try:
                response = await self._send(scope, route.region, body)
            except (httpx.ConnectError, httpx.ConnectTimeout) as error:
                self._failed(route.region, "connect", error)
                self._regions.unreachable(route.region, f"connect: {error!r}")
                if body is None or not body.started:
                    continue
                return Refusal(502, f"region {route.region} could not be reached")
            except httpx.TimeoutException as error:
                self._failed(route.region, "timeout", error)
                return Refusal(504, f"region {route.region} did not answer in time")
            except httpx.TransportError as error:
                self._failed(route.region, "transport", error)
                if scope["method"] in _RETRIED_METHODS and body is None:
                    continue
                return Refusal(502, f"region {route.region} failed to answer")
            self._regions.note_upstream_time(route.region, time.perf_counter() - started)
            self._regions.note_routed(route)
            return route, response
        return Refusal(503, "no region is available")

    def _failed(self, region: str, kind: str, error: Exception) -> None:
        metrics.UPSTREAM_FAILURES.labels(region, kind).inc()
        log.warning("forwarding to region %s failed (%s): %r", region, kind, error)

    async def _send(self, scope: Scope, region: str, body: RequestBody | None) -> httpx.Response:
        base = self._urls[region]
        query: bytes = scope["query_string"]
        target = scope["raw_path"] or scope["path"].encode()
        url = base.copy_with(raw_path=target + (b"?" + query if query else b""))
        request = httpx.Request(
            scope["method"],
            url,
            headers=self._upstream_headers(scope),
            content=body.chunks() if body is not None else None,
            extensions={"timeout": self._timeout},
        )
        return await self._transports[region].handle_async_request(request)

    def _upstream_headers(self, scope: Scope) -> HeaderList:
        headers = _end_to_end(scope["headers"], _REPLACED_REQUEST_HEADERS | {self._region_header})
        client = scope.get("client")
        if client:
            headers = [(name, value) for name, value in headers if name != b"x-forwarded-for"]
            forwarded = [value for name, value in scope["headers"] if name == b"x-forwarded-for"]
            headers.append((b"x-forwarded-for", b", ".join([*forwarded, client[0].encode()])))
        headers.append((b"x-forwarded-proto", scope["scheme"].encode()))
        host = _header(scope["headers"], b"host")
        if host is not None:
            headers.append((b"x-forwarded-host", host))
        return headers

    def _gateway_base(self, scope: Scope) -> str:
        if self._settings.public_url:
            return self._settings.public_url
        host = _header(scope["headers"], b"host")
        if host is None:
            server_host, server_port = scope["server"]
            return f"{scope['scheme']}://{server_host}:{server_port}"
        return f"{scope['scheme']}://{host.decode('latin-1')}"

    def _client_headers(self, scope: Scope, region: str, response: httpx.Response) -> HeaderList:
        headers = _end_to_end(response.headers.raw, frozenset())
        base = self._gateway_base(scope)
        rewritten: HeaderList = []
        for name, value in headers:
            lowered = name.lower()
            if lowered in (b"location", b"www-authenticate"):
                value = self._rewriter.rewrite(region, value.decode("latin-1"), base).encode("latin-1")
            rewritten.append((lowered, value))
        rewritten.append((REGION_ANSWER_HEADER, region.encode()))
        return rewritten

    async def _answer(
        self, scope: Scope, receive: Receive, send: Send, route: Route, response: httpx.Response
    ) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": response.status_code,
                "headers": self._client_headers(scope, route.region, response),
            }
        )
        length = response.headers.get("content-length")
        small = length is not None and length.isdigit() and int(length) <= _WATCH_DISCONNECT_ABOVE_BYTES
        try:
            if small or scope["method"] == "HEAD":
                await _pass_body(response, send)
            else:
                await _pass_body_until_disconnect(response, send, receive)
        except httpx.TransportError as error:
            # The answer has begun: the client sees it cut short (uvicorn closes the connection).
            self._failed(route.region, "transport", error)


def _header(headers: HeaderList, wanted: bytes) -> bytes | None:
    return next((value for name, value in headers if name == wanted), None)


def _has_body(headers: HeaderList) -> bool:
    for name, value in headers:
        if name == b"transfer-encoding":
            return True
        if name == b"content-length":
            return value.strip() not in (b"", b"0")
    return False


async def _pass_body(response: httpx.Response, send: Send) -> None:
    async for chunk in response.aiter_raw():
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _client_gone(receive: Receive) -> None:
    """Return once the client disconnects (request body messages still unread are skipped)."""
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return


async def _pass_body_until_disconnect(response: httpx.Response, send: Send, receive: Receive) -> None:
    """Pass the body on; stop reading the region's answer as soon as the client is gone."""
    passing = asyncio.ensure_future(_pass_body(response, send))
    gone = asyncio.ensure_future(_client_gone(receive))
    try:
        done, _ = await asyncio.wait({passing, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (passing, gone):
            task.cancel()
        await asyncio.gather(passing, gone, return_exceptions=True)
    if passing in done:
        passing.result()
