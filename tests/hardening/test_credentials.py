"""Credential checks that neither stall nor leak: single-flight verification with refresh ahead,
failed-login lockouts shared by every process, their protocol-shaped answers, and timing equality."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY

from services.registry.credentials_cache import CredentialsCache
from services.registry.v2.pull_permissions import PullPermissions
from shared.auth.identity import Identity
from tests.fixtures.registry import Account, Registry, registry_settings
from tests.support.clock import FakeClock
from tests.support.oci import push_image, random_image
from tests.support.registry_app import running_registry
from tests.support.waiting import wait_until

ALICE_ADDRESS = "192.0.2.10"
OTHER_ADDRESS = "198.51.100.20"


def argon2_verifications() -> float:
    return REGISTRY.get_sample_value("quayside_argon2_verifications_total") or 0.0


def client_at(registry: Registry, address: str) -> httpx.AsyncClient:
    """A client whose requests come from ``address`` (what the limiter counts by)."""
    transport = httpx.ASGITransport(app=registry.app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://registry.test")


def basic(username: str, secret: str) -> dict[str, str]:
    return Account(username, secret).basic_header


@pytest.fixture
async def limited(database_url: str, tmp_path: Path) -> AsyncIterator[tuple[Registry, Registry]]:
    """Two registry apps (two processes, as far as memory goes) on one database, with low limits:
    3 failures per account and address, 6 per address, locked for 60 s."""
    settings = registry_settings(
        database_url,
        tmp_path / "storage",
        login_failures_per_account=3,
        login_failures_per_address=6,
        login_lockout_base_s=60.0,
    )
    async with running_registry(settings) as first, running_registry(settings) as second:
        yield first, second


async def fail_logins(registry: Registry, address: str, username: str, times: int) -> None:
    async with client_at(registry, address) as client:
        for attempt in range(times):
            response = await client.get("/v2/", headers=basic(username, f"wrong-{attempt}"))
            assert response.status_code == 401


# Single flight and refresh ahead


@pytest.mark.usefixtures("production_argon2")
async def test_concurrent_requests_with_one_new_credential_verify_it_once(registry: Registry) -> None:
    alice = await registry.user()
    before = argon2_verifications()
    async with client_at(registry, ALICE_ADDRESS) as client:
        responses = await asyncio.gather(*(client.get("/v2/", headers=alice.basic_header) for _ in range(12)))
    assert [response.status_code for response in responses] == [200] * 12
    assert argon2_verifications() - before == 1


@pytest.mark.usefixtures("production_argon2")
async def test_concurrent_identical_wrong_credentials_share_one_verification(registry: Registry) -> None:
    alice = await registry.user()
    before = argon2_verifications()
    async with client_at(registry, ALICE_ADDRESS) as client:
        responses = await asyncio.gather(
            *(client.get("/v2/", headers=basic(alice.username, "wrong")) for _ in range(3))
        )
    assert [response.status_code for response in responses] == [401] * 3
    assert argon2_verifications() - before == 1


class ControlledVerifier:
    """A verification that answers only when the test releases it, counting its runs."""

    def __init__(self, identity: Identity | None) -> None:
        self.identity = identity
        self.runs = 0
        self.answered = 0
        self.release = asyncio.Event()

    async def __call__(self) -> Identity | None:
        self.runs += 1
        await self.release.wait()
        self.answered += 1
        return self.identity


ALICE = Identity(kind="user", id=1, name="alice", namespace_id=1)


async def test_a_verdict_near_expiry_is_served_at_once_while_one_refresh_runs() -> None:
    clock = FakeClock()
    cache = CredentialsCache(ttl_s=30, refresh_after_s=20, clock=clock)
    verifier = ControlledVerifier(ALICE)
    verifier.release.set()
    assert await cache.verified("alice", "secret", verifier) == ALICE
    assert verifier.runs == 1

    clock.now += 25
    verifier.release.clear()
    served = await asyncio.wait_for(
        asyncio.gather(*(cache.verified("alice", "secret", verifier) for _ in range(5))), timeout=5
    )
    assert served == [ALICE] * 5
    await wait_until(lambda: verifier.runs == 2)
    verifier.release.set()
    await wait_until(lambda: verifier.answered == 2)

    # Renewed: past the first verdict's lifetime, and no new verification.
    clock.now += 10
    assert await cache.verified("alice", "secret", verifier) == ALICE
    assert verifier.runs == 2


async def test_a_refresh_that_fails_drops_the_verdict() -> None:
    clock = FakeClock()
    cache = CredentialsCache(ttl_s=30, refresh_after_s=20, clock=clock)
    granted = ControlledVerifier(ALICE)
    granted.release.set()
    await cache.verified("alice", "secret", granted)

    clock.now += 21
    revoked = ControlledVerifier(None)
    revoked.release.set()
    assert await cache.verified("alice", "secret", revoked) == ALICE  # served while the refresh runs
    await wait_until(lambda: revoked.answered == 1)
    assert await cache.verified("alice", "secret", revoked) is None
    assert revoked.runs == 2


async def test_an_expired_verdict_waits_for_one_shared_verification() -> None:
    clock = FakeClock()
    cache = CredentialsCache(ttl_s=30, refresh_after_s=20, clock=clock)
    verifier = ControlledVerifier(ALICE)
    verifier.release.set()
    await cache.verified("alice", "secret", verifier)
    clock.now += 31
    verifier.release.clear()
    waiting = asyncio.gather(*(cache.verified("alice", "secret", verifier) for _ in range(4)))
    await wait_until(lambda: verifier.runs == 2)
    verifier.release.set()
    assert await waiting == [ALICE] * 4
    assert verifier.runs == 2


async def test_forgetting_an_account_outlasts_a_verification_already_running() -> None:
    cache = CredentialsCache()
    verifier = ControlledVerifier(ALICE)
    running = asyncio.create_task(cache.verified("alice", "old-token", verifier))
    await wait_until(lambda: verifier.runs == 1)
    cache.forget("alice")
    verifier.release.set()
    await running
    revoked = ControlledVerifier(None)
    revoked.release.set()
    assert await cache.verified("alice", "old-token", revoked) is None
    assert revoked.runs == 1


async def test_a_robot_deleted_through_the_api_stops_working_at_once(registry: Registry) -> None:
    owner = await registry.user()
    org = await registry.organization(owner)
    robot = await registry.robot(org, "deployer")
    async with registry.client() as client:
        assert (await client.get("/v2/", headers=robot.basic_header)).status_code == 200
        deleted = await client.delete(f"/api/v1/organization/{org}/robots/deployer", auth=owner.auth)
        assert deleted.status_code == 204
        assert (await client.get("/v2/", headers=robot.basic_header)).status_code == 401


# Pull permissions of Basic callers


async def can_pull(registry: Registry, account: Account, repository: str) -> bool:
    async with registry.client() as client:
        response = await client.get(f"/v2/{repository}/manifests/latest", headers=account.basic_header)
    return response.status_code == 200


def permission_path(repository: str, username: str) -> str:
    return f"/api/v1/repository/{repository}/permissions/user/{username}"


async def shared_repository(registry: Registry) -> tuple[Account, Account, str]:
    """An organization's repository with an image tagged 'latest', its owner, and another user."""
    owner = await registry.user()
    alice = await registry.user()
    repository = f"{await registry.organization(owner)}/app"
    async with registry.client(owner) as client:
        await push_image(client, repository, random_image(layer_count=1), "latest")
    return owner, alice, repository


async def test_permission_changes_apply_to_basic_pulls_at_once(registry: Registry) -> None:
    owner, alice, repository = await shared_repository(registry)
    assert not await can_pull(registry, alice, repository)
    async with registry.client(owner) as client:
        granted = await client.put(permission_path(repository, alice.username), json={"role": "read"})
    assert granted.status_code == 200
    assert await can_pull(registry, alice, repository)
    async with registry.client(owner) as client:
        assert (await client.delete(permission_path(repository, alice.username))).status_code == 204
    assert not await can_pull(registry, alice, repository)


async def test_a_permission_revoked_in_another_process_stops_basic_pulls(
    registry: Registry, database_url: str, tmp_path: Path
) -> None:
    owner, alice, repository = await shared_repository(registry)
    async with registry.client(owner) as client:
        granted = await client.put(permission_path(repository, alice.username), json={"role": "read"})
    assert granted.status_code == 200
    async with running_registry(registry_settings(database_url, tmp_path / "storage")) as other:
        # Remembered far longer than the default second: only the database's notice can drop it.
        other.context.pull_permissions = PullPermissions(ttl_s=3600)
        await wait_until(lambda: other.context.manifests.listening)
        assert await can_pull(other, alice, repository)
        async with registry.client(owner) as client:
            assert (await client.delete(permission_path(repository, alice.username))).status_code == 204

        async def refused() -> bool:
            return not await can_pull(other, alice, repository)

        await wait_until(refused)


# Lockouts


async def test_failures_from_one_process_lock_the_account_out_in_another(
    limited: tuple[Registry, Registry],
) -> None:
    first, second = limited
    alice = await first.user()
    await fail_logins(first, ALICE_ADDRESS, alice.username, 3)
    async with client_at(second, ALICE_ADDRESS) as client:
        response = await client.get("/v2/", headers=alice.basic_header)
    assert response.status_code == 429  # even the right password, while locked out
    assert 0 < int(response.headers["retry-after"]) <= 60
    # From elsewhere the account still logs in: an attacker cannot lock a victim out everywhere.
    async with client_at(second, OTHER_ADDRESS) as client:
        assert (await client.get("/v2/", headers=alice.basic_header)).status_code == 200


async def test_failures_over_many_accounts_lock_the_address_out(limited: tuple[Registry, Registry]) -> None:
    first, second = limited
    bob = await first.user()
    for name in ("nobody1", "nobody2", "nobody3"):
        await fail_logins(first, ALICE_ADDRESS, name, 2)
    async with client_at(second, ALICE_ADDRESS) as client:
        assert (await client.get("/v2/", headers=bob.basic_header)).status_code == 429
    async with client_at(second, OTHER_ADDRESS) as client:
        assert (await client.get("/v2/", headers=bob.basic_header)).status_code == 200


async def test_lockouts_answer_in_each_protocols_shape(limited: tuple[Registry, Registry]) -> None:
    first, _ = limited
    alice = await first.user()
    await fail_logins(first, ALICE_ADDRESS, alice.username, 3)
    async with client_at(first, ALICE_ADDRESS) as client:
        for path in ("/v2/", "/v2/auth?service=quayside", f"/v2/{alice.username}/app/tags/list"):
            response = await client.get(path, headers=alice.basic_header)
            assert response.status_code == 429, path
            assert response.headers["retry-after"].isdigit()
            (error,) = response.json()["errors"]
            assert error["code"] == "TOOMANYREQUESTS"
            assert "too many failed logins" in error["message"]
        response = await client.get("/api/v1/user/", headers=alice.basic_header)
    assert response.status_code == 429
    assert response.headers["retry-after"].isdigit()
    body = response.json()
    assert body["status"] == 429 and body["error_type"] == "too_many_requests"
    assert isinstance(body["detail"], str) and "too many failed logins" in body["detail"]


async def test_a_lockout_ends_by_itself(database_url: str, tmp_path: Path) -> None:
    settings = registry_settings(
        database_url, tmp_path / "storage", login_failures_per_account=2, login_lockout_base_s=1.0
    )
    async with running_registry(settings) as registry:
        alice = await registry.user()
        await fail_logins(registry, ALICE_ADDRESS, alice.username, 2)
        async with client_at(registry, ALICE_ADDRESS) as client:
            assert (await client.get("/v2/", headers=alice.basic_header)).status_code == 429

            async def logged_in() -> bool:
                return (await client.get("/v2/", headers=alice.basic_header)).status_code == 200

            await wait_until(logged_in, timeout_s=10)
            # The next failure locks again, for twice as long.
            assert (await client.get("/v2/", headers=basic(alice.username, "again"))).status_code == 401
            assert (await client.get("/v2/", headers=alice.basic_header)).status_code == 429
        async with registry.context.pool.acquire() as conn:
            messages = await conn.fetch(
                "SELECT metadata->>'message' AS message FROM log_entry WHERE kind = 'login_failure' ORDER BY id"
            )
        assert [row["message"].rpartition("; ")[2] for row in messages] == [
            "invalid credentials",
            "too many failed logins, locked out for 1 s",
            "too many failed logins, locked out for 2 s",
        ]


async def test_bad_api_tokens_lock_their_address_out(limited: tuple[Registry, Registry]) -> None:
    first, second = limited
    alice = await first.user()
    async with client_at(first, ALICE_ADDRESS) as client:
        for attempt in range(6):
            response = await client.get(
                "/api/v1/user/", headers={"Authorization": f"Bearer qsat_guess{attempt}"}
            )
            assert response.status_code == 401
    async with client_at(second, ALICE_ADDRESS) as client:
        response = await client.get("/api/v1/user/", headers={"Authorization": "Bearer qsat_guess"})
        assert response.status_code == 429
        assert (await client.get("/v2/", headers=alice.basic_header)).status_code == 429


async def test_robot_token_guesses_are_limited_too(limited: tuple[Registry, Registry]) -> None:
    first, second = limited
    owner = await first.user()
    org = await first.organization(owner)
    robot = await first.robot(org, "deployer")
    await fail_logins(first, ALICE_ADDRESS, robot.username, 3)
    async with client_at(second, ALICE_ADDRESS) as client:
        assert (await client.get("/v2/auth", headers=robot.basic_header)).status_code == 429


async def test_failed_logins_and_lockouts_are_in_the_usage_logs(limited: tuple[Registry, Registry]) -> None:
    first, _ = limited
    alice = await first.user()
    await fail_logins(first, ALICE_ADDRESS, alice.username, 3)
    async with first.context.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT l.kind, l.ip, l.metadata FROM log_entry l JOIN namespace n ON n.id = l.namespace_id"
            " WHERE n.name = $1 ORDER BY l.id",
            alice.username,
        )
    assert [row["kind"] for row in rows] == ["login_failure"] * 3
    assert {row["ip"] for row in rows} == {ALICE_ADDRESS}
    assert all(row["metadata"]["username"] == alice.username for row in rows)
    assert all(row["metadata"]["kind"] == "user" and row["metadata"]["type"] == "docker" for row in rows)
    assert "locked out for 60 s" in rows[-1]["metadata"]["message"]
    assert "locked out" not in rows[0]["metadata"]["message"]


async def test_successful_logins_write_nothing_to_the_failure_counts(registry: Registry) -> None:
    alice = await registry.user()
    async with client_at(registry, ALICE_ADDRESS) as client:
        for _ in range(3):
            assert (await client.get("/v2/", headers=alice.basic_header)).status_code == 200
    async with registry.context.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM login_failure") == 0


async def test_impossible_names_and_secrets_are_refused_without_errors(registry: Registry) -> None:
    alice = await registry.user()
    async with client_at(registry, ALICE_ADDRESS) as client:
        for username, secret in (("a\0b", "x"), ("x" * 5000, "x"), (alice.username, "pass\0word")):
            response = await client.get("/v2/", headers=basic(username, secret))
            assert response.status_code == 401
            response = await client.get("/api/v1/user/", headers=basic(username, secret))
            assert response.status_code == 401


# Timing


async def refusal_s(client: httpx.AsyncClient, username: str, secret: str) -> float:
    started = time.perf_counter()
    response = await client.get("/v2/", headers=basic(username, secret))
    assert response.status_code == 401
    return time.perf_counter() - started


async def median_refusals_s(
    client: httpx.AsyncClient, unknown: list[str], known: str, pairs: int
) -> tuple[float, float]:
    """Median seconds to refuse unknown names and the known one, attempts interleaved so that the
    machine's other load weighs on both alike."""
    unknown_s: list[float] = []
    known_s: list[float] = []
    for attempt in range(pairs):
        unknown_s.append(await refusal_s(client, unknown[attempt], "guess"))
        known_s.append(await refusal_s(client, known, f"guess{attempt}"))
    return statistics.median(unknown_s), statistics.median(known_s)


@pytest.mark.usefixtures("production_argon2")
async def test_unknown_accounts_take_as_long_to_refuse_as_wrong_secrets(
    database_url: str, tmp_path: Path
) -> None:
    settings = registry_settings(
        database_url, tmp_path / "storage", login_failures_per_account=50, login_failures_per_address=50
    )
    async with running_registry(settings) as registry:
        alice = await registry.user()
        owner = await registry.user()
        org = await registry.organization(owner)
        robot = await registry.robot(org, "deployer")
        async with client_at(registry, ALICE_ADDRESS) as client:
            await refusal_s(client, "warm-up", "guess")
            users = await median_refusals_s(client, [f"nobody{i}" for i in range(6)], alice.username, 6)
            robots = await median_refusals_s(client, [f"{org}+ghost{i}" for i in range(4)], robot.username, 4)
    assert 0.5 <= users[0] / users[1] <= 2, users
    assert 0.5 <= robots[0] / robots[1] <= 2, robots
