"""The quota service's HTTP app: Quay-shaped health answers and totals-only metrics."""

from __future__ import annotations

import asyncpg
import httpx

from services.quota.app import create_app
from shared.config import Settings
from shared.quota import lock_namespace, recheck_digests
from tests.quota import store
from tests.quota.store import digest_of


async def test_health_and_metrics(db_pool: asyncpg.Pool, database_url: str, amqp_url: str) -> None:
    async with db_pool.acquire() as conn:
        org = await store.namespace(conn, "metered")
        repo = await store.repository(conn, org, "app")
        await store.push(conn, repo, {digest_of("m"): 4321}, "v1")
        async with conn.transaction():
            await lock_namespace(conn, org)
            await recheck_digests(conn, namespace_id=org, repository_id=repo, digests=[digest_of("m")])
    app = create_app(Settings(database_url=database_url, amqp_url=amqp_url))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://quota") as client:
            instance = await client.get("/health/instance")
            assert instance.json() == {"data": {"services": {"database": True}}, "status_code": 200}
            endtoend = await client.get("/health/endtoend")
            assert endtoend.json() == {
                "data": {"services": {"database": True, "broker": True}},
                "status_code": 200,
            }
            metrics = (await client.get("/metrics")).text
    assert "quayside_quota_usage_bytes 4321.0" in metrics
    assert "quayside_quota_recheck_total" in metrics and "quayside_quota_crossings_total" in metrics
    assert "metered" not in metrics


async def test_endtoend_answers_503_when_the_broker_is_down(database_url: str) -> None:
    app = create_app(
        Settings(
            database_url=database_url, amqp_url="amqp://guest:guest@127.0.0.1:9/", health_check_timeout_s=2
        )
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://quota") as client:
            answer = await client.get("/health/endtoend")
    assert answer.status_code == 503
    assert answer.json()["data"]["services"] == {"database": True, "broker": False}
