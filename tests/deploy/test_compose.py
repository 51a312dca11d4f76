"""The compose suite for real: deploy/compose.yaml (with deploy/compose.test.yaml standing in the
third-party images) started by podman-compose, every service in its own container.

Run by `bash scripts/test-compose`, which builds the images first (the local Debian base, the
Quayside image, the stand-ins); skipped unless QUAYSIDE_COMPOSE_TEST=1. The suite is started once
for the module and torn down (`down -v`, its network removed) however the tests end; each test works
in accounts and repositories of its own.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.helpers import TAG, image_layout
from tests.support.process import free_port
from tests.support.skopeo import manifest_digest, run_skopeo
from tests.support.waiting import eventually

pytestmark = [
    pytest.mark.compose,
    pytest.mark.skipif(
        os.environ.get("QUAYSIDE_COMPOSE_TEST") != "1",
        reason="the compose suite test runs with QUAYSIDE_COMPOSE_TEST=1 (bash scripts/test-compose)",
    ),
    pytest.mark.timeout(1200),
]

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILES = ("-f", "deploy/compose.yaml", "-f", "deploy/compose.test.yaml")
IMAGE = os.environ.get("QUAYSIDE_IMAGE", "localhost/quayside:latest")
# Every long-running service has a health check; `migrate` is a one-shot.
SERVICES = (
    "postgres",
    "rabbitmq",
    "s3-us",
    "s3-eu",
    "registry-us",
    "registry-eu",
    "mirror",
    "replication",
    "gc",
    "quota",
    "gateway",
)
HEALTHY_TIMEOUT_S = 600.0
SECRETS = ("POSTGRES_PASSWORD", "RABBITMQ_PASSWORD", "QUAYSIDE_TOKEN_SECRET", "S3_SECRET_KEY")


@dataclass(frozen=True)
class Command:
    returncode: int
    stdout: str
    stderr: str

    def check(self) -> Command:
        assert self.returncode == 0, f"exit {self.returncode}:\n{self.stdout}\n{self.stderr}"
        return self


async def _run(*args: str, env: dict[str, str] | None = None, timeout_s: float = 600.0) -> Command:
    process = await asyncio.create_subprocess_exec(
        *args,
        cwd=REPOSITORY_ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(timeout_s):
        stdout, stderr = await process.communicate()
    assert process.returncode is not None
    return Command(process.returncode, stdout.decode(errors="replace"), stderr.decode(errors="replace"))


@dataclass(frozen=True)
class Suite:
    project: str
    port: int
    env: dict[str, str]

    @property
    def host(self) -> str:
        """The gateway as image references name it (the suite's only published port)."""
        return f"localhost:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def container(self, service: str) -> str:
        return f"{self.project}_{service}_1"

    async def compose(self, *args: str) -> Command:
        return await _run("podman-compose", "-p", self.project, *COMPOSE_FILES, *args, env=self.env)

    async def quayside(self, *args: str) -> Command:
        """The quayside command inside the us registry's container (its database settings)."""
        return (await _run("podman", "exec", self.container("registry-us"), "quayside", *args)).check()

    async def healthy(self, service: str) -> bool:
        """Whether the service's health check passes now (podman runs none by itself without systemd)."""
        return (await _run("podman", "healthcheck", "run", self.container(service))).returncode == 0

    async def sql(self, query: str) -> str:
        result = await _run(
            "podman",
            "exec",
            self.container("postgres"),
            "psql",
            "-U",
            "quayside",
            "-d",
            "quayside",
            "-tAc",
            query,
        )
        return result.check().stdout.strip()


def _suite_environment(workdir: Path, port: int) -> dict[str, str]:
    """Fresh secrets for every variable compose requires, an identities file for both S3 servers."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("QUAYSIDE_")}
    env.update({name: secrets.token_hex(20) for name in SECRETS})
    env.update(S3_ACCESS_KEY="quayside-test", GATEWAY_PORT=str(port), QUAYSIDE_IMAGE=IMAGE)
    # Not the default subnet: a suite someone runs by hand on this machine keeps its own.
    env["QUAYSIDE_SUBNET"] = "10.89.213.0/24"
    identities = workdir / "s3-identities.json"
    identities.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "quayside",
                        "credentials": [
                            {"accessKey": env["S3_ACCESS_KEY"], "secretKey": env["S3_SECRET_KEY"]}
                        ],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    env["S3_IDENTITIES_FILE"] = str(identities)
    return env


async def _all_healthy(suite: Suite) -> bool:
    migrate = await _run(
        "podman", "inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", suite.container("migrate")
    )
    if migrate.stdout.strip() != "exited 0":
        return False
    checks = await asyncio.gather(*(suite.healthy(service) for service in SERVICES))
    return all(checks)


async def _tear_down(suite: Suite) -> None:
    down = await suite.compose("down", "-v")
    if down.returncode != 0:
        print(f"podman-compose down failed:\n{down.stderr[-2000:]}")
    await _run("podman", "network", "rm", "--force", f"{suite.project}_default")


@pytest.fixture(scope="module")
async def suite(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Suite]:
    """The whole suite, up and healthy (every health check passing, the migrate step exited 0)."""
    project = f"qstest{uuid.uuid4().hex[:6]}"
    port = free_port()
    suite = Suite(project, port, _suite_environment(tmp_path_factory.mktemp("compose"), port))
    started = time.monotonic()
    try:
        (await suite.compose("up", "-d")).check()
        await eventually(lambda: _all_healthy(suite), timeout_s=HEALTHY_TIMEOUT_S, step_s=2.0)
        print(f"\ncompose suite up and healthy in {time.monotonic() - started:.0f} s")
        yield suite
    finally:
        stopping = time.monotonic()
        await _tear_down(suite)
        print(f"\ncompose suite down in {time.monotonic() - stopping:.0f} s")


@dataclass(frozen=True)
class Account:
    username: str
    password: str

    @property
    def creds(self) -> str:
        return f"--creds={self.username}:{self.password}"


async def _organization(suite: Suite) -> tuple[Account, str]:
    """A new superuser and an organization it owns, made with the quayside command in a container."""
    account = Account(f"admin{uuid.uuid4().hex[:8]}", secrets.token_hex(12))
    org = f"org{uuid.uuid4().hex[:8]}"
    await suite.quayside("user", "create", account.username, "--password", account.password, "--superuser")
    await suite.quayside("org", "create", org, "--owner", account.username)
    return account, org


async def _push(suite: Suite, tmp_path: Path, account: Account, repository: str) -> tuple[str, list[str]]:
    """Push a random image with skopeo through the gateway; its manifest digest and blob digests."""
    layout, top = await image_layout(tmp_path / "image")
    (
        await run_skopeo(
            "copy",
            "--dest-tls-verify=false",
            f"--dest-creds={account.username}:{account.password}",
            f"oci:{layout.root}:{TAG}",
            f"docker://{suite.host}/{repository}:latest",
        )
    ).check()
    manifest = json.loads(layout.read_blob(top.digest))
    blobs = [manifest["config"]["digest"], *(layer["digest"] for layer in manifest["layers"])]
    return top.digest, blobs


async def test_compose_refuses_to_start_without_each_secret_naming_it(tmp_path: Path) -> None:
    for missing in (*SECRETS, "S3_IDENTITIES_FILE"):
        env = _suite_environment(tmp_path, free_port())
        del env[missing]
        project = f"qsnosecret{uuid.uuid4().hex[:6]}"
        up = await _run("podman-compose", "-p", project, *COMPOSE_FILES, "up", "-d", env=env)
        created = await _run(
            "podman", "ps", "-a", "-q", "--filter", f"label=io.podman.compose.project={project}"
        )
        assert up.returncode != 0
        assert f"required variable {missing} is missing a value" in up.stderr
        assert created.check().stdout.strip() == ""


async def test_push_and_pull_through_the_gateway_give_identical_digests(suite: Suite, tmp_path: Path) -> None:
    account, org = await _organization(suite)
    pushed, _ = await _push(suite, tmp_path, account, f"{org}/app")
    reference = f"docker://{suite.host}/{org}/app:latest"
    assert await manifest_digest(reference, account.creds) == pushed
    (
        await run_skopeo(
            "copy",
            "--src-tls-verify=false",
            account.creds.replace("--creds", "--src-creds"),
            reference,
            f"oci:{tmp_path / 'pulled'}:latest",
        )
    ).check()
    index = json.loads((tmp_path / "pulled" / "index.json").read_text())
    assert [entry["digest"] for entry in index["manifests"]] == [pushed]
    # Small S3 volumes: the few MB pushed take megabytes on disk, not gigabytes.
    for region in ("us", "eu"):
        used = await _run("podman", "exec", suite.container(f"s3-{region}"), "du", "-sm", "/data")
        megabytes = int(used.check().stdout.split()[0])
        print(f"\ns3-{region} data on disk: {megabytes} MB")
        assert megabytes < 512


async def test_a_push_crosses_rabbitmq_to_quota_and_replication(suite: Suite, tmp_path: Path) -> None:
    account, org = await _organization(suite)
    _, blobs = await _push(suite, tmp_path, account, f"{org}/app")
    # manifest.pushed: registry outbox -> RabbitMQ -> the quota service's queue -> usage.
    await _quota_counts(suite, account, org, blobs)

    async def replicated() -> bool:
        placed = await suite.sql(
            "SELECT count(*) FROM blob_placement WHERE location = 'eu' AND digest IN ("
            + ", ".join(f"'{d}'" for d in blobs)
            + ")"
        )
        return int(placed) == len(blobs)

    # blob.pushed: registry-us stored each blob in us; the replication service copied it to eu.
    await eventually(replicated, timeout_s=120, step_s=1.0)


async def test_the_mirror_api_is_reached_through_the_gateway(suite: Suite, tmp_path: Path) -> None:
    account, org = await _organization(suite)
    await _push(suite, tmp_path, account, f"{org}/app")
    async with httpx.AsyncClient(base_url=suite.url, auth=(account.username, account.password)) as client:
        mirror = await client.get(f"/api/v1/repository/{org}/app/mirror")
        repository = await client.get(f"/api/v1/repository/{org}/app")
    # The mirror service answers its API (no mirror configured yet: Quay's 404), a region the rest.
    assert mirror.status_code == 404, mirror.text
    assert mirror.headers["quayside-service"] == "mirror"
    assert isinstance(mirror.json()["detail"], str)
    assert repository.status_code == 200, repository.text
    assert repository.headers["quayside-region"] in {"us", "eu"}


async def test_a_log_export_is_written_on_the_log_exports_volume(suite: Suite, tmp_path: Path) -> None:
    account, org = await _organization(suite)
    await _push(suite, tmp_path, account, f"{org}/app")
    async with httpx.AsyncClient(base_url=suite.url, auth=(account.username, account.password)) as client:
        # Nobody listens on the callback: the export is written first, the callback fails after.
        response = await client.post(
            f"/api/v1/organization/{org}/exportlogs", json={"callback_url": "http://127.0.0.1:9/exported"}
        )
    assert response.status_code == 200, response.text
    export_id = response.json()["export_id"]

    async def written() -> bool:
        found = await _run(
            "podman",
            "exec",
            suite.container("registry-us"),
            "grep",
            "-rl",
            export_id,
            "/var/lib/quayside/log-exports",
        )
        return found.returncode == 0

    # The image's non-root user owns the folder, a named volume shared by both registries.
    await eventually(written, timeout_s=60, step_s=1.0)


async def _queued(suite: Suite, queue: str) -> int:
    listed = await _run(
        "podman", "exec", suite.container("rabbitmq"), "rabbitmqctl", "-q", "list_queues", "name", "messages"
    )
    counts = dict(line.split() for line in listed.check().stdout.splitlines() if line.strip())
    return int(counts.get(queue, 0))


async def test_queued_events_survive_down_and_up(suite: Suite, tmp_path: Path) -> None:
    account, org = await _organization(suite)
    (await _run("podman", "stop", suite.container("quota"))).check()
    _, blobs = await _push(suite, tmp_path, account, f"{org}/app")

    async def waiting_in_rabbitmq() -> bool:
        return await _queued(suite, "quota.manifest-pushed") >= 1

    # The push's manifest.pushed left the outbox and waits in the quota service's durable queue.
    await eventually(waiting_in_rabbitmq, timeout_s=60, step_s=1.0)
    (await suite.compose("down")).check()  # the volumes stay: the broker's node keeps its data
    (await suite.compose("up", "-d")).check()
    await eventually(lambda: _all_healthy(suite), timeout_s=HEALTHY_TIMEOUT_S, step_s=2.0)
    await _quota_counts(suite, account, org, blobs)


async def _quota_counts(suite: Suite, account: Account, org: str, blobs: list[str]) -> None:
    """Wait until the quota service has counted the blobs in the repository's quota_report."""
    sizes = await suite.sql(
        "SELECT coalesce(sum(size), 0) FROM blob WHERE digest IN (" + ", ".join(f"'{d}'" for d in blobs) + ")"
    )
    async with httpx.AsyncClient(base_url=suite.url, auth=(account.username, account.password)) as client:

        async def counted() -> bool:
            view = (await client.get(f"/api/v1/repository/{org}/app")).json()
            return view["quota_report"]["quota_bytes"] == int(sizes)

        await eventually(counted, timeout_s=120, step_s=1.0)


async def _serving_region(suite: Suite) -> str | None:
    """The region whose registry answered the gateway's /v2/ just now (None: no answer)."""
    async with httpx.AsyncClient(timeout=5) as client:
        try:
            response = await client.get(f"{suite.url}/v2/")
        except httpx.TransportError:
            return None
    if response.status_code != 401:
        return None
    return response.headers.get("Quayside-Region")


async def test_the_suite_recovers_when_a_registry_restarts(suite: Suite, tmp_path: Path) -> None:
    account, org = await _organization(suite)
    pushed, _ = await _push(suite, tmp_path, account, f"{org}/app")
    reference = f"docker://{suite.host}/{org}/app:latest"
    assert await _serving_region(suite) == "us"

    (await _run("podman", "stop", suite.container("registry-us"))).check()
    stopped = time.monotonic()
    # The gateway fails over: eu serves, from the copies replication made (or from us storage).
    await eventually(lambda: _failed_over(suite), timeout_s=60, step_s=0.5)
    failed_over = time.monotonic()
    assert await manifest_digest(reference, account.creds) == pushed

    (await _run("podman", "start", suite.container("registry-us"))).check()
    restarted = time.monotonic()
    await eventually(lambda: suite.healthy("registry-us"), timeout_s=120, step_s=0.5)
    healthy = time.monotonic()
    await eventually(lambda: _back_to_us(suite), timeout_s=60, step_s=0.5)
    print(
        f"\nregistry-us stopped: eu served within {failed_over - stopped:.1f} s; started again: "
        f"healthy within {healthy - restarted:.1f} s, served within {time.monotonic() - restarted:.1f} s"
    )
    assert await manifest_digest(reference, account.creds) == pushed


async def _failed_over(suite: Suite) -> bool:
    return await _serving_region(suite) == "eu"


async def _back_to_us(suite: Suite) -> bool:
    return await _serving_region(suite) == "us"


async def test_a_service_that_cannot_reach_postgres_is_unhealthy_and_keeps_retrying(suite: Suite) -> None:
    name = f"{suite.project}_wrong-database"
    (
        await _run(
            "podman",
            "run",
            "-d",
            "--name",
            name,
            "--network",
            f"{suite.project}_default",
            "-e",
            "QUAYSIDE_DATABASE_URL=postgresql://quayside:x@no-such-postgres:5432/quayside",
            "-e",
            "QUAYSIDE_LISTEN=0.0.0.0:5003",
            "-e",
            "QUAYSIDE_STARTUP_RETRY_MAX_S=1",
            IMAGE,
            "python",
            "-m",
            "services.gc",
        )
    ).check()
    try:

        async def retried_three_times() -> bool:
            logs = await _run("podman", "logs", name)
            return (logs.stdout + logs.stderr).count("waiting for PostgreSQL at no-such-postgres:5432:") >= 3

        await eventually(retried_three_times, timeout_s=120, step_s=1.0)
        health = await _run("podman", "healthcheck", "run", name)
        assert health.returncode != 0
        state = await _run("podman", "inspect", "--format", "{{.State.Running}} {{.RestartCount}}", name)
        assert state.check().stdout.split() == ["true", "0"]
    finally:
        await _run("podman", "rm", "--force", "--time", "0", name)
