"""The mirror service in tests: its app in-process, workers started on demand, and the accounts and
repositories a mirror needs."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
import httpx
from fastapi import FastAPI

from services.mirror.app import create_app
from services.mirror.worker import run_mirror_worker
from shared.auth.accounts import create_organization, create_robot, create_user
from shared.config import Settings
from tests.fixtures.registry import Account
from tests.support.waiting import eventually

TOKEN_SECRET = "mirror-tests-token-secret-0123456789abcdef"
FAR_FUTURE = "2999-01-01T00:00:00Z"
LONG_AGO = "2020-01-01T00:00:00Z"
T = TypeVar("T")


def mirror_settings(database_url: str, registry_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "registry_url": registry_url,
        "token_secret": TOKEN_SECRET,
        "repo_mirror_interval_s": 0.2,
        "mirror_lease_s": 10.0,
        "mirror_retry_delay_s": 3600.0,
        "mirror_workers": 2,
        "mirror_upstream_timeout_s": 10.0,
        **overrides,
    }
    return Settings(**values)


@dataclass
class Scenario:
    """An organization with its owner, a robot, and an empty repository to mirror into."""

    owner: Account
    organization: str
    robot: Account
    repository: str
    repository_id: int


def mirror_body(
    reference: str,
    robot: str,
    patterns: list[str] | None = None,
    *,
    interval: int = 86400,
    start: str = FAR_FUTURE,
    credentials: tuple[str, str] | None = None,
    verify_tls: bool = False,
) -> dict[str, Any]:
    """A POST body for .../mirror with Quay's fields."""
    body: dict[str, Any] = {
        "external_reference": reference,
        "sync_interval": interval,
        "sync_start_date": start,
        "robot_username": robot,
        "root_rule": {"rule_kind": "tag_glob_csv", "rule_value": patterns or ["*"]},
        "external_registry_config": {"verify_tls": verify_tls},
    }
    if credentials is not None:
        body["external_registry_username"], body["external_registry_password"] = credentials
    return body


@dataclass
class MirrorService:
    app: FastAPI
    settings: Settings
    pool: asyncpg.Pool

    def client(self, account: Account | None = None) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app),
            base_url="http://mirror.test/api/v1",
            auth=account.auth if account else None,
        )

    @staticmethod
    def path(repository: str, action: str = "") -> str:
        return f"/repository/{repository}/mirror{action}"

    async def scenario(self, name: str = "app") -> Scenario:
        owner = Account(f"owner{uuid.uuid4().hex[:8]}", uuid.uuid4().hex)
        organization = f"org{uuid.uuid4().hex[:8]}"
        async with self.pool.acquire() as conn:
            await create_user(conn, owner.username, owner.password)
            namespace_id = await create_organization(conn, organization, owner.username)
            robot = await create_robot(conn, organization, "mirror")
            repository_id = await conn.fetchval(
                "INSERT INTO repository (namespace_id, name) VALUES ($1, $2) RETURNING id", namespace_id, name
            )
        return Scenario(
            owner=owner,
            organization=organization,
            robot=Account(robot.username, robot.token),
            repository=f"{organization}/{name}",
            repository_id=repository_id,
        )

    async def another_repository(self, scenario: Scenario, name: str) -> Scenario:
        """An empty repository beside the scenario's, in the same organization."""
        repository_id = await self.pool.fetchval(
            "INSERT INTO repository (namespace_id, name)"
            " SELECT namespace_id, $2 FROM repository WHERE id = $1 RETURNING id",
            scenario.repository_id,
            name,
        )
        return dataclasses.replace(
            scenario, repository=f"{scenario.organization}/{name}", repository_id=repository_id
        )

    async def robot_id(self, scenario: Scenario) -> int:
        namespace, _, shortname = scenario.robot.username.partition("+")
        robot_id: int = await self.pool.fetchval(
            "SELECT r.id FROM robot r JOIN namespace n ON n.id = r.namespace_id"
            " WHERE n.name = $1 AND r.shortname = $2",
            namespace,
            shortname,
        )
        return robot_id

    async def create(self, scenario: Scenario, body: dict[str, Any]) -> None:
        async with self.client(scenario.owner) as client:
            response = await client.post(self.path(scenario.repository), json=body)
        assert response.status_code == 201, response.text

    async def view(self, scenario: Scenario) -> dict[str, Any]:
        async with self.client(scenario.owner) as client:
            response = await client.get(self.path(scenario.repository))
        assert response.status_code == 200, response.text
        view: dict[str, Any] = response.json()
        return view

    async def post(self, scenario: Scenario, action: str) -> httpx.Response:
        async with self.client(scenario.owner) as client:
            return await client.post(self.path(scenario.repository, action))

    async def put(self, scenario: Scenario, body: dict[str, Any]) -> None:
        async with self.client(scenario.owner) as client:
            response = await client.put(self.path(scenario.repository), json=body)
        assert response.status_code == 201, response.text

    async def wait_for_result(self, scenario: Scenario, timeout_s: float = 60.0) -> dict[str, Any]:
        """The view once a sync has finished since the last call that reset last_sync."""

        async def finished() -> dict[str, Any] | None:
            view = await self.view(scenario)
            done = view["last_sync"] is not None and view["sync_status"] not in ("SYNCING", "SYNC_NOW")
            return view if done else None

        return await eventually(finished, timeout_s)

    async def sync_and_wait(self, scenario: Scenario, timeout_s: float = 60.0) -> dict[str, Any]:
        """Forget the last result, ask for a sync and return the view once it finished."""
        await self.pool.execute(
            "UPDATE mirror_config SET last_sync = NULL WHERE repository_id = $1", scenario.repository_id
        )
        response = await self.post(scenario, "/sync-now")
        assert response.status_code == 204, response.text
        return await self.wait_for_result(scenario, timeout_s)

    @contextlib.asynccontextmanager
    async def workers(self, **overrides: Any) -> AsyncIterator[Settings]:
        """Mirror workers in-process (settings overridden as given) while the block runs."""
        settings = self.settings.model_copy(update=overrides)
        task = asyncio.create_task(run_mirror_worker(settings))
        try:
            yield settings
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@contextlib.asynccontextmanager
async def running_mirror_service(database_url: str, registry_url: str) -> AsyncIterator[MirrorService]:
    settings = mirror_settings(database_url, registry_url)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield MirrorService(app=app, settings=settings, pool=app.state.mirror.pool)
