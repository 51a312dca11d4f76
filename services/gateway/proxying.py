"""Forwarding a request to its region's registry and its answer back, streamed both ways.

- A large GET answer with a Content-Length over plain HTTP both ways (a blob, typically) leaves
  Python: once its headers are in, the upstream connection stops being read, the body bytes aiohttp
  already holds are sent, and the rest is spliced from the upstream socket to the client's by the
  serving layer (shared/pathsend.py's SPLICE). That connection is then closed, not reused.
- Request bodies are passed on as they arrive (a monolithic PUT of hundreds of MiB is never held
  whole; with the client's Content-Length when it sent one, else chunked); responses are passed
  back piece by piece as the region sends them, undecoded (no decompression). A client that goes
  away ends the upstream exchange.
- Hop-by-hop headers (RFC 9110 §7.6.1, and every header the ``Connection`` header names) are
  dropped both ways; ``Host`` becomes the region's; ``X-Forwarded-For`` gets the client's address
  appended, ``X-Forwarded-Proto`` and ``X-Forwarded-Host`` say how the client reached the gateway.
  Nothing else is added (no User-Agent, Accept or Content-Type of the gateway's own).
- ``Location`` and the ``WWW-Authenticate`` realm that point at the region's own URL are rewritten to
  point at the gateway; any other absolute URL (an S3 presigned redirect) is passed untouched, and so
  are redirects, cookies and every other header. Each answer carries ``Quayside-Region``.
- A region that refuses the connection is marked down at once and the request, which it never
  received, goes to the next region. A GET or HEAD whose exchange failed otherwise before the
  answer began is retried on the next region too. Other failures answer 502 (504 on a timeout),
  503 when no region is left, in the protocol's error format of the path.
- A path of a service route (settings.services: the mirroring API, say) goes to that service
  instead, forwarded the same way, its answer carrying ``Quayside-Service`` instead of
  ``Quayside-Region``. A service has one URL and no failover, so its health is not watched: a
  service that refuses the connection answers 503, a timeout 504, any other failure 502 (nothing
  retried), and the gateway's own health does not depend on it (/gateway/status shows each
  service's last failure).

The upstream client is aiohttp's: forwarding a small request costs it about 0.1 ms of CPU, httpx's
connection pool about 0.7 ms (measured with 16 concurrent requests), which decides the gateway's
requests/s.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
import yarl
from starlette.types import Message, Receive, Scope, Send

from services.gateway import metrics
from services.gateway.routing import Regions, Route, Services, UnknownRegionError
from services.gateway.settings import GatewaySettings, ServiceRoute
from shared.http_guard import protocol_error
from shared.pathsend import SPLICE

log = logging.getLogger(__name__)

REGION_ANSWER_HEADER = b"quayside-region"
SERVICE_ANSWER_HEADER = b"quayside-service"
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
# Headers aiohttp would add on its own when the client sent none.
NOT_ADDED_HEADERS = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")
_RETRIED_METHODS = frozenset({"GET", "HEAD"})
# Responses up to this size are read whole and sent in one piece, without watching for the
# client's disconnect meanwhile.
_WATCH_DISCONNECT_ABOVE_BYTES = 1024 * 1024
# Answers at least this large are spliced when they can be: below it, a splice's extra work (a
# pipe, a thread, a connection not reused) costs more than the copies it saves.
_SPLICE_FROM_BYTES = 4 * 1024 * 1024
_CONNECT_ERRORS = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
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
        self.client_gone = False

    async def chunks(self) -> AsyncIterator[bytes]:
        self.started = True
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.client_gone = True
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
            name: re.compile(rf"https?://{re.escape(urlsplit(url).netloc)}(?=[/\"?#,]|$)")
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
    """The ASGI app forwarding every request it gets to a region, or to the service of a service
    route, through that upstream's session (``sessions``, by region or service name, filled by the
    app's lifespan)."""

    def __init__(
        self,
        settings: GatewaySettings,
        regions: Regions,
        services: Services,
        sessions: Mapping[str, aiohttp.ClientSession],
    ) -> None:
        self._settings = settings
        self._regions = regions
        self._services = services
        self._sessions = sessions
        self._bases = settings.upstream_urls()
        self._rewriter = UrlRewriter(self._bases)
        self._region_header = settings.region_header.lower().encode("latin-1")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        path: str = scope["path"]
        service = self._services.match(path)
        if service is not None:
            await self._forward_to_service(scope, receive, send, service)
            return
        requested = _header(scope["headers"], self._region_header)
        client = scope.get("client")
        try:
            home = self._regions.home(
                client[0] if client else None, requested.decode("latin-1") if requested is not None else None
            )
        except UnknownRegionError as error:
            await protocol_error(path, 400, "UNSUPPORTED", str(error), {})(scope, receive, send)
            return
        body = RequestBody(receive) if _has_body(scope["headers"]) else None
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
            await self._answer(scope, receive, send, route.region, response)
        finally:
            response.close()  # a no-op once the body was read whole: the connection is back in the pool

    async def _forward_to_service(
        self, scope: Scope, receive: Receive, send: Send, service: ServiceRoute
    ) -> None:
        body = RequestBody(receive) if _has_body(scope["headers"]) else None
        try:
            outcome = await self._service_exchange(scope, service.name, body)
        except ClientDisconnectedError:
            return
        if isinstance(outcome, Refusal):
            await protocol_error(scope["path"], outcome.status, "UNAVAILABLE", outcome.message, {})(
                scope, receive, send
            )
            return
        try:
            await self._answer(scope, receive, send, service.name, outcome)
        finally:
            outcome.close()

    async def _service_exchange(
        self, scope: Scope, service: str, body: RequestBody | None
    ) -> aiohttp.ClientResponse | Refusal:
        """The service's response, or the error to answer (one attempt: there is nowhere else to go)."""
        try:
            response = await self._send(scope, service, body)
        except _CONNECT_ERRORS as error:
            self._failed(service, "connect", error)
            return Refusal(503, f"service {service} could not be reached")
        except TimeoutError as error:
            self._failed(service, "timeout", error)
            return Refusal(504, f"service {service} did not answer in time")
        except aiohttp.ClientError as error:
            if body is not None and body.client_gone:
                raise ClientDisconnectedError from error
            self._failed(service, "transport", error)
            return Refusal(502, f"service {service} failed to answer")
        self._services.note_routed(service)
        return response

    async def _exchange(
        self, scope: Scope, home: str, body: RequestBody | None
    ) -> tuple[Route, aiohttp.ClientResponse] | Refusal:
        """The region's response, trying the next region while that is safe; else the error to answer.
        ClientDisconnectedError when the client went away while its body was being forwarded."""
        tried: set[str] = set()
        while (route := self._regions.route(home, frozenset(tried))) is not None:
            tried.add(route.region)
            started = time.perf_counter()
            try:
                response = await self._send(scope, route.region, body)
            except _CONNECT_ERRORS as error:
                self._failed(route.region, "connect", error)
                self._regions.unreachable(route.region, f"connect: {error}")
                if body is None or not body.started:
                    continue
                return Refusal(502, f"region {route.region} could not be reached")
            except TimeoutError as error:
                self._failed(route.region, "timeout", error)
                return Refusal(504, f"region {route.region} did not answer in time")
            except aiohttp.ClientError as error:
                if body is not None and body.client_gone:
                    raise ClientDisconnectedError from error
                self._failed(route.region, "transport", error)
                if scope["method"] in _RETRIED_METHODS and body is None:
                    continue
                return Refusal(502, f"region {route.region} failed to answer")
            self._regions.note_upstream_time(route.region, time.perf_counter() - started)
            self._regions.note_routed(route)
            return route, response
        return Refusal(503, "no region is available")

    def _failed(self, upstream: str, kind: str, error: BaseException) -> None:
        """Count a failed forward to a region or a service (their names never collide)."""
        if upstream in self._services.states:
            self._services.note_failed(upstream, kind, repr(error))
            log.warning("forwarding to service %s failed (%s): %r", upstream, kind, error)
            return
        metrics.UPSTREAM_FAILURES.labels(upstream, kind).inc()
        log.warning("forwarding to region %s failed (%s): %r", upstream, kind, error)

    async def _send(self, scope: Scope, upstream: str, body: RequestBody | None) -> aiohttp.ClientResponse:
        query: bytes = scope["query_string"]
        target = scope.get("raw_path") or scope["path"].encode()
        if query:
            target += b"?" + query
        url = yarl.URL(self._bases[upstream] + target.decode("latin-1"), encoded=True)
        return await self._sessions[upstream].request(
            scope["method"],
            url,
            headers=self._upstream_headers(scope),
            data=body.chunks() if body is not None else None,
            allow_redirects=False,
        )

    def _upstream_headers(self, scope: Scope) -> list[tuple[str, str]]:
        raw: HeaderList = scope["headers"]
        kept = _end_to_end(raw, _REPLACED_REQUEST_HEADERS | {self._region_header, b"x-forwarded-for"})
        headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in kept]
        client = scope.get("client")
        forwarded = [value.decode("latin-1") for name, value in raw if name == b"x-forwarded-for"]
        if client:
            forwarded.append(client[0])
        if forwarded:
            headers.append(("X-Forwarded-For", ", ".join(forwarded)))
        headers.append(("X-Forwarded-Proto", scope["scheme"]))
        host = _header(raw, b"host")
        if host is not None:
            headers.append(("X-Forwarded-Host", host.decode("latin-1")))
        return headers

    def _gateway_base(self, scope: Scope) -> str:
        if self._settings.public_url:
            return self._settings.public_url
        host = _header(scope["headers"], b"host")
        if host is None:
            server_host, server_port = scope["server"]
            return f"{scope['scheme']}://{server_host}:{server_port}"
        return f"{scope['scheme']}://{host.decode('latin-1')}"

    def _client_headers(self, scope: Scope, upstream: str, response: aiohttp.ClientResponse) -> HeaderList:
        rewritten: HeaderList = []
        for name, value in _end_to_end(list(response.raw_headers), frozenset()):
            lowered = name.lower()
            if lowered in (b"location", b"www-authenticate"):
                text = self._rewriter.rewrite(upstream, value.decode("latin-1"), self._gateway_base(scope))
                value = text.encode("latin-1")
            rewritten.append((lowered, value))
        answered_by = SERVICE_ANSWER_HEADER if upstream in self._services.states else REGION_ANSWER_HEADER
        rewritten.append((answered_by, upstream.encode()))
        return rewritten

    async def _answer(
        self, scope: Scope, receive: Receive, send: Send, upstream: str, response: aiohttp.ClientResponse
    ) -> None:
        """Pass the answer of ``upstream`` (a region or a service) back to the client."""
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": self._client_headers(scope, upstream, response),
            }
        )
        length = response.content_length
        small = length is not None and length <= _WATCH_DISCONNECT_ABOVE_BYTES
        try:
            if (source := _spliceable_socket(scope, response)) is not None:
                await _splice_body(response, source, send, self._settings.read_timeout_s)
            elif small or scope["method"] == "HEAD":
                await _pass_small_body(response, send)
            else:
                await _pass_body_until_disconnect(response, send, receive)
        except (aiohttp.ClientError, TimeoutError) as error:
            # The answer has begun: the client sees it cut short (uvicorn closes the connection).
            self._failed(upstream, "transport", error)


def _header(headers: HeaderList, wanted: bytes) -> bytes | None:
    return next((value for name, value in headers if name == wanted), None)


def _has_body(headers: HeaderList) -> bool:
    for name, value in headers:
        if name == b"transfer-encoding":
            return True
        if name == b"content-length":
            return value.strip() not in (b"", b"0")
    return False


def _spliceable_socket(scope: Scope, response: aiohttp.ClientResponse) -> int | None:
    """The upstream socket's descriptor when the answer's body can be spliced to the client."""
    length = response.content_length
    connection = response.connection
    if (
        SPLICE not in scope.get("extensions", {})
        or scope["method"] != "GET"
        or length is None
        or length < _SPLICE_FROM_BYTES
        or connection is None
        or connection.transport is None
        or connection.transport.get_extra_info("sslcontext") is not None
    ):
        return None
    upstream = connection.transport.get_extra_info("socket")
    return None if upstream is None else int(upstream.fileno())


async def _splice_body(
    response: aiohttp.ClientResponse, source: int, send: Send, read_timeout_s: float
) -> None:
    """What aiohttp already read, then the rest straight from the upstream socket."""
    assert response.connection is not None and response.connection.transport is not None
    # Taking the held bytes may resume reading (aiohttp's flow control), so the pause follows it, in
    # the same step of the event loop: no byte can reach aiohttp's buffer once it is emptied.
    held = response.content.read_nowait()
    response.connection.transport.pause_reading()
    if held:
        await send({"type": "http.response.body", "body": held, "more_body": True})
    remaining = (response.content_length or 0) - len(held)
    await send({"type": SPLICE, "fd": source, "count": remaining, "read_timeout_s": read_timeout_s})
    response.close()


async def _pass_small_body(response: aiohttp.ClientResponse, send: Send) -> None:
    """A body of at most _WATCH_DISCONNECT_ABOVE_BYTES, passed on in one piece."""
    await send({"type": "http.response.body", "body": await response.read(), "more_body": False})
    response.release()


async def _pass_body(response: aiohttp.ClientResponse, send: Send) -> None:
    async for chunk in response.content.iter_any():
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})
    response.release()


async def _client_gone(receive: Receive) -> None:
    """Return once the client disconnects (request body messages still unread are skipped)."""
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return


async def _pass_body_until_disconnect(response: aiohttp.ClientResponse, send: Send, receive: Receive) -> None:
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
