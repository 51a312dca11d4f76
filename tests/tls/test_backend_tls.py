"""TLS towards PostgreSQL, RabbitMQ and S3, with certificates verified: each client reaches its
server through a TLS-terminating proxy with a certificate of the test CA, and refuses the proxy
when it does not trust that CA."""

from __future__ import annotations

import ssl
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import pytest

from shared.config import S3Location
from shared.db import create_pool
from shared.events.bus import AmqpPublisher, PublishError
from shared.storage.base import StorageError
from shared.storage.s3 import S3Driver
from tests.support.tlsproxy import tls_proxy
from tests.tls.conftest import LocalCa


def proxy_context(ca: LocalCa) -> ssl.SSLContext:
    cert_file, key_file = ca.issue("proxy")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context


async def one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


def database_url_via(port: int, ca_file: Path, database_url: str) -> str:
    database = database_url.rsplit("/", 1)[1]
    # Direct TLS (PostgreSQL 17's sslnegotiation=direct): the proxy terminates it in front of a plain server.
    return (
        f"postgresql://postgres@127.0.0.1:{port}/{database}"
        f"?sslmode=verify-full&sslrootcert={quote(str(ca_file))}&sslnegotiation=direct"
    )


async def test_postgresql_over_verified_tls(local_ca: LocalCa, other_ca: LocalCa, database_url: str) -> None:
    async with tls_proxy(proxy_context(local_ca), "127.0.0.1", 5432) as port:
        pool = await create_pool(database_url_via(port, local_ca.cert_file, database_url), max_size=1)
        try:
            assert await pool.fetchval("SELECT 1") == 1
        finally:
            await pool.close()
        with pytest.raises(ssl.SSLCertVerificationError):
            await create_pool(database_url_via(port, other_ca.cert_file, database_url), max_size=1)


async def test_rabbitmq_over_verified_tls(
    local_ca: LocalCa, other_ca: LocalCa, amqp_url: str, events_exchange: str
) -> None:
    broker = amqp_url.split("@", 1)[1].split("/", 1)[0]
    host, _, broker_port = broker.partition(":")

    def amqps_url(port: int, ca: LocalCa) -> str:
        return f"amqps://guest:guest@127.0.0.1:{port}/?cafile={quote(str(ca.cert_file))}"

    async with tls_proxy(proxy_context(local_ca), host, int(broker_port or 5672)) as port:
        trusting = AmqpPublisher(amqps_url(port, local_ca), events_exchange)
        untrusting = AmqpPublisher(amqps_url(port, other_ca), events_exchange, timeout_s=5)
        try:
            await trusting.publish("test.tls", b"{}", uuid.uuid4().hex)
            with pytest.raises(PublishError):
                await untrusting.publish("test.tls", b"{}", uuid.uuid4().hex)
        finally:
            await trusting.close()
            await untrusting.close()


async def test_s3_over_verified_tls(local_ca: LocalCa, other_ca: LocalCa, s3_location: S3Location) -> None:
    assert s3_location.endpoint_url is not None
    host, _, s3_port = s3_location.endpoint_url.removeprefix("http://").partition(":")
    async with tls_proxy(proxy_context(local_ca), host, int(s3_port)) as port:
        over_tls = s3_location.model_copy(
            update={"endpoint_url": f"https://127.0.0.1:{port}", "ca_bundle": str(local_ca.cert_file)}
        )
        driver = await S3Driver.open(over_tls)
        try:
            assert await driver.put("tls/probe", one_chunk(b"over tls")) == 8
            assert await driver.stat("tls/probe") == 8
        finally:
            await driver.close()
        with pytest.raises(StorageError, match=r"(?i)certificate verify failed"):
            await S3Driver.open(over_tls.model_copy(update={"ca_bundle": str(other_ca.cert_file)}))
