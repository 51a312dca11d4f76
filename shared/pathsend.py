"""Zero-copy responses on uvicorn's httptools protocol: the ASGI "http.response.pathsend"
extension for files, and Quayside's own "quayside.response.splice" for bodies read from a socket.

Starlette's FileResponse sends ``{"type": "http.response.pathsend", "path": …}`` instead of the
file's bytes when the server offers the extension in ``scope["extensions"]``; uvicorn does not
offer it, so a blob download was read into Python in chunks on threads and written back to the
socket. Here the bytes go from the page cache to the socket with sendfile(2). The copy runs on a
small pool of threads of its own, off the event loop (the gateway's uvloop has no loop.sendfile,
and a copy on the loop's thread would hold up every other connection), each waiting with poll(2)
while the socket is full, up to the write timeout; on a duplicate of the socket's descriptor, so
that the connection closing meanwhile cannot hand the number to another file. Reading from the
connection pauses meanwhile, as asyncio's own sendfile does, so nothing else writes to it.

SPLICE ends a response with ``count`` bytes read from another socket ``fd`` (a proxy's upstream
connection, which the sender has stopped reading), waiting up to ``read_timeout_s`` for each of its
bytes: they move from that socket to the client's with splice(2) through a pipe, on the same
threads, never entering Python. The sender keeps the descriptor and closes it once the message is
sent.

Offered on plain-HTTP connections only (TLS needs the bytes in user space). When every thread is
busy (slow clients), a response is sent the usual way, in chunks read on threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import os
import select
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

PATHSEND = "http.response.pathsend"
SPLICE = "quayside.response.splice"
# Downloads copied by sendfile at once; the others are sent in chunks meanwhile.
SENDFILE_THREADS = 16
_CHUNK_BYTES = 4 * 1024 * 1024
# A splice's pipe: Linux's default ceiling for an unprivileged pipe (/proc/sys/fs/pipe-max-size).
_PIPE_BYTES = 1024 * 1024
_SPLICE_FLAGS = os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK
_CLIENT_STALLED = "the client took no bytes within the write timeout"
_SOURCE_STALLED = "the source sent no bytes within the read timeout"
_executor = ThreadPoolExecutor(max_workers=SENDFILE_THREADS, thread_name_prefix="sendfile")


class _Slots:
    """How many sendfile threads are in use (touched on the event loop's thread only)."""

    in_use = 0


class _Waiter:
    """poll(2) on one descriptor for one event, giving up after the timeout."""

    def __init__(self, fd: int, event: int, timeout_s: float, stalled: str) -> None:
        self._poller = select.poll()
        self._poller.register(fd, event)
        self._timeout_ms = timeout_s * 1000
        self._stalled = stalled

    def wait(self) -> None:
        if not self._poller.poll(self._timeout_ms):
            raise TimeoutError(self._stalled)


def _sendfile_all(out_fd: int, in_fd: int, count: int, timeout_s: float) -> None:
    """Send ``count`` bytes of the file to the non-blocking socket, then close both descriptors
    (this thread's own duplicates); TimeoutError when the client takes nothing for ``timeout_s``,
    EOFError when the file is shorter."""
    try:
        writable = _Waiter(out_fd, select.POLLOUT, timeout_s, _CLIENT_STALLED)
        offset = 0
        while offset < count:
            try:
                sent = os.sendfile(out_fd, in_fd, offset, count - offset)
            except BlockingIOError:
                writable.wait()
                continue
            if sent == 0:
                raise EOFError("the file is shorter than its response's Content-Length")
            offset += sent
    finally:
        os.close(out_fd)
        os.close(in_fd)


def _splice_all(out_fd: int, in_fd: int, count: int, timeout_s: float, *, read_timeout_s: float) -> None:
    """Move ``count`` bytes from the non-blocking socket ``in_fd`` to the non-blocking socket
    ``out_fd`` through a pipe, then close both descriptors (this thread's own duplicates);
    TimeoutError when the client stalls for ``timeout_s`` or the source for ``read_timeout_s``,
    EOFError when the source ends early."""
    pipe_out, pipe_in = os.pipe()
    try:
        with contextlib.suppress(OSError):
            fcntl.fcntl(pipe_in, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
        readable = _Waiter(in_fd, select.POLLIN, read_timeout_s, _SOURCE_STALLED)
        writable = _Waiter(out_fd, select.POLLOUT, timeout_s, _CLIENT_STALLED)
        left = count
        while left:
            try:
                piped = os.splice(in_fd, pipe_in, min(left, _PIPE_BYTES), flags=_SPLICE_FLAGS)
            except BlockingIOError:
                readable.wait()
                continue
            if piped == 0:
                raise EOFError("the source ended before the response's Content-Length")
            while piped:
                try:
                    sent = os.splice(pipe_out, out_fd, piped, flags=_SPLICE_FLAGS)
                except BlockingIOError:
                    writable.wait()
                    continue
                piped -= sent
                left -= sent
    finally:
        for fd in (pipe_out, pipe_in, out_fd, in_fd):
            os.close(fd)


def _read_some(fd: int, size: int, timeout_s: float) -> bytes:
    """Up to ``size`` bytes from the non-blocking socket, waiting up to ``timeout_s`` for any."""
    readable = _Waiter(fd, select.POLLIN, timeout_s, _SOURCE_STALLED)
    while True:
        try:
            return os.read(fd, size)
        except BlockingIOError:
            readable.wait()


def _release_slot(_copy: object) -> None:
    _Slots.in_use -= 1


class ZeroCopyCycle(RequestResponseCycle):
    """uvicorn's request/response cycle plus PATHSEND for responses with a Content-Length."""

    write_timeout_s = 60.0

    async def send(self, message: Any) -> None:
        kind = message["type"]
        if kind not in (PATHSEND, SPLICE):
            await super().send(message)
            return
        if not self.response_started or self.response_complete:
            raise RuntimeError(f"'{kind}' must follow the response start and end the response")
        if self.disconnected:
            return
        if kind == PATHSEND:
            await self._send_file(message["path"])
        else:
            await self._send_spliced(message["fd"], message["count"], message["read_timeout_s"])
        if not self.disconnected:
            await super().send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _send_file(self, path: str) -> None:
        fd = await asyncio.to_thread(os.open, path, os.O_RDONLY)
        try:
            if self._may_send_zero_copy():
                await self._copy_on_thread(_sendfile_all, fd)
            else:
                await self._send_chunks(fd)
        finally:
            os.close(fd)

    async def _send_spliced(self, fd: int, count: int, read_timeout_s: float) -> None:
        if count != self.expected_content_length:
            raise RuntimeError(f"'{SPLICE}' of {count} bytes where {self.expected_content_length} remain")
        if self._may_send_zero_copy():
            await self._copy_on_thread(functools.partial(_splice_all, read_timeout_s=read_timeout_s), fd)
        else:
            await self._send_socket_chunks(fd, read_timeout_s)

    def _may_send_zero_copy(self) -> bool:
        return (
            not self.chunked_encoding
            and self.scope["method"] != "HEAD"
            and _Slots.in_use < SENDFILE_THREADS
            and self.transport.get_write_buffer_size() == 0  # the headers went out already
        )

    async def _copy_on_thread(self, copy_all: Callable[[int, int, int, float], None], fd: int) -> None:
        """Run ``copy_all(client socket, source, count, timeout)`` on a copying thread, with
        duplicates of both descriptors that it closes."""
        count = self.expected_content_length
        socket_fd = os.dup(self.transport.get_extra_info("socket").fileno())
        source_fd = os.dup(fd)
        _Slots.in_use += 1
        self.flow.pause_reading()
        copy = asyncio.get_running_loop().run_in_executor(
            _executor, copy_all, socket_fd, source_fd, count, self.write_timeout_s
        )
        copy.add_done_callback(_release_slot)
        try:
            await copy
            self.expected_content_length = 0
        except (OSError, TimeoutError, EOFError):
            self._abandon()
        finally:
            if not self.disconnected:
                self.flow.resume_reading()

    async def _send_chunks(self, fd: int) -> None:
        offset = 0
        remaining = self.expected_content_length
        while remaining > 0 and not self.disconnected:
            chunk = await asyncio.to_thread(os.pread, fd, min(_CHUNK_BYTES, remaining), offset)
            if not chunk:
                self._abandon()
                return
            await super().send({"type": "http.response.body", "body": chunk, "more_body": True})
            offset += len(chunk)
            remaining -= len(chunk)

    async def _send_socket_chunks(self, fd: int, read_timeout_s: float) -> None:
        remaining = self.expected_content_length
        while remaining > 0 and not self.disconnected:
            try:
                chunk = await asyncio.to_thread(_read_some, fd, min(_CHUNK_BYTES, remaining), read_timeout_s)
            except (OSError, TimeoutError):
                chunk = b""
            if not chunk:
                self._abandon()
                return
            await super().send({"type": "http.response.body", "body": chunk, "more_body": True})
            remaining -= len(chunk)

    def _abandon(self) -> None:
        """The client went away or stalled, or the file was short: the connection cannot go on."""
        self.disconnected = True
        with contextlib.suppress(Exception):
            self.transport.close()


def offers_zero_copy(transport: asyncio.BaseTransport) -> bool:
    """Whether requests on this connection may use PATHSEND and SPLICE (not over TLS)."""
    return transport.get_extra_info("sslcontext") is None
