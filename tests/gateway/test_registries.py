"""The gateway in front of two real registry processes (regions us and eu: one database, one
storage folder, the same token secret), with real clients: skopeo pushes and pulls through it with
token authentication, a SIGKILLed region's clients are failed over and come back, and the
registries see each client's own address (login lockouts per address)."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from shared.auth.accounts import create_user
from tests.e2e.helpers import TAG, assert_same_content, credentials, image_layout, pull, push
from tests.fixtures.live_registry import REPOSITORY_ROOT, server_environment
from tests.fixtures.registry import Account
from tests.gateway.conftest import EU_CLIENT, FAST_HEALTH, US_CLIENT, Gateway, client_from, running_gateway
from tests.support.process import ServerProcess, free_port
from tests.support.skopeo import manifest_digest
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e


@dataclass
class RegionRegistry:
    name: str
    port: int
    env: dict[str, str]
    server: ServerProcess

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def restart(self) -> None:
        """Start the region's registry again, on the same port and settings."""
        self.server = await registry_process(self.env, self.url)


async def registry_process(env: dict[str, str], url: str) -> ServerProcess:
    server = await ServerProcess.start([sys.executable, "-m", "services.registry"], env, REPOSITORY_ROOT)
    try:
        await server.wait_until_serving(f"{url}/v2/", accepted=frozenset({200, 401}))
    except BaseException:
        await server.stop()
        raise
    return server


@dataclass
class TwoRegions:
    us: RegionRegistry
    eu: RegionRegistry
    gateway: Gateway

    def reference(self, repository: str) -> str:
        return f"docker://127.0.0.1:{self.gateway.port}/{repository}:{TAG}"


async def start_region(name: str, database_url: str, storage: Path, secret: str) -> RegionRegistry:
    port = free_port()
    env = server_environment(
        database_url,
        storage,
        port,
        {
            "QUAYSIDE_TOKEN_SECRET": secret,
            "QUAYSIDE_REGION": name,
            # The gateway connects from loopback: its X-Forwarded-For is believed.
            "QUAYSIDE_HTTP_TRUSTED_PROXIES": "127.0.0.1/32",
        },
    )
    return RegionRegistry(name, port, env, await registry_process(env, f"http://127.0.0.1:{port}"))


@pytest.fixture
async def two_regions(database_url: str, tmp_path: Path) -> AsyncIterator[TwoRegions]:
    secret = uuid.uuid4().hex
    started: list[RegionRegistry] = []
    try:
        for name in ("us", "eu"):
            started.append(await start_region(name, database_url, tmp_path / "storage", secret))
        us, eu = started
        async with running_gateway({"us": us.url, "eu": eu.url}, **FAST_HEALTH) as gateway:
            yield TwoRegions(us=us, eu=eu, gateway=gateway)
    finally:
        for region in started:
            await region.server.stop()


async def new_user(database_url: str) -> Account:
    account = Account(f"user{uuid.uuid4().hex[:8]}", uuid.uuid4().hex)
    conn = await asyncpg.connect(database_url)
    try:
        await create_user(conn, account.username, account.password)
    finally:
        await conn.close()
    return account


async def test_skopeo_pushes_and_pulls_through_the_gateway_with_token_auth(
    two_regions: TwoRegions, database_url: str, tmp_path: Path
) -> None:
    owner = await new_user(database_url)
    layout, top = await image_layout(tmp_path / "source")
    reference = two_regions.reference(f"{owner.username}/app")

    await push(layout, reference, owner)

    assert await manifest_digest(reference, f"--creds={credentials(owner)}") == top.digest
    (await pull(reference, tmp_path / "pulled", owner)).check()
    await assert_same_content(tmp_path / "pulled", layout, top)
    async with client_from("127.0.0.1", two_regions.gateway.url) as http:
        challenge = await http.get("/v2/")
    # skopeo got its token from the realm the gateway rewrote: through the gateway.
    assert challenge.status_code == 401
    assert f'realm="{two_regions.gateway.url}/v2/auth"' in challenge.headers["www-authenticate"]
    us = await two_regions.gateway.region_state("us")
    assert us["routed"] > 0 and us["failovers_to"] == 0


async def test_a_killed_region_fails_its_clients_over_and_gets_them_back_when_it_returns(
    two_regions: TwoRegions, database_url: str, tmp_path: Path
) -> None:
    owner = await new_user(database_url)
    layout, top = await image_layout(tmp_path / "source")
    repository = f"{owner.username}/app"
    await push(layout, two_regions.reference(repository), owner)
    manifest_path = f"/v2/{repository}/manifests/{TAG}"
    accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}

    two_regions.us.server.process.kill()
    await two_regions.us.server.stop()
    async with client_from(US_CLIENT, two_regions.gateway.url, auth=owner.auth) as http:
        during = await http.get(manifest_path, headers=accept)
        # A real client meanwhile (skopeo comes from 127.0.0.1, in us's network).
        (await pull(two_regions.reference(repository), tmp_path / "pulled", owner)).check()
        us_while_down = await two_regions.gateway.region_state("us")

        await two_regions.us.restart()

        async def us_back() -> bool:
            return (await two_regions.gateway.region_state("us"))["healthy"] is True

        await wait_until(us_back, timeout_s=30)
        after = await http.get(manifest_path, headers=accept)

    assert during.status_code == 200 and during.headers["quayside-region"] == "eu"
    assert during.headers["docker-content-digest"] == top.digest
    await assert_same_content(tmp_path / "pulled", layout, top)
    assert us_while_down["healthy"] is False
    assert us_while_down["last_error"]
    assert after.status_code == 200 and after.headers["quayside-region"] == "us"
    failovers = await two_regions.gateway.metric(
        "quayside_gateway_failovers_total", {"home": "us", "region": "eu"}
    )
    assert failovers >= 2  # the manifest GET and skopeo's requests


async def test_registries_behind_the_gateway_lock_out_the_client_address_not_the_gateway(
    two_regions: TwoRegions, database_url: str
) -> None:
    account = await new_user(database_url)
    to_us = {"X-Quayside-Region": "us"}  # both clients on the same registry process
    async with (
        client_from(US_CLIENT, two_regions.gateway.url) as attacker,
        client_from(EU_CLIENT, two_regions.gateway.url) as owner,
    ):
        for _ in range(5):
            wrong = await attacker.get("/v2/auth", auth=(account.username, "wrong"), headers=to_us)
            assert wrong.status_code == 401
        attacker_right = await attacker.get("/v2/auth", auth=account.auth, headers=to_us)
        owner_right = await owner.get("/v2/auth", auth=account.auth, headers=to_us)

    assert attacker_right.status_code == 429, attacker_right.text
    assert "retry-after" in attacker_right.headers
    assert owner_right.status_code == 200, owner_right.text
    assert json.loads(owner_right.text)["token"]
