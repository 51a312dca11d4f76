"""Real clients against the registry served over HTTPS, verifying its certificate: skopeo,
podman, python-dxf; and the certificate reloaded on SIGHUP."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import signal
import tempfile
from pathlib import Path

import dxf
import pytest
import requests

from shared.tls import issue_certificate, write_certificate
from tests.e2e.helpers import TAG, assert_same_content, credentials, image_layout
from tests.fixtures.live_registry import LiveRegistry
from tests.support.skopeo import run_skopeo
from tests.support.waiting import eventually
from tests.tls.conftest import LocalCa, peer_certificate

pytestmark = pytest.mark.e2e


def reference(registry: LiveRegistry, repository: str, tag: str = TAG) -> str:
    return f"{registry.host}/{repository}:{tag}"


async def test_skopeo_pushes_and_pulls_with_verification(
    tls_registry: LiveRegistry, local_ca: LocalCa, tmp_path: Path
) -> None:
    owner = await tls_registry.user()
    layout, top = await image_layout(tmp_path / "source")
    destination = f"docker://{reference(tls_registry, f'{owner.username}/app')}"
    cert_dir = str(local_ca.folder)

    pushed = await run_skopeo(
        "copy",
        "--dest-cert-dir",
        cert_dir,
        f"--dest-creds={credentials(owner)}",
        f"oci:{layout.root}:{TAG}",
        destination,
    )
    pulled = await run_skopeo(
        "copy",
        "--src-cert-dir",
        cert_dir,
        f"--src-creds={credentials(owner)}",
        destination,
        f"oci:{tmp_path / 'pulled'}:{TAG}",
    )
    untrusting = await run_skopeo("inspect", f"--creds={credentials(owner)}", destination)

    assert pushed.ok, pushed.stderr
    assert pulled.ok, pulled.stderr
    await assert_same_content(tmp_path / "pulled", layout, top)
    assert not untrusting.ok and "x509" in untrusting.stderr, "without the CA the certificate is refused"


async def podman(root: Path, *args: str) -> tuple[int, str]:
    """Run podman with its own storage below root (no state shared with the host or other tests)."""
    process = await asyncio.create_subprocess_exec(
        "podman",
        "--root",
        str(root / "storage"),
        "--runroot",
        str(root / "run"),
        "--storage-driver",
        "vfs",
        "--cgroup-manager",
        "cgroupfs",
        "--events-backend",
        "file",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(300):
            output, _ = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


@pytest.mark.skipif(shutil.which("podman") is None, reason="podman is installed by scripts/test")
async def test_podman_pulls_and_pushes_with_verification(
    tls_registry: LiveRegistry, local_ca: LocalCa, tmp_path: Path
) -> None:
    owner = await tls_registry.user()
    layout, _ = await image_layout(tmp_path / "source")
    source = reference(tls_registry, f"{owner.username}/app")
    copy = reference(tls_registry, f"{owner.username}/copy")
    cert_dir = str(local_ca.folder)
    (
        await run_skopeo(
            "copy",
            "--dest-cert-dir",
            cert_dir,
            f"--dest-creds={credentials(owner)}",
            f"oci:{layout.root}:{TAG}",
            f"docker://{source}",
        )
    ).check()
    auth = ("--cert-dir", cert_dir, "--creds", credentials(owner))

    # podman refuses a run root path longer than 50 characters: below /tmp, not pytest's tmp_path.
    root = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="qs-podman-"))
    try:
        pulled = await podman(root, "pull", *auth, source)
        pushed = await podman(root, "push", *auth, source, f"docker://{copy}")
        untrusting = await podman(root, "pull", "--creds", credentials(owner), source)
    finally:
        await asyncio.to_thread(shutil.rmtree, root, ignore_errors=True)

    assert pulled[0] == 0, pulled[1]
    assert pushed[0] == 0, pushed[1]
    inspected = await run_skopeo(
        "inspect", "--cert-dir", cert_dir, f"--creds={credentials(owner)}", f"docker://{copy}"
    )
    assert inspected.ok, inspected.stderr
    assert untrusting[0] != 0 and "x509" in untrusting[1]


def dxf_client(
    registry: LiveRegistry, repository: str, username: str, password: str, ca_file: Path
) -> dxf.DXF:
    def authenticate(client: dxf.DXFBase, response: requests.Response) -> None:
        client.authenticate(username, password, response=response)

    return dxf.DXF(registry.host, repository, auth=authenticate, tlsverify=str(ca_file))


async def test_python_dxf_pushes_and_pulls_over_https(
    tls_registry: LiveRegistry, local_ca: LocalCa, tmp_path: Path
) -> None:
    owner = await tls_registry.user()
    blob_file = tmp_path / "blob"
    content = os.urandom(300_000)
    blob_file.write_bytes(content)

    def round_trip() -> tuple[str, bytes, list[str]]:
        client = dxf_client(
            tls_registry, f"{owner.username}/dxf", owner.username, owner.password, local_ca.cert_file
        )
        digest = client.push_blob(str(blob_file))
        client.set_alias("v1", digest)
        chunks = client.pull_blob(digest)
        assert not isinstance(chunks, tuple)  # a (chunks, size) pair only with size=True
        return digest, b"".join(chunks), list(client.list_aliases())

    digest, pulled, aliases = await asyncio.to_thread(round_trip)
    assert digest == f"sha256:{hashlib.sha256(content).hexdigest()}"
    assert pulled == content
    assert aliases == ["v1"]


async def test_sighup_reloads_the_certificate_for_new_connections(
    tls_registry: LiveRegistry, local_ca: LocalCa
) -> None:
    trusted = local_ca.client_context()
    before = await peer_certificate(tls_registry.port, trusted)
    renewed, renewed_key = issue_certificate(local_ca.cert, local_ca.key, ("127.0.0.1", "localhost", "::1"))
    cert_file, key_file = local_ca.folder.parent / "registry.pem", local_ca.folder.parent / "registry.key"
    await asyncio.to_thread(write_certificate, renewed, renewed_key, cert_file, key_file)
    os.kill(tls_registry.server.pid, signal.SIGHUP)

    async def serial_now() -> int | None:
        serial = (await peer_certificate(tls_registry.port, trusted)).serial_number
        return serial if serial != before.serial_number else None

    assert await eventually(serial_now, timeout_s=15) == renewed.serial_number
    assert not tls_registry.server.exited
