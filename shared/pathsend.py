"""Zero-copy file responses: the ASGI "http.response.pathsend" extension on uvicorn's httptools
protocol.

Starlette's FileResponse sends ``{"type": "http.response.pathsend", "path": …}`` instead of the
file's bytes when the server offers the extension in ``scope["extensions"]``; uvicorn does not
offer it, so a blob download was read into Python in chunks on threads and written back to the
socket. Here the bytes go from the page cache to the socket with sendfile(2). uvloop has no
loop.sendfile, so the copy runs on a small pool of threads of its own, each waiting with poll(2)
while the socket is full, up to the write timeout; on a duplicate of the socket's descriptor, so
that the connection closing meanwhile cannot hand the number to another file. Reading from the
connection pauses meanwhile, as asyncio's own sendfile does, so nothing else writes to it.

Offered on plain-HTTP connections only (TLS needs the bytes in user space). When every thread is
busy (slow clients), a response is sent the usual way, in chunks read on threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

PATHSEND = "http.response.pathsend"
# Downloads copied by sendfile at once; the others are sent in chunks meanwhile.
SENDFILE_THREADS = 16
_CHUNK_BYTES = 4 * 1024 * 1024
_executor = ThreadPoolExecutor(max_workers=SENDFILE_THREADS, thread_name_prefix="sendfile")


class _Slots:
    """How many sendfile threads are in use (touched on the event loop's thread only)."""

    in_use = 0


def _sendfile_all(out_fd: int, in_fd: int, count: int, timeout_s: float) -> None:
    """Send ``count`` bytes of the file to the non-blocking socket, then close both descriptors
    (this thread's own duplicates); TimeoutError when the client takes nothing for ``timeout_s``,
    EOFError when the file is shorter."""
    try:
        poller = select.poll()
        poller.register(out_fd, select.POLLOUT)
        offset = 0
        while offset < count:
            try:
                sent = os.sendfile(out_fd, in_fd, offset, count - offset)
            except BlockingIOError:
                if not poller.poll(timeout_s * 1000):
                    raise TimeoutError("the client took no bytes within the write timeout") from None
                continue
            if sent == 0:
                raise EOFError("the file is shorter than its response's Content-Length")
            offset += sent
    finally:
        os.close(out_fd)
        os.close(in_fd)


def _release_slot(_copy: object) -> None:
    _Slots.in_use -= 1


class ZeroCopyCycle(RequestResponseCycle):
    """uvicorn's request/response cycle plus PATHSEND for responses with a Content-Length."""

    write_timeout_s = 60.0

    async def send(self, message: Any) -> None:
        if message["type"] != PATHSEND:
            await super().send(message)
            return
        if not self.response_started or self.response_complete:
            raise RuntimeError(f"'{PATHSEND}' must follow the response start and end the response")
        if self.disconnected:
            return
        fd = await asyncio.to_thread(os.open, message["path"], os.O_RDONLY)
        try:
            if self._may_send_zero_copy():
                await self._send_zero_copy(fd)
            else:
                await self._send_chunks(fd)
        finally:
            os.close(fd)
        if not self.disconnected:
            await super().send({"type": "http.response.body", "body": b"", "more_body": False})

    def _may_send_zero_copy(self) -> bool:
        return (
            not self.chunked_encoding
            and self.scope["method"] != "HEAD"
            and _Slots.in_use < SENDFILE_THREADS
            and self.transport.get_write_buffer_size() == 0  # the headers went out already
        )

    async def _send_zero_copy(self, fd: int) -> None:
        count = self.expected_content_length
        socket_fd = os.dup(self.transport.get_extra_info("socket").fileno())
        file_fd = os.dup(fd)
        _Slots.in_use += 1
        self.flow.pause_reading()
        copy = asyncio.get_running_loop().run_in_executor(
            _executor, _sendfile_all, socket_fd, file_fd, count, self.write_timeout_s
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

    def _abandon(self) -> None:
        """The client went away or stalled, or the file was short: the connection cannot go on."""
        self.disconnected = True
        with contextlib.suppress(Exception):
            self.transport.close()


def offers_pathsend(transport: asyncio.BaseTransport) -> bool:
    """Whether requests on this connection may use PATHSEND (not over TLS)."""
    return transport.get_extra_info("sslcontext") is None
