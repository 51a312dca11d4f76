"""How a service process starts when what it needs is not there yet (shared/service_main.py): it
refuses a default token secret, and it waits for PostgreSQL and the schema, saying why, answering 503
meanwhile, instead of exiting in a loop. Real processes, a real PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.fixtures.live_registry import REPOSITORY_ROOT
from tests.fixtures.postgres import _admin, _dsn_for, _mark_owned, drop_database
from tests.support.process import ServerProcess, free_port
from tests.support.waiting import eventually

START_TIMEOUT_S = 60.0


def _environment(**variables: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("QUAYSIDE_")}
    env.update(PYTHONUNBUFFERED="1", QUAYSIDE_STARTUP_RETRY_MAX_S="0.5", **variables)
    return env


async def _exit_status(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *args,
        env=env,
        cwd=REPOSITORY_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), START_TIMEOUT_S)
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


async def _health(url: str) -> httpx.Response | None:
    async with httpx.AsyncClient(timeout=2.0) as client:
        try:
            return await client.get(url)
        except httpx.TransportError:
            return None


def _count(server: ServerProcess, text: str) -> int:
    return server.output_tail().count(text)


@pytest.fixture
async def empty_database() -> AsyncIterator[str]:
    """A database with no tables at all (not a copy of the migrated template); dropped after."""
    name = f"qs_empty_{uuid.uuid4().hex[:12]}"
    await _admin(f'CREATE DATABASE "{name}"')
    await _mark_owned(name)
    try:
        yield _dsn_for(name)
    finally:
        await drop_database(name)


@pytest.mark.parametrize("secret", [None, "change-me", "short"])
async def test_registry_refuses_a_missing_or_default_token_secret(
    database_url: str, secret: str | None
) -> None:
    variables = {"QUAYSIDE_DATABASE_URL": database_url, "QUAYSIDE_LISTEN": f"127.0.0.1:{free_port()}"}
    if secret is not None:
        variables["QUAYSIDE_TOKEN_SECRET"] = secret
    status, output = await _exit_status(
        [sys.executable, "-m", "services.registry"], _environment(**variables)
    )
    assert status == 1
    assert "QUAYSIDE_TOKEN_SECRET must be set" in output


async def test_a_service_without_postgres_answers_503_and_keeps_retrying_with_the_reason() -> None:
    closed = free_port()
    listen = f"127.0.0.1:{free_port()}"
    env = _environment(
        QUAYSIDE_DATABASE_URL=f"postgresql://quayside:pw-not-logged-7f3a@127.0.0.1:{closed}/quayside",
        QUAYSIDE_LISTEN=listen,
    )
    server = await ServerProcess.start([sys.executable, "-m", "services.gc"], env, REPOSITORY_ROOT)
    try:
        waiting = f"waiting for PostgreSQL at 127.0.0.1:{closed}:"
        # Three attempts, each logged with its reason, and the process still there.
        await eventually(lambda: _count(server, waiting) >= 3, timeout_s=START_TIMEOUT_S)
        assert not server.exited
        assert "pw-not-logged-7f3a" not in server.output_tail()
        response = await eventually(lambda: _health(f"http://{listen}/health/instance"), START_TIMEOUT_S)
        assert response.status_code == 503
        assert response.json() == {
            "data": {"services": {"database": False, "schema": False}},
            "status_code": 503,
        }
        other = await _health(f"http://{listen}/api/v1/gc/status")
        assert other is not None and other.status_code == 503
        assert waiting in other.json()["detail"]
    finally:
        await server.stop()
    assert server.process.returncode == 0, server.output_tail()


async def test_a_registry_without_rabbitmq_names_the_broker(database_url: str) -> None:
    closed = free_port()
    listen = f"127.0.0.1:{free_port()}"
    env = _environment(
        QUAYSIDE_DATABASE_URL=database_url,
        QUAYSIDE_AMQP_URL=f"amqp://guest:guest@127.0.0.1:{closed}/",
        QUAYSIDE_TOKEN_SECRET=uuid.uuid4().hex,
        QUAYSIDE_LISTEN=listen,
    )
    server = await ServerProcess.start([sys.executable, "-m", "services.registry"], env, REPOSITORY_ROOT)
    try:
        await eventually(
            lambda: _count(server, f"waiting for RabbitMQ at 127.0.0.1:{closed}:") >= 2,
            timeout_s=START_TIMEOUT_S,
        )
        response = await eventually(lambda: _health(f"http://{listen}/health/instance"), START_TIMEOUT_S)
        assert response.json()["data"]["services"] == {"database": True, "broker": False, "schema": False}
        v2 = await _health(f"http://{listen}/v2/")
        assert v2 is not None and v2.status_code == 503
        assert v2.json()["errors"][0]["code"] == "UNAVAILABLE"
    finally:
        await server.stop()


async def test_a_service_waits_for_the_migrate_step_then_serves(empty_database: str) -> None:
    listen = f"127.0.0.1:{free_port()}"
    env = _environment(
        QUAYSIDE_DATABASE_URL=empty_database, QUAYSIDE_LISTEN=listen, QUAYSIDE_MIGRATIONS="wait"
    )
    server = await ServerProcess.start([sys.executable, "-m", "services.gc"], env, REPOSITORY_ROOT)
    try:
        await eventually(lambda: _count(server, "waiting for migrations:") >= 2, timeout_s=START_TIMEOUT_S)
        waiting = await _health(f"http://{listen}/health/instance")
        assert waiting is not None
        assert waiting.json()["data"]["services"] == {"database": True, "schema": False}

        status, output = await _exit_status(
            [sys.executable, "-m", "shared.db.migrate"], _environment(QUAYSIDE_DATABASE_URL=empty_database)
        )
        assert status == 0, output

        async def healthy() -> bool:
            response = await _health(f"http://{listen}/health/instance")
            return response is not None and response.status_code == 200

        await eventually(healthy, timeout_s=START_TIMEOUT_S, step_s=0.2)
    finally:
        await server.stop()


async def test_the_migrate_step_waits_for_postgres_and_stops_on_sigterm() -> None:
    closed = free_port()
    env = _environment(QUAYSIDE_DATABASE_URL=f"postgresql://postgres@127.0.0.1:{closed}/quayside")
    step = await ServerProcess.start([sys.executable, "-m", "shared.db.migrate"], env, REPOSITORY_ROOT)
    try:
        await eventually(
            lambda: _count(step, f"waiting for PostgreSQL at 127.0.0.1:{closed}:") >= 2,
            timeout_s=START_TIMEOUT_S,
        )
        assert not step.exited
    finally:
        await step.stop()
    assert step.process.returncode == 1
