"""`quayside up` runs the gateway in front of its registry: one region, "local", announced at start."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.cli.conftest import EmbeddedInstall
from tests.gateway.conftest import US_CLIENT, client_from
from tests.support.oci import push_image, random_image

ADMIN = ("admin", "embedded-gateway-admin")


@pytest.fixture
async def install() -> AsyncIterator[EmbeddedInstall]:
    # Not below tmp_path: the embedded PostgreSQL (as root, the `pgserver` user) must traverse it.
    root = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="quayside-gateway-"))
    embedded = EmbeddedInstall(root / "data")
    try:
        yield embedded
    finally:
        await embedded.close()
        await asyncio.to_thread(shutil.rmtree, root)


async def test_up_serves_the_registry_through_the_gateway(install: EmbeddedInstall) -> None:
    server = await install.start(QUAYSIDE_ADMIN_PASSWORD=ADMIN[1])
    gateway = f"http://127.0.0.1:{install.gateway_port}"
    assert f"Quayside gateway on {gateway} (region 'local': the registry above)" in server.output_tail()
    image = random_image()

    async with client_from(US_CLIENT, gateway, auth=ADMIN) as http:
        anonymous = await http.get("/v2/", auth=None)
        await push_image(http, "admin/app", image, "v1")
        pulled = await http.get(
            "/v2/admin/app/manifests/v1", headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}
        )
        status = (await http.get("/gateway/status")).json()
        # The registry sees the client's address, not the gateway's: its usage log says so.
        logs = await http.get("/api/v1/repository/admin/app/logs")
    async with httpx.AsyncClient(base_url=install.base_url, auth=ADMIN) as direct:
        direct_pull = await direct.get(
            "/v2/admin/app/manifests/v1", headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}
        )

    assert anonymous.status_code == 401
    assert f'realm="{gateway}/v2/auth"' in anonymous.headers["www-authenticate"]
    assert pulled.status_code == 200 and pulled.content == image.manifest
    assert pulled.headers["quayside-region"] == "local"
    assert direct_pull.content == image.manifest
    assert [region["name"] for region in status["regions"]] == ["local"]
    assert status["regions"][0]["healthy"] is True and status["routed"] >= 3
    assert logs.status_code == 200, logs.text
    assert {entry.get("ip") for entry in logs.json()["logs"]} == {US_CLIENT}
    assert await install.stop(server) == 0
