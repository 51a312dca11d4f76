"""`quayside quota reconcile` as a real process: drift is shown per namespace and repository and exits
2, --repair makes the figures exact (exit 0)."""

from __future__ import annotations

import asyncpg
import pytest

from services.quota.accounting import QuotaAccounting
from services.quota.reconcile import UnknownNamespaceError, reconcile
from tests.cli.helpers import clean_env, quayside
from tests.quota import store
from tests.quota.store import digest_of


async def test_reconcile_reports_drift_and_repairs_it(db_pool: asyncpg.Pool, database_url: str) -> None:
    async with db_pool.acquire() as conn:
        org = await store.namespace(conn, "audited")
        repo = await store.repository(conn, org, "app")
        _, pushed = await store.push(conn, repo, {digest_of("l1"): 1234, digest_of("l2"): 10}, "v1")
        async with conn.transaction():
            await QuotaAccounting(None)(conn, pushed)
    env = clean_env()
    args = ("quota", "reconcile", "--database-url", database_url)

    await db_pool.execute("UPDATE repository_usage SET bytes = 9 WHERE repository_id = $1", repo)
    drifted = await quayside(*args, "--namespace", "audited", env=env)
    assert drifted.returncode == 2, drifted.stderr
    assert "DRIFT" in drifted.stdout and "app" in drifted.stdout and "-1,235" in drifted.stdout

    repaired = await quayside(*args, "--repair", env=env)
    assert repaired.returncode == 0 and "repaired" in repaired.stdout, repaired.stdout + repaired.stderr
    assert "1 namespace(s) recounted: 0 exact, 1 drifted" in repaired.stdout
    assert await db_pool.fetchval("SELECT bytes FROM repository_usage WHERE repository_id = $1", repo) == 1244
    assert [entry.result.drifted for entry in await reconcile(db_pool)] == [False]
    with pytest.raises(UnknownNamespaceError):
        await reconcile(db_pool, namespace="nobody")
