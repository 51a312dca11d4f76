"""A local CA and certificates issued by it, and the registry served over HTTPS with them."""

from __future__ import annotations

import asyncio
import datetime
import ssl
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from shared.tls import create_ca, issue_certificate, write_certificate
from tests.fixtures.live_registry import REPOSITORY_ROOT, LiveRegistry, server_environment, serving_registry
from tests.support.process import ServerProcess, ServerStartError, free_port
from tests.support.waiting import eventually

LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass
class LocalCa:
    """A CA in its own folder (ca.crt: what skopeo's and podman's --cert-dir read)."""

    folder: Path
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_file(self) -> Path:
        return self.folder / "ca.crt"

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.cert_file)

    def issue(
        self, name: str, hosts: tuple[str, ...] = LOOPBACK, *, expired: bool = False, client: bool = False
    ) -> tuple[Path, Path]:
        """A certificate for hosts (already expired when asked) in files name.pem and name.key."""
        now = datetime.datetime.now(datetime.UTC)
        window = (
            (now - datetime.timedelta(days=30), now - datetime.timedelta(days=1)) if expired else (None, None)
        )
        cert, key = issue_certificate(
            self.cert, self.key, hosts, not_before=window[0], not_after=window[1], client=client
        )
        cert_file, key_file = self.folder.parent / f"{name}.pem", self.folder.parent / f"{name}.key"
        write_certificate(cert, key, cert_file, key_file)
        return cert_file, key_file


def make_ca(folder: Path) -> LocalCa:
    folder.mkdir(parents=True)
    cert, key = create_ca("Quayside test CA")
    # The key outside the folder: skopeo and podman read any key in --cert-dir as a client key.
    write_certificate(cert, key, folder / "ca.crt", folder.parent / "ca.key")
    return LocalCa(folder, cert, key)


@pytest.fixture
def local_ca(tmp_path: Path) -> LocalCa:
    return make_ca(tmp_path / "ca" / "certs")


@pytest.fixture
def other_ca(tmp_path: Path) -> LocalCa:
    """A CA nobody trusts."""
    return make_ca(tmp_path / "other-ca" / "certs")


@pytest.fixture
async def tls_registry(database_url: str, tmp_path: Path, local_ca: LocalCa) -> AsyncIterator[LiveRegistry]:
    """`python -m services.registry` serving HTTPS with a certificate of local_ca for loopback."""
    cert_file, key_file = local_ca.issue("registry")
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    env = server_environment(
        database_url,
        tmp_path / "registry-storage",
        port,
        {
            "QUAYSIDE_TLS_CERT_FILE": str(cert_file),
            "QUAYSIDE_TLS_KEY_FILE": str(key_file),
            # Reloaded on SIGHUP only, within any test's time.
            "QUAYSIDE_TLS_RELOAD_INTERVAL_S": "3600",
        },
    )
    server = await ServerProcess.start([sys.executable, "-m", "services.registry"], env, REPOSITORY_ROOT)
    storage_root = tmp_path / "registry-storage"
    async with serving_registry(server, url, port, database_url, storage_root) as registry:
        async with httpx.AsyncClient(verify=local_ca.client_context(), timeout=2) as client:

            async def serving() -> bool:
                if server.exited:
                    raise ServerStartError(server.output_tail())
                try:
                    return (await client.get(f"{url}/v2/")).status_code == 401
                except httpx.TransportError:
                    return False

            await eventually(serving, timeout_s=60, step_s=0.2)
        yield registry


async def peer_certificate(port: int, trusted: ssl.SSLContext) -> x509.Certificate:
    """The certificate a new TLS connection to 127.0.0.1:port is served."""
    _reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=trusted)
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        return x509.load_der_x509_certificate(ssl_object.getpeercert(binary_form=True))
    finally:
        writer.close()
