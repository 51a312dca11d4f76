"""The servers' TLS (shared.serving with QUAYSIDE_TLS_*): clients refuse expired and wrong-host
certificates, plain HTTP gets no answer, a changed certificate file is picked up by new
connections while an unusable one is not, and mutual TLS refuses clients without a certificate."""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path

import dxf
import httpx
import pytest
import requests
from fastapi import FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse

from shared.config import Settings
from shared.serving import ListenAddress, ServerStartError, serve
from shared.tls import issue_certificate, write_certificate
from tests.support.process import free_port
from tests.support.served import served
from tests.support.skopeo import run_skopeo
from tests.support.waiting import eventually
from tests.tls.conftest import LocalCa, peer_certificate


def small_app() -> FastAPI:
    app = FastAPI()

    @app.get("/ok")
    async def ok() -> PlainTextResponse:
        return PlainTextResponse("ok")

    @app.get("/v2/")
    async def version() -> JSONResponse:
        return JSONResponse({})

    return app


async def never_ends() -> None:
    await asyncio.Event().wait()


def tls_settings(cert_file: Path, key_file: Path, client_ca: Path | None = None) -> Settings:
    return Settings(
        tls_cert_file=str(cert_file),
        tls_key_file=str(key_file),
        tls_client_ca_file=str(client_ca) if client_ca else None,
        tls_reload_interval_s=0.1,
    )


async def curl(*args: str) -> int:
    process = await asyncio.create_subprocess_exec(
        "curl", "-sS", "-o", "/dev/null", "--max-time", "20", *args, stderr=asyncio.subprocess.DEVNULL
    )
    return await process.wait()


@pytest.mark.parametrize("problem", ["expired", "wrong-host"])
async def test_clients_refuse_an_expired_or_wrong_host_certificate(local_ca: LocalCa, problem: str) -> None:
    if problem == "expired":
        cert_file, key_file = local_ca.issue("server", expired=True)
    else:
        cert_file, key_file = local_ca.issue("server", ("registry.example",))
    async with served(small_app(), tls_settings(cert_file, key_file), verify=False) as port:
        url = f"https://127.0.0.1:{port}/v2/"
        async with httpx.AsyncClient(verify=local_ca.client_context()) as client:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await client.get(url)
        curl_status = await curl("--cacert", str(local_ca.cert_file), url)
        skopeo = await run_skopeo(
            "inspect", "--cert-dir", str(local_ca.folder), f"docker://127.0.0.1:{port}/a/b:c"
        )

        def dxf_list() -> None:
            dxf.DXF(f"127.0.0.1:{port}", "a/b", tlsverify=str(local_ca.cert_file)).list_aliases()

        with pytest.raises(requests.exceptions.SSLError):
            await asyncio.to_thread(dxf_list)
        async with httpx.AsyncClient(verify=False) as client:
            assert (await client.get(url)).status_code == 200, "the server itself answers"
    assert curl_status == 60, "curl: peer certificate cannot be authenticated"
    assert not skopeo.ok and "x509:" in skopeo.stderr, skopeo.stderr


async def test_plain_http_gets_no_http_answer_on_a_tls_port(local_ca: LocalCa) -> None:
    cert_file, key_file = local_ca.issue("server")
    async with served(
        small_app(), tls_settings(cert_file, key_file), verify=local_ca.client_context()
    ) as port:
        async with httpx.AsyncClient() as client:
            with pytest.raises(httpx.TransportError):
                await client.get(f"http://127.0.0.1:{port}/v2/")
        async with httpx.AsyncClient(verify=local_ca.client_context()) as client:
            assert (await client.get(f"https://127.0.0.1:{port}/v2/")).status_code == 200


async def test_a_changed_certificate_serves_new_connections_and_a_broken_one_is_ignored(
    local_ca: LocalCa, caplog: pytest.LogCaptureFixture
) -> None:
    cert_file, key_file = local_ca.issue("server")
    trusted = local_ca.client_context()
    async with served(small_app(), tls_settings(cert_file, key_file), verify=trusted) as port:
        first = await peer_certificate(port, trusted)
        renewed, renewed_key = issue_certificate(local_ca.cert, local_ca.key, ("127.0.0.1",))
        await asyncio.to_thread(write_certificate, renewed, renewed_key, cert_file, key_file)

        async def serial_now() -> int | None:
            serial = (await peer_certificate(port, trusted)).serial_number
            return serial if serial != first.serial_number else None

        assert await eventually(serial_now, timeout_s=15) == renewed.serial_number

        with caplog.at_level(logging.ERROR, logger="shared.tls"):
            await asyncio.to_thread(cert_file.write_text, "not a certificate\n")
            await eventually(lambda: "not reloaded" in caplog.text, timeout_s=15)
        assert (await peer_certificate(port, trusted)).serial_number == renewed.serial_number


async def test_mutual_tls_refuses_clients_without_a_certificate_of_the_ca(
    local_ca: LocalCa, other_ca: LocalCa
) -> None:
    cert_file, key_file = local_ca.issue("server")
    client_cert, client_key = local_ca.issue("client", ("ci-client",), client=True)
    stranger_cert, stranger_key = other_ca.issue("stranger", ("ci-client",), client=True)

    def with_client_cert(cert: Path, key: Path) -> ssl.SSLContext:
        context = local_ca.client_context()
        context.load_cert_chain(cert, key)
        return context

    settings = tls_settings(cert_file, key_file, client_ca=local_ca.cert_file)
    identified = with_client_cert(client_cert, client_key)
    async with served(small_app(), settings, verify=identified) as port:
        url = f"https://127.0.0.1:{port}/v2/"
        async with httpx.AsyncClient(verify=identified) as client:
            assert (await client.get(url)).status_code == 200
        for context in (local_ca.client_context(), with_client_cert(stranger_cert, stranger_key)):
            async with httpx.AsyncClient(verify=context) as client:
                with pytest.raises(httpx.TransportError):
                    await client.get(url)


async def test_a_key_that_does_not_match_the_certificate_stops_the_start(
    local_ca: LocalCa, other_ca: LocalCa
) -> None:
    cert_file, _ = local_ca.issue("server")
    _, stranger_key = other_ca.issue("stranger")
    address = ListenAddress(host="127.0.0.1", port=free_port())
    with pytest.raises(ServerStartError, match="unusable"):
        await serve(
            small_app(),
            address,
            never_ends(),
            asyncio.Event(),
            settings=tls_settings(cert_file, stranger_key),
        )
