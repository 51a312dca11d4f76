"""Read-only mode switched at run time (PUT /api/v1/superuser/registrystate, `quayside readonly`):
every registry process honours it within seconds, pulls keep working, mirror syncs wait."""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from click.testing import Result
from typer.testing import CliRunner

from quayside import cli
from services.registry.readonly import READ_ONLY_MESSAGE
from shared.readonly_state import read_registry_state
from tests.fixtures.live_registry import REPOSITORY_ROOT, LiveRegistry, server_environment, serving_registry
from tests.fixtures.registry import Account, Registry, registry_settings
from tests.fixtures.upstream import ImageFactory, Upstream
from tests.mirror.helpers import TOKEN_SECRET, MirrorService, mirror_body
from tests.support.oci import push_image, random_image
from tests.support.process import ServerProcess, free_port
from tests.support.registry_app import running_registry
from tests.support.waiting import wait_until

STATE = "/api/v1/superuser/registrystate"
SWITCH_WITHIN_S = 5.0


@pytest.fixture
async def second_registry(live_registry: LiveRegistry) -> AsyncIterator[LiveRegistry]:
    """Another registry server process on the live registry's database and storage."""
    port = free_port()
    env = server_environment(
        live_registry.database_url, live_registry.storage_root, port, {"QUAYSIDE_TOKEN_SECRET": TOKEN_SECRET}
    )
    server = await ServerProcess.start([sys.executable, "-m", "services.registry"], env, REPOSITORY_ROOT)
    url = f"http://127.0.0.1:{port}"
    database_url, storage = live_registry.database_url, live_registry.storage_root
    async with serving_registry(server, url, port, database_url, storage) as registry:
        await server.wait_until_serving(f"{url}/v2/", accepted=frozenset({200, 401}))
        yield registry


def _client(registry: LiveRegistry, account: Account) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=registry.url, auth=account.auth, timeout=10.0)


async def _push_refused(registry: LiveRegistry, account: Account, repo: str) -> bool:
    async with _client(registry, account) as client:
        response = await client.post(f"/v2/{repo}/blobs/uploads/")
    if response.status_code != 405:
        return False
    error = response.json()["errors"][0]
    return error["code"] == "DENIED" and error["message"] == READ_ONLY_MESSAGE


async def _push_accepted(registry: LiveRegistry, account: Account, repo: str) -> bool:
    async with _client(registry, account) as client:
        response = await client.post(f"/v2/{repo}/blobs/uploads/")
    return response.status_code == 202


async def test_switch_reaches_every_registry_process_pulls_work_and_off_restores_pushes(
    live_registry: LiveRegistry, second_registry: LiveRegistry
) -> None:
    admin = await live_registry.user(superuser=True)
    owner = await live_registry.user()
    repo = f"{owner.username}/app"
    image = random_image()
    async with _client(live_registry, owner) as client:
        await push_image(client, repo, image, "v1")

    async with _client(live_registry, admin) as client:
        switched = await client.put(STATE, json={"read_only": True, "reason": "storage migration"})
    assert switched.status_code == 200, switched.text
    assert switched.json()["read_only"] is True
    assert switched.json()["reason"] == "storage migration"
    assert switched.json()["changed_by"] == admin.username

    for registry in (live_registry, second_registry):
        await wait_until(functools.partial(_push_refused, registry, owner, repo), SWITCH_WITHIN_S)
        async with _client(registry, owner) as client:
            pulled = await client.get(f"/v2/{repo}/manifests/v1")
            api_write = await client.put(f"/api/v1/repository/{repo}", json={"description": "x"})
            health = await client.get("/health/endtoend")
            banner = (await client.get("/api/v1/messages")).json()["messages"][0]
        assert pulled.content == image.manifest
        assert api_write.status_code == 503
        assert api_write.json()["detail"] == READ_ONLY_MESSAGE
        assert health.status_code == 200
        assert health.headers["Quayside-Registry-State"] == "readonly"
        assert (banner["content"], banner["severity"]) == (READ_ONLY_MESSAGE, "warning")

    async with _client(second_registry, admin) as client:
        seen = await client.get(STATE)
        off = await client.put(STATE, json={"read_only": False})
    assert seen.json()["read_only"] is True
    assert off.status_code == 200
    assert off.json()["read_only"] is False
    for registry in (live_registry, second_registry):
        await wait_until(functools.partial(_push_accepted, registry, owner, repo), SWITCH_WITHIN_S)
    kinds = await live_registry.pool.fetch(
        "SELECT kind, performer_name FROM log_entry WHERE kind LIKE 'registry_read_only_%' ORDER BY id"
    )
    assert [(row["kind"], row["performer_name"]) for row in kinds] == [
        ("registry_read_only_enabled", admin.username),
        ("registry_read_only_disabled", admin.username),
    ]


async def test_a_mirror_sync_waits_while_read_only_and_runs_after(
    mirror: MirrorService,
    upstream: Upstream,
    live_registry: LiveRegistry,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    factory = await asyncio.to_thread(ImageFactory, tmp_path / "layout")
    await asyncio.to_thread(factory.tagged_image, "v1")
    digest = await upstream.push(factory.layout, "v1", "library/app")
    scenario = await mirror.scenario()
    await mirror.create(scenario, mirror_body(upstream.reference("library/app"), scenario.robot.username))
    admin = await live_registry.user(superuser=True)
    async with _client(live_registry, admin) as client:
        assert (await client.put(STATE, json={"read_only": True})).status_code == 200

    caplog.set_level(logging.INFO, logger="services.mirror.worker")
    async with mirror.workers():
        assert (await mirror.post(scenario, "/sync-now")).status_code == 204
        await wait_until(lambda: "mirror syncs wait" in caplog.text, SWITCH_WITHIN_S)
        assert (await mirror.view(scenario))["sync_status"] == "SYNC_NOW"
        async with _client(live_registry, admin) as client:
            assert (await client.put(STATE, json={"read_only": False})).status_code == 200
        view = await mirror.wait_for_result(scenario, timeout_s=30.0)

    assert view["sync_status"] == "SUCCESS", view
    tags = await mirror.pool.fetch(
        "SELECT t.name, m.digest FROM tag t JOIN manifest m ON m.id = t.manifest_id"
        " WHERE t.repository_id = $1 AND t.lifetime_end IS NULL",
        scenario.repository_id,
    )
    assert {row["name"]: row["digest"] for row in tags} == {"v1": digest}


@pytest.fixture
async def admin_and_user(registry: Registry) -> tuple[Account, Account]:
    return await registry.user(superuser=True), await registry.user()


async def test_expiry_lifts_read_only_by_itself(
    registry: Registry, admin_and_user: tuple[Account, Account]
) -> None:
    admin, owner = admin_and_user
    async with registry.client(admin) as client:
        switched = await client.put(STATE, json={"read_only": True, "expires_in": "1s"})
    assert switched.json()["expires_at"] is not None
    async with registry.client(owner) as client:
        refused = await client.post(f"/v2/{owner.username}/app/blobs/uploads/")

        async def accepted() -> bool:
            response = await client.post(f"/v2/{owner.username}/app/blobs/uploads/")
            return response.status_code == 202

        await wait_until(accepted, SWITCH_WITHIN_S)
    assert refused.status_code == 405
    async with registry.client(admin) as client:
        state = (await client.get(STATE)).json()
    assert (state["read_only"], state["expires_at"]) == (False, None)


async def test_only_superusers_see_or_switch_it_and_bad_bodies_change_nothing(
    registry: Registry, admin_and_user: tuple[Account, Account]
) -> None:
    admin, user = admin_and_user
    async with registry.client(user) as client:
        as_user = [await client.get(STATE), await client.put(STATE, json={"read_only": True})]
    async with registry.client() as client:
        anonymous = await client.put(STATE, json={"read_only": True})
    async with registry.client(admin) as client:
        bad = [
            await client.put(STATE, json={"read_only": True, "expires_in": "forever"}),
            await client.put(STATE, json={"read_only": True, "expires_in": "999999w"}),
            await client.put(STATE, json={"read_only": False, "expires_in": "1h"}),
            await client.put(STATE, json={"read_only": True, "reason": "a\x00b"}),
            await client.put(STATE, json={"read_only": "yes"}),
        ]
        state = (await client.get(STATE)).json()
    assert [response.status_code for response in as_user] == [403, 403]
    assert anonymous.status_code == 401
    assert [response.status_code for response in bad] == [400] * 5
    assert all(isinstance(response.json()["detail"], str) for response in bad)
    assert state["read_only"] is False


async def test_the_environment_default_still_forces_read_only(database_url: str, tmp_path: Path) -> None:
    settings = registry_settings(database_url, tmp_path / "storage", registry_state="readonly")
    async with running_registry(settings) as registry:
        admin, owner = await registry.user(superuser=True), await registry.user()
        async with registry.client(admin) as client:
            off = await client.put(STATE, json={"read_only": False})
        async with registry.client(owner) as client:
            push = await client.post(f"/v2/{owner.username}/app/blobs/uploads/")
    assert off.json()["read_only"] is True
    assert off.json()["forced_by_config"] is True
    assert push.status_code == 405


async def _readonly_command(database_url: str, *args: str) -> Result:
    """`quayside readonly …` in-process (in a thread: the command runs its own event loop)."""
    runner = CliRunner(env={"QUAYSIDE_DATABASE_URL": database_url})
    return await asyncio.to_thread(runner.invoke, cli.app, ["readonly", *args])


async def test_cli_switches_on_for_a_while_shows_status_and_off(database_url: str) -> None:
    on = await _readonly_command(database_url, "on", "--for", "2h", "--reason", "upgrade")
    status = await _readonly_command(database_url, "status")
    bad = await _readonly_command(database_url, "on", "--for", "soon")
    conn = await asyncpg.connect(database_url)
    try:
        unchanged = await read_registry_state(conn, forced_by_config=False)
    finally:
        await conn.close()
    off = await _readonly_command(database_url, "off")
    assert on.exit_code == 0, on.output
    assert "read-only until" in on.stdout and "upgrade" in on.stdout
    assert status.stdout == on.stdout.removeprefix("now ")
    assert bad.exit_code == 2
    assert unchanged.read_only is True and unchanged.reason == "upgrade"
    assert off.stdout.startswith("now normal")
