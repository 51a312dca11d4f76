"""Running a service process: its HTTP app under uvicorn with its worker beside it, until told to stop."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Coroutine, Iterator
from typing import Annotated, Any

import uvicorn
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import NoDecode
from starlette.types import ASGIApp

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


# A settings field holding a ListenAddress, read from `host:port` text rather than JSON.
ListenSetting = Annotated[ListenAddress, NoDecode]


def stop_event_on_signals() -> asyncio.Event:
    """An event set when the process receives SIGINT or SIGTERM (handled on the running loop)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    return stop


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
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((address.host, address.port))
    except OSError as exc:
        sock.close()
        raise ServerStartError(f"cannot listen on {address.url}: {exc.strerror}") from exc
    sock.set_inheritable(True)
    return sock


async def serve(
    app: ASGIApp,
    address: ListenAddress,
    worker: Coroutine[Any, Any, None],
    stop: asyncio.Event,
    sock: socket.socket | None = None,
) -> None:
    """Serve app on address (or on an already bound sock) with worker running beside it, until stop
    is set or the worker ends.

    On the way out the server finishes open requests and runs the app's shutdown, then the worker
    is cancelled. Raises ServerStartError when the server cannot start, and the worker's exception
    when the worker failed.
    """
    server = _Server(
        uvicorn.Config(
            app,
            host=address.host,
            port=address.port,
            lifespan="on",
            # Requests are counted by /metrics and audited in usage logs; a log line each costs ~15%.
            access_log=False,
            timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN_S,
        )
    )

    def request_exit(_task: object) -> None:
        server.should_exit = True

    worker_task = asyncio.create_task(worker, name="worker")
    worker_task.add_done_callback(request_exit)
    stop_task = asyncio.create_task(stop.wait(), name="stop-signal")
    stop_task.add_done_callback(request_exit)
    try:
        await server.serve(sockets=[sock] if sock else None)
    except SystemExit as exc:
        # uvicorn exits the process on startup failures; the caller decides what that means.
        raise ServerStartError(f"the server on {address.url} did not start") from exc
    finally:
        stop_task.cancel()
        worker_task.cancel()
        await asyncio.wait({stop_task, worker_task})
    if not worker_task.cancelled() and (error := worker_task.exception()) is not None:
        raise error
