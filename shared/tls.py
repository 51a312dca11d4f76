"""TLS for the servers: a reloadable server context, and a local certificate authority for `quayside up --tls`.

A server's certificate and key are read from files; a reload (SIGHUP, or a change of either file)
builds a new SSLContext that every later handshake uses, while open connections keep theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import logging
import signal
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger(__name__)

_CA_VALIDITY = datetime.timedelta(days=3650)
_SERVER_VALIDITY = datetime.timedelta(days=397)
# A server certificate this close to its end is issued anew at the next start.
_RENEW_BEFORE = datetime.timedelta(days=30)


@dataclass(frozen=True)
class TlsFiles:
    """Where a server's certificate chain and key are, and the CA client certificates must chain to."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None


def server_context(files: TlsFiles) -> ssl.SSLContext:
    """A TLS 1.2+ server context for files; blocking (reads them). ssl.SSLError or OSError when unusable."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(files.cert_file, files.key_file)
    if files.client_ca_file is not None:
        context.load_verify_locations(cafile=files.client_ca_file)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


class ReloadingServerContext:
    """The SSLContext a server listens with; every handshake switches to the latest loaded context.

    The switch happens in the SNI callback, which OpenSSL calls on every handshake, also when the
    client sends no server name (as with an IP address).
    """

    def __init__(self, files: TlsFiles) -> None:
        """Blocking (reads the files): see `load`."""
        self._files = files
        self._stamp = self._file_stamp()
        self._current = server_context(files)
        self.listening = server_context(files)
        self.listening.sni_callback = self._use_current

    @classmethod
    async def load(cls, files: TlsFiles) -> ReloadingServerContext:
        """The context for files, read off the event loop; ssl.SSLError or OSError when unusable."""
        return await asyncio.to_thread(cls, files)

    def _use_current(self, connection: ssl.SSLObject, _server_name: str | None, _context: object) -> None:
        connection.context = self._current

    def _file_stamp(self) -> tuple[int, ...]:
        paths = [self._files.cert_file, self._files.key_file, self._files.client_ca_file]
        return tuple(path.stat().st_mtime_ns for path in paths if path is not None)

    @property
    def current(self) -> ssl.SSLContext:
        return self._current

    async def reload(self) -> bool:
        """Load the files again; keep the context in use when they are unusable. Whether it loaded."""
        try:
            stamp = await asyncio.to_thread(self._file_stamp)
            self._current = await asyncio.to_thread(server_context, self._files)
        except (OSError, ssl.SSLError) as error:
            log.error("TLS certificate not reloaded, the previous one stays in use: %s", error)
            return False
        self._stamp = stamp
        log.info("TLS certificate reloaded from %s", self._files.cert_file)
        return True

    async def _changed(self) -> bool:
        try:
            return await asyncio.to_thread(self._file_stamp) != self._stamp
        except OSError:
            # A file replaced by rename is briefly missing: look again at the next round.
            return False

    async def watch(self, interval_s: float) -> None:
        """Reload on SIGHUP, and when a file changes (looked at every interval_s), until cancelled."""
        hangup = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, hangup.set)
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(hangup.wait(), interval_s)
                if hangup.is_set() or await self._changed():
                    hangup.clear()
                    await self.reload()
        finally:
            loop.remove_signal_handler(signal.SIGHUP)


def client_verification(ca_file: str | None) -> ssl.SSLContext | bool:
    """What an HTTPS client verifies servers with: the CA in ca_file, else (True) the system's CAs. Blocking."""
    return ssl.create_default_context(cafile=ca_file) if ca_file else True


@dataclass(frozen=True)
class LocalCertificates:
    """The files of a local CA and of the server certificate it issued."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path

    @classmethod
    def in_folder(cls, folder: Path) -> LocalCertificates:
        """The CA certificate alone in trust/, the folder that skopeo's and podman's --cert-dir
        take (they would read any key there as a client certificate's)."""
        return cls(
            folder / "trust" / "ca.crt", folder / "ca.key", folder / "server.crt", folder / "server.key"
        )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_private(path: Path, data: bytes) -> None:
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_bytes(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def create_ca(common_name: str = "Quayside local CA") -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed CA certificate (ten years) and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _subject_alternative_name(hosts: Sequence[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def issue_certificate(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    hosts: Sequence[str],
    *,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
    client: bool = False,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A certificate for hosts (DNS names or IP addresses) signed by the CA, and its key.

    A server certificate by default; client=True makes a client-authentication one, for mutual TLS.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    start = not_before or _now() - datetime.timedelta(minutes=5)
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(not_after or start + _SERVER_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_subject_alternative_name(hosts), critical=False)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def write_certificate(
    cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, cert_path: Path, key_path: Path
) -> None:
    """Write a certificate (PEM) and its key (PEM, readable by the owner only)."""
    _write_private(key_path, _key_pem(key))
    cert_path.write_bytes(_cert_pem(cert))


def _server_cert_fits(path: Path, ca_cert: x509.Certificate, hosts: Sequence[str]) -> bool:
    if not path.is_file():
        return False
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    return (
        cert.issuer == ca_cert.subject
        and names == _subject_alternative_name(hosts)
        and cert.not_valid_after_utc - _RENEW_BEFORE > _now()
    )


def ensure_local_certificates(folder: Path, hosts: Sequence[str]) -> LocalCertificates:
    """A local CA in folder (made on first use) and a server certificate for hosts that it issued.

    The server certificate is issued anew when the hosts changed or it nears its end. Blocking.
    """
    files = LocalCertificates.in_folder(folder)
    files.ca_cert.parent.mkdir(parents=True, exist_ok=True)
    if files.ca_cert.is_file() and files.ca_key.is_file():
        ca_cert = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
        loaded_key = serialization.load_pem_private_key(files.ca_key.read_bytes(), password=None)
        if not isinstance(loaded_key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{files.ca_key} is not the key of a Quayside local CA")
        ca_key = loaded_key
    else:
        ca_cert, ca_key = create_ca()
        write_certificate(ca_cert, ca_key, files.ca_cert, files.ca_key)
    if not _server_cert_fits(files.server_cert, ca_cert, hosts):
        cert, key = issue_certificate(ca_cert, ca_key, hosts)
        write_certificate(cert, key, files.server_cert, files.server_key)
    return files
