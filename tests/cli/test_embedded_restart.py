"""`quayside up` after a kill -9: the next start adopts the PostgreSQL the killed one left running
and stops it on its clean exit. `quayside up --tls`: HTTPS with a local CA's certificate."""

from __future__ import annotations

import ssl
import sys

import httpx
import pytest

from tests.cli.conftest import START_TIMEOUT_S, EmbeddedInstall
from tests.cli.helpers import REPO_ROOT
from tests.support.process import ServerProcess
from tests.support.skopeo import run_skopeo
from tests.support.waiting import eventually

ADMIN = ("admin", "admin-password-for-restart")


async def version_status(install: EmbeddedInstall) -> int:
    async with httpx.AsyncClient(base_url=install.base_url, auth=ADMIN, timeout=30) as http:
        return (await http.get("/v2/")).status_code


async def test_a_start_after_kill_9_adopts_postgres_and_stops_it_on_exit(install: EmbeddedInstall) -> None:
    pid_file = install.data_dir / "postgres" / "postmaster.pid"
    killed = await install.start(QUAYSIDE_ADMIN_PASSWORD=ADMIN[1])
    killed.process.kill()
    await killed.process.wait()
    assert pid_file.exists(), "PostgreSQL outlives the killed process"
    orphan_pid = pid_file.read_text().split()[0]

    restarted = await install.start()
    assert await version_status(install) == 200
    assert pid_file.read_text().split()[0] == orphan_pid, "the running PostgreSQL is adopted, not replaced"
    assert await install.stop(restarted) == 0
    assert not pid_file.exists(), "the clean stop stops the adopted PostgreSQL"

    # And the start after that finds a stopped server, starts it and stops it again.
    third = await install.start()
    assert await version_status(install) == 200
    assert await install.stop(third) == 0
    assert not pid_file.exists()


async def test_up_with_tls_serves_https_with_a_local_ca(install: EmbeddedInstall) -> None:
    server = await ServerProcess.start(
        [sys.executable, "-m", "quayside", "up", "--tls"],
        install.env(QUAYSIDE_ADMIN_PASSWORD=ADMIN[1]),
        REPO_ROOT,
    )
    ca_file = install.data_dir / "tls" / "trust" / "ca.crt"
    https = f"https://127.0.0.1:{install.port}"
    try:

        async def serving() -> bool:
            if server.exited:
                pytest.fail(server.output_tail())
            if not ca_file.exists():
                return False
            try:
                async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=ca_file)) as http:
                    return (await http.get(f"{https}/v2/")).status_code == 401
            except httpx.TransportError:
                return False

        await eventually(serving, timeout_s=START_TIMEOUT_S, step_s=0.2)
        trusted = ssl.create_default_context(cafile=ca_file)
        async with httpx.AsyncClient(verify=trusted, auth=ADMIN) as http:
            by_name = await http.get(f"https://localhost:{install.port}/v2/")
        inspect = await run_skopeo(
            "inspect",
            "--cert-dir",
            str(ca_file.parent),
            "--creds",
            ":".join(ADMIN),
            f"docker://127.0.0.1:{install.port}/admin/none:v1",
        )
        async with httpx.AsyncClient() as http:
            with pytest.raises(httpx.TransportError):
                await http.get(f"http://127.0.0.1:{install.port}/v2/")
    finally:
        await server.stop()
    output = server.output_tail()
    assert f"Quayside registry on {https}" in output
    assert f"curl --cacert {ca_file}" in output and "--cert-dir" in output and "certs.d" in output
    assert by_name.status_code == 200
    assert "x509" not in inspect.stderr and "name unknown" in inspect.stderr.lower(), inspect.stderr
