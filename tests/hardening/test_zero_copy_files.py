"""File responses sent with sendfile (shared/pathsend.py): the bytes arrive whole and the connection
goes on; a client that stops reading is cut off after the write timeout while the server keeps
answering others; a client that goes away mid-file costs nothing more; TLS connections are not
offered the extension and still get the file whole."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import ssl
from pathlib import Path

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, PlainTextResponse

from shared import pathsend
from shared.config import Settings
from shared.pathsend import PATHSEND
from shared.tls import ensure_local_certificates
from tests.support.served import served
from tests.support.waiting import eventually

FILE_BYTES = 48 * 1024 * 1024 + 17
WRITE_TIMEOUT_S = 1.0


def file_app(path: Path, offered: list[bool]) -> FastAPI:
    app = FastAPI()

    @app.get("/ok")
    async def ok() -> PlainTextResponse:
        return PlainTextResponse("ok")

    @app.get("/file")
    async def file(request: Request) -> FileResponse:
        offered.append(PATHSEND in request.scope.get("extensions", {}))
        return FileResponse(path)

    return app


def random_file(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "blob"
    data = os.urandom(FILE_BYTES)
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


async def test_a_file_arrives_whole_twice_on_one_keep_alive_connection(tmp_path: Path) -> None:
    path, digest = random_file(tmp_path)
    offered: list[bool] = []
    async with (
        served(file_app(path, offered), Settings()) as port,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client,
    ):
        for _ in range(2):
            response = await client.get("/file")
            assert response.status_code == 200
            assert int(response.headers["content-length"]) == FILE_BYTES
            assert hashlib.sha256(response.content).hexdigest() == digest
        assert (await client.get("/ok")).text == "ok"
    assert offered == [True, True]


async def test_a_client_that_stops_reading_is_cut_off_and_others_are_served(tmp_path: Path) -> None:
    path, _ = random_file(tmp_path)
    settings = Settings(http_body_timeout_s=WRITE_TIMEOUT_S)
    async with served(file_app(path, []), settings) as port:
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(("127.0.0.1", port))
        stalled.sendall(b"GET /file HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            await eventually(lambda: sendfile_threads_in_use() == 1, timeout_s=30)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
                assert (await client.get("/ok")).text == "ok"
            # Nothing read for the write timeout: the server gives the download up.
            await eventually(lambda: sendfile_threads_in_use() == 0, timeout_s=30)
            received = await asyncio.to_thread(read_until_closed, stalled)
            assert 0 < received < FILE_BYTES
        finally:
            stalled.close()


def sendfile_threads_in_use() -> int:
    return pathsend._Slots.in_use


def read_until_closed(connection: socket.socket) -> int:
    connection.settimeout(30)
    received = 0
    try:
        while chunk := connection.recv(1024 * 1024):
            received += len(chunk)
    except ConnectionResetError:
        pass
    return received


async def test_a_client_gone_mid_file_leaves_the_server_serving(tmp_path: Path) -> None:
    path, digest = random_file(tmp_path)
    async with served(file_app(path, []), Settings()) as port:
        for _ in range(3):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /file HTTP/1.1\r\nHost: x\r\n\r\n")
            await reader.readexactly(64 * 1024)
            writer.transport.abort()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            response = await client.get("/file")
            assert hashlib.sha256(response.content).hexdigest() == digest


async def test_tls_connections_are_not_offered_pathsend_and_get_the_file_whole(tmp_path: Path) -> None:
    path, digest = random_file(tmp_path)
    certificates = ensure_local_certificates(tmp_path / "tls", ["127.0.0.1"])
    settings = Settings(
        tls_cert_file=str(certificates.server_cert), tls_key_file=str(certificates.server_key)
    )
    verify = ssl.create_default_context(cafile=str(certificates.ca_cert))
    offered: list[bool] = []
    async with (
        served(file_app(path, offered), settings, verify=verify) as port,
        httpx.AsyncClient(base_url=f"https://127.0.0.1:{port}", verify=verify, timeout=60) as client,
    ):
        response = await client.get("/file")
        assert hashlib.sha256(response.content).hexdigest() == digest
    assert offered == [False]
