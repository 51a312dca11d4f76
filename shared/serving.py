"""Running a service process: its HTTP app under uvicorn with its worker beside it, until told to stop."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import socket
import ssl
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Annotated, Any

import uvicorn
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import NoDecode
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from shared.config import Settings
from shared.pathsend import PATHSEND, SPLICE, ZeroCopyCycle, offers_zero_copy
from shared.tls import ReloadingServerContext, TlsFiles

# Open requests get this long to finish once the process is asked to stop.
_GRACEFUL_SHUTDOWN_S = 10


class ServerStartError(RuntimeError):
    """The HTTP server did not start: the app's startup failed or the address could not be bound."""


class ListenAddress(BaseModel):
    """Where a server listens; validates from `host:port` text, IPv6 hosts in brackets (`[::1]:5000`)."""

    model_config = ConfigDict(frozen=True)

    host: str = Field(min_length=1)
    port: int = Field(ge=0, le=65535)

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        host, separator, port = value.strip().rpartition(":")
        if not separator or not port.isdigit():
            raise ValueError(f"listen address {value!r} is not host:port")
        return {"host": host.removeprefix("[").removesuffix("]"), "port": int(port)}

    @classmethod
    def parse(cls, value: str) -> ListenAddress:
        """Read `host:port`; ValueError (a pydantic ValidationError) when it is not of that form."""
        return cls.model_validate(value)

    @property
    def authority(self) -> str:
        """`host:port` as it goes in a URL or an image reference."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.authority}"

    @property
    def https_url(self) -> str:
        return f"https://{self.authority}"


# A settings field holding a ListenAddress, read from `host:port` text rather than JSON.
ListenSetting = Annotated[ListenAddress, NoDecode]


def stop_event_on_signals() -> asyncio.Event:
    """An event set when the process receives SIGINT or SIGTERM (handled on the running loop)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    return stop


_REQUEST_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 16\r\nconnection: close\r\n\r\nrequest timeout\n"
)


class _HeaderDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol plus a deadline for each request's line and headers, and the
    zero-copy file responses of shared/pathsend.py.

    uvicorn bounds only the idle time between requests; a client that opens a connection and never
    finishes its headers would hold it forever. The deadline runs from the connection's opening
    (first request) or the request's first byte, and ends the connection with a 408.
    """

    header_timeout_s = 10.0
    cycle_class: type[ZeroCopyCycle] = ZeroCopyCycle
    _header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if offers_zero_copy(self.transport):
            extensions = self.scope.setdefault("extensions", {})
            extensions[PATHSEND] = extensions[SPLICE] = {}  # type: ignore[index]
        self._arm_header_deadline()

    def on_headers_complete(self) -> None:
        self._disarm_header_deadline()
        super().on_headers_complete()
        if type(self.cycle) is RequestResponseCycle:
            # The cycle uvicorn just made (its ASGI task has not run yet) gains PATHSEND.
            self.cycle.__class__ = self.cycle_class

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def _arm_header_deadline(self) -> None:
        if self._header_deadline is None:
            self._header_deadline = self.loop.call_later(self.header_timeout_s, self._headers_too_late)

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_late(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            self.transport.write(_REQUEST_TIMEOUT_RESPONSE)
            self.transport.close()


def _protocol_with_timeouts(header_timeout_s: float, write_timeout_s: float) -> type[HttpToolsProtocol]:
    cycle = type("ZeroCopyCycle", (ZeroCopyCycle,), {"write_timeout_s": write_timeout_s})
    return type(
        "HeaderDeadlineProtocol",
        (_HeaderDeadlineProtocol,),
        {"header_timeout_s": header_timeout_s, "cycle_class": cycle},
    )


def tls_files(settings: Settings) -> TlsFiles | None:
    """The TLS files settings name, None for plain HTTP; ServerStartError when only one of the
    certificate and the key is set."""
    if settings.tls_cert_file is None and settings.tls_key_file is None:
        return None
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        raise ServerStartError("QUAYSIDE_TLS_CERT_FILE and QUAYSIDE_TLS_KEY_FILE must be set together")
    client_ca = settings.tls_client_ca_file
    return TlsFiles(
        cert_file=Path(settings.tls_cert_file),
        key_file=Path(settings.tls_key_file),
        client_ca_file=Path(client_ca) if client_ca else None,
    )


async def _server_tls(settings: Settings) -> ReloadingServerContext | None:
    files = tls_files(settings)
    if files is None:
        return None
    try:
        return await ReloadingServerContext.load(files)
    except (OSError, ssl.SSLError) as exc:
        raise ServerStartError(f"TLS certificate or key unusable ({files.cert_file}): {exc}") from exc


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: the caller's stop event decides when it exits."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def shared_listening_socket(address: ListenAddress) -> socket.socket:
    """A socket bound with SO_REUSEPORT, so that several processes can serve the same port.

    The kernel spreads incoming connections over every process listening on it.
    """
    family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
    # IPPROTO_TCP named: asyncio turns on TCP_NODELAY for accepted connections only when the
    # listening socket's protocol says TCP (with 0, every answer written in two parts waited for
    # the client's delayed ACK: 40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((address.host, address.port))
    except OSError as exc:
        sock.close()
        raise ServerStartError(f"cannot listen on {address.url}: {exc.strerror}") from exc
    sock.set_inheritable(True)
    return sock


# Allocations between young-generation collections (Python's default: 700); the older generations'
# ratios (default 10, 10) scaled with it. See settle_garbage_collector.
_GC_THRESHOLDS = (50_000, 20, 100)


def settle_garbage_collector() -> None:
    """Keep the cyclic garbage collector out of the request path's tail: for a service process's
    entry point, once its app is built (never in a process that runs other work, such as tests).

    With the defaults, a busy HTTP process collects every 700 allocations, and its full
    collections walk every object of the app (FastAPI's routes, pydantic's models): pauses that
    showed in the latency tail. Objects alive before serving (the imported app) are moved out of
    the collector's view, and collections run less often: manifest GETs at 64 connections went from
    p99 156-198 ms to 78-90 ms, with 10 % more requests a second (bench/README.md, "Credentials
    benchmark"). Reference counting still frees everything that is not in a cycle at once."""
    gc.freeze()
    gc.set_threshold(*_GC_THRESHOLDS)


async def serve(
    app: ASGIApp,
    address: ListenAddress,
    worker: Coroutine[Any, Any, None],
    stop: asyncio.Event,
    sock: socket.socket | None = None,
    settings: Settings | None = None,
) -> None:
    """Serve app on address (or on an already bound sock) with worker running beside it, until stop
    is set or the worker ends.

    Connection limits, trusted proxies and TLS come from settings (QUAYSIDE_HTTP_*, QUAYSIDE_TLS_*;
    read from the environment when None). On the way out the server finishes open requests and runs the app's
    shutdown, then the worker is cancelled. Raises ServerStartError when the server cannot start,
    and the worker's exception when the worker failed.
    """
    settings = settings or Settings()
    try:
        tls = await _server_tls(settings)
    except ServerStartError:
        worker.close()
        raise
    server = _Server(
        uvicorn.Config(
            app,
            host=address.host,
            port=address.port,
            http=_protocol_with_timeouts(settings.http_header_timeout_s, settings.http_body_timeout_s),
            lifespan="on",
            # Requests are counted by /metrics and audited in usage logs; a log line each costs ~15%.
            access_log=False,
            timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN_S,
            timeout_keep_alive=settings.http_keep_alive_s,  # type: ignore[arg-type]
            limit_concurrency=settings.http_max_connections,
            # The client address (scope["client"]) and scheme from X-Forwarded-For/-Proto only for
            # requests from the trusted proxies; uvicorn otherwise trusts loopback by default.
            proxy_headers=bool(settings.http_trusted_proxies),
            forwarded_allow_ips=[str(network) for network in settings.http_trusted_proxies],
            ssl_context_factory=(lambda _config, _default: tls.listening) if tls else None,
        )
    )

    def request_exit(_task: object) -> None:
        server.should_exit = True

    worker_task = asyncio.create_task(worker, name="worker")
    worker_task.add_done_callback(request_exit)
    stop_task = asyncio.create_task(stop.wait(), name="stop-signal")
    stop_task.add_done_callback(request_exit)
    tls_task = asyncio.create_task(tls.watch(settings.tls_reload_interval_s)) if tls else None
    try:
        await server.serve(sockets=[sock] if sock else None)
    except SystemExit as exc:
        # uvicorn exits the process on startup failures; the caller decides what that means.
        raise ServerStartError(f"the server on {address.url} did not start") from exc
    finally:
        background = {stop_task, worker_task, *([tls_task] if tls_task else [])}
        for task in background:
            task.cancel()
        await asyncio.wait(background)
    if not worker_task.cancelled() and (error := worker_task.exception()) is not None:
        raise error
