"""A TCP proxy a test can stop and start again on the same port, to make a real service unreachable."""

from __future__ import annotations

import asyncio
import contextlib


class TcpProxy:
    """Forwards connections from 127.0.0.1:`port` to `target_host:target_port`.

    `port` is chosen on the first start() and kept for the proxy's life. stop() closes the listener
    and every connection through it, so clients see their connection drop and new connections be
    refused until start() is called again.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target_host = target_host
        self._target_port = target_port
        self._port = 0
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("the proxy has not been started")
        return self._port

    async def start(self) -> None:
        if self._server is not None:
            return
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self._port)
        self._port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for connection in list(self._connections):
            connection.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await server.wait_closed()

    async def __aenter__(self) -> TcpProxy:
        await self.start()
        return self

    async def __aexit__(self, *_exc_info: object) -> None:
        await self.stop()

    def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        connection = asyncio.create_task(self._forward(client_reader, client_writer))
        self._connections.add(connection)
        connection.add_done_callback(self._connections.discard)

    async def _forward(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        target_writer: asyncio.StreamWriter | None = None
        try:
            target_reader, target_writer = await asyncio.open_connection(self._target_host, self._target_port)
            async with asyncio.TaskGroup() as pipes:
                pipes.create_task(_pipe(client_reader, target_writer))
                pipes.create_task(_pipe(target_reader, client_writer))
        except* OSError:
            pass  # either side went away: the connection simply ends
        finally:
            # abort(): no lingering half-closed socket, the peer sees the connection drop at once.
            client_writer.transport.abort()
            if target_writer is not None:
                target_writer.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    with contextlib.suppress(OSError):
        writer.write_eof()
