"""GET /health/instance, /health/endtoend and /health/warning against real services, some of them
made unreachable (a stopped TCP proxy, a closed port) or unwritable (a read-only folder)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from shared.config import FilesystemLocation, S3Location, Settings
from tests.fixtures.registry import Registry, registry_settings
from tests.fixtures.seaweed import SeaweedS3
from tests.support.process import free_port
from tests.support.registry_app import running_registry
from tests.support.tcpproxy import TcpProxy
from tests.support.waiting import eventually

TIME_LIMIT_S = 1.0
# The answer may take the time limit plus the request's own work (seconds on a loaded 2-core CI
# machine), never the dependency's timeouts (tens of seconds: botocore's, asyncpg's).
ANSWER_WITHIN_S = TIME_LIMIT_S + 5.0
RECOVERY_TIMEOUT_S = 15.0


async def health(registry: Registry, kind: str) -> tuple[httpx.Response, float]:
    """The answer of /health/<kind> (checked to carry Quay's shape) and how long it took."""
    async with registry.client() as client:
        started = time.monotonic()
        response = await client.get(f"/health/{kind}")
        elapsed = time.monotonic() - started
    body = response.json()
    assert set(body) == {"data", "status_code"}
    assert body["status_code"] == response.status_code
    return response, elapsed


def services(response: httpx.Response) -> dict[str, bool]:
    statuses: dict[str, bool] = response.json()["data"]["services"]
    return statuses


async def wait_until_healthy(registry: Registry, kind: str) -> None:
    async def healthy() -> bool:
        response, _ = await health(registry, kind)
        return response.status_code == 200

    try:
        await eventually(healthy, RECOVERY_TIMEOUT_S, step_s=0.2)
    except TimeoutError:
        response, _ = await health(registry, kind)
        raise AssertionError(f"/health/{kind} still unhealthy: {services(response)}") from None


def files_below(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()]


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder nothing can be written in: mode 0555, and immutable for root (who ignores modes)."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    immutable = os.geteuid() == 0
    if immutable:
        subprocess.run(["chattr", "+i", str(folder)], check=True)
    try:
        with pytest.raises(OSError):
            (folder / "probe").write_bytes(b"")
        yield folder
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(0o755)


def settings_with(database_url: str, tmp_path: Path, **overrides: object) -> Settings:
    """The test registry's settings with a short time limit, then the given fields replaced."""
    settings = registry_settings(
        database_url,
        tmp_path / "storage",
        health_check_timeout_s=TIME_LIMIT_S,
        log_export_dir=str(tmp_path / "log-exports"),
    )
    return settings.model_copy(update=overrides)


@pytest.mark.parametrize("kind", ["instance", "endtoend"])
async def test_a_healthy_registry_answers_200_with_every_service(registry: Registry, kind: str) -> None:
    response, _ = await health(registry, kind)

    assert response.status_code == 200
    assert response.json() == {
        "data": {
            "services": {"database": True, "storage": True, "storage:local": True, "auth": True},
            "locations": {"local": {"healthy": True, "failures": 0, "reason": None}},
        },
        "status_code": 200,
    }


async def test_end_to_end_probes_leave_nothing_in_storage(registry: Registry, tmp_path: Path) -> None:
    response, _ = await health(registry, "endtoend")

    assert response.status_code == 200
    assert files_below(tmp_path / "storage") == []


@pytest.mark.parametrize("kind", ["instance", "endtoend"])
async def test_a_configured_broker_is_checked(
    database_url: str, tmp_path: Path, amqp_url: str, kind: str
) -> None:
    async with running_registry(settings_with(database_url, tmp_path, amqp_url=amqp_url)) as registry:
        response, _ = await health(registry, kind)

    assert response.status_code == 200
    assert services(response)["broker"] is True


@pytest.mark.parametrize("kind", ["instance", "endtoend"])
async def test_a_dead_broker_answers_503_quickly(database_url: str, tmp_path: Path, kind: str) -> None:
    dead_broker = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    async with running_registry(settings_with(database_url, tmp_path, amqp_url=dead_broker)) as registry:
        response, elapsed = await health(registry, kind)

    assert response.status_code == 503
    assert services(response) == {
        "database": True,
        "storage": True,
        "storage:local": True,
        "broker": False,
        "auth": True,
    }
    assert elapsed < ANSWER_WITHIN_S


@pytest.fixture
async def s3_proxy(seaweed_s3: SeaweedS3) -> AsyncIterator[TcpProxy]:
    endpoint = urlsplit(seaweed_s3.endpoint_url)
    assert endpoint.hostname is not None and endpoint.port is not None
    async with TcpProxy(endpoint.hostname, endpoint.port) as proxy:
        yield proxy


@pytest.mark.parametrize("kind", ["instance", "endtoend"])
async def test_an_unreachable_storage_location_is_named_and_recovers(
    database_url: str, tmp_path: Path, s3_location: S3Location, s3_proxy: TcpProxy, kind: str
) -> None:
    remote = s3_location.model_copy(update={"endpoint_url": f"http://127.0.0.1:{s3_proxy.port}"})
    settings = settings_with(
        database_url,
        tmp_path,
        storage_locations={"local": FilesystemLocation(root=str(tmp_path / "storage")), "remote": remote},
        storage_preference=["local", "remote"],
    )
    async with running_registry(settings) as registry:
        assert (await health(registry, kind))[0].status_code == 200
        await s3_proxy.stop()

        response, elapsed = await health(registry, kind)

        # The instance still serves from (and pushes to) the location that answers.
        assert response.status_code == 200
        assert services(response) == {
            "database": True,
            "storage": False,
            "storage:local": True,
            "storage:remote": False,
            "auth": True,
        }
        assert elapsed < ANSWER_WITHIN_S
        await s3_proxy.start()

        async def storage_recovered() -> bool:
            return services((await health(registry, kind))[0])["storage"]

        await eventually(storage_recovered, RECOVERY_TIMEOUT_S, step_s=0.2)


async def test_a_read_only_location_answers_but_fails_end_to_end(
    database_url: str, tmp_path: Path, read_only_folder: Path
) -> None:
    settings = settings_with(
        database_url,
        tmp_path,
        storage_locations={
            "local": FilesystemLocation(root=str(tmp_path / "storage")),
            "frozen": FilesystemLocation(root=str(read_only_folder)),
        },
        storage_preference=["local", "frozen"],
    )
    async with running_registry(settings) as registry:
        instance, _ = await health(registry, "instance")
        end_to_end, _ = await health(registry, "endtoend")

    assert instance.status_code == 200
    assert end_to_end.status_code == 200  # "local" still takes writes
    assert services(end_to_end)["storage:frozen"] is False
    assert services(end_to_end)["storage:local"] is True
    assert services(end_to_end)["storage"] is False


async def test_read_only_mode_checks_end_to_end_without_writing(
    database_url: str, tmp_path: Path, read_only_folder: Path
) -> None:
    settings = settings_with(
        database_url,
        tmp_path,
        registry_state="readonly",
        storage_locations={"frozen": FilesystemLocation(root=str(read_only_folder))},
        storage_preference=["frozen"],
    )
    async with running_registry(settings) as registry:
        response, _ = await health(registry, "endtoend")

    assert response.status_code == 200
    assert services(response)["storage:frozen"] is True


@pytest.fixture
async def database_proxy(database_url: str) -> AsyncIterator[TcpProxy]:
    server = urlsplit(database_url)
    async with TcpProxy(server.hostname or "127.0.0.1", server.port or 5432) as proxy:
        yield proxy


@pytest.mark.parametrize("kind", ["instance", "endtoend"])
async def test_an_unreachable_database_answers_503_and_recovers(
    database_url: str, tmp_path: Path, database_proxy: TcpProxy, kind: str
) -> None:
    server = urlsplit(database_url)
    proxied_url = server._replace(netloc=f"{server.username}@127.0.0.1:{database_proxy.port}").geturl()
    async with running_registry(settings_with(proxied_url, tmp_path)) as registry:
        await database_proxy.stop()

        response, elapsed = await health(registry, kind)

        assert response.status_code == 503
        assert services(response) == {"database": False, "storage": True, "storage:local": True, "auth": True}
        assert elapsed < ANSWER_WITHIN_S
        await database_proxy.start()
        await wait_until_healthy(registry, kind)


async def test_warning_reports_the_free_space_of_every_local_folder(
    database_url: str, tmp_path: Path
) -> None:
    async with running_registry(settings_with(database_url, tmp_path)) as registry:
        response, _ = await health(registry, "warning")

    assert response.status_code == 200
    assert services(response) == {
        "disk_space_warning": True,
        "disk_space_warning:storage:local": True,
        "disk_space_warning:log_exports": True,
    }


async def test_warning_answers_503_below_the_threshold(database_url: str, tmp_path: Path) -> None:
    # No disk is ever entirely free: a threshold of 100% is always crossed.
    settings = settings_with(database_url, tmp_path, disk_space_warning_threshold=1.0)
    async with running_registry(settings) as registry:
        response, _ = await health(registry, "warning")

    assert response.status_code == 503
    assert services(response) == {
        "disk_space_warning": False,
        "disk_space_warning:storage:local": False,
        "disk_space_warning:log_exports": False,
    }
