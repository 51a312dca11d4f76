"""`python -m services.mirror` serves HTTPS too, with the shared HTTP hygiene."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx

from tests.fixtures.live_registry import REPOSITORY_ROOT, server_environment
from tests.support.process import ServerProcess, ServerStartError, free_port
from tests.support.waiting import eventually
from tests.tls.conftest import LocalCa


async def test_the_mirror_service_serves_https(database_url: str, tmp_path: Path, local_ca: LocalCa) -> None:
    cert_file, key_file = local_ca.issue("mirror")
    port = free_port()
    env = server_environment(
        database_url,
        tmp_path / "storage",
        port,
        {"QUAYSIDE_TLS_CERT_FILE": str(cert_file), "QUAYSIDE_TLS_KEY_FILE": str(key_file)},
    )
    server = await ServerProcess.start([sys.executable, "-m", "services.mirror"], env, REPOSITORY_ROOT)
    try:
        async with httpx.AsyncClient(verify=local_ca.client_context(), timeout=5) as client:

            async def health() -> httpx.Response | None:
                if server.exited:
                    raise ServerStartError(server.output_tail())
                try:
                    return await client.get(f"https://127.0.0.1:{port}/health/instance")
                except httpx.TransportError:
                    return None

            answer: httpx.Response = await eventually(health, timeout_s=60, step_s=0.2)
            api = await client.get(f"https://127.0.0.1:{port}/api/v1/repository/a/b/mirror")
        async with httpx.AsyncClient() as plain:
            try:
                await plain.get(f"http://127.0.0.1:{port}/health/instance")
                plain_answered = True
            except httpx.TransportError:
                plain_answered = False
    finally:
        await server.stop()
    assert answer.status_code == 200, answer.text
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert api.status_code == 401 and api.headers["Cache-Control"] == "no-store"
    assert not plain_answered
