"""Geo-replication lag: 10 concurrent pushers of 10 MiB blobs for 30 s against a registry whose
pushes land in "us" while every blob must also reach "eu" (two SeaweedFS S3 servers), with the
replication service copying.

Lag is the time from a push's commit (its 201 answer, seen by the pusher) to the "eu" placement
being recorded (blob_placement.created_at, clock_timestamp() of the recording): same host, same
clock. Also blobs/s and MiB/s replicated, over the window from the first push's answer to the last
placement. Target: lag p95 <= 2 s on loopback.

Run from the repository root: `python bench/bench_replication.py [--quick]` (needs Postgres at
QUAYSIDE_BENCH_PG, RabbitMQ at QUAYSIDE_BENCH_AMQP and the `weed` binary). Not part of the tests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika
import asyncpg
import httpx
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
# Run as a script, the repository root is not on sys.path.
sys.path.insert(0, str(REPOSITORY_ROOT))

from bench.benchdb import bench_database  # noqa: E402
from shared.auth.accounts import create_user  # noqa: E402
from shared.config import S3Location, Settings  # noqa: E402
from tests.fixtures.seaweed import SeaweedServer  # noqa: E402
from tests.support.process import ServerProcess, free_port  # noqa: E402

AMQP_URL = os.environ.get("QUAYSIDE_BENCH_AMQP", "amqp://guest:guest@127.0.0.1:5672/")
MIB = 1024 * 1024
LAG_TARGET_S = 2.0
DRAIN_TIMEOUT_S = 300.0


class Scale(BaseModel):
    pushers: int
    blob_bytes: int
    seconds: float
    # QUAYSIDE_REPLICATION_CONCURRENCY of the replication service (the service's default).
    concurrency: int = Settings.model_fields["replication_concurrency"].default


FULL = Scale(pushers=10, blob_bytes=10 * MIB, seconds=30.0)
QUICK = Scale(pushers=4, blob_bytes=10 * MIB, seconds=10.0)


class Push(BaseModel):
    digest: str
    committed_at: float  # time.time() when the pusher got the 201


class Result(BaseModel):
    pushes: int
    lag_p50_s: float
    lag_p95_s: float
    lag_max_s: float
    blobs_per_s: float
    mib_per_s: float
    # Push commit to the consumer's transaction that queued the copy (event delivery), p50 and p95.
    queued_p50_s: float
    queued_p95_s: float
    # From the replication service's quayside_replication_copy_seconds: one copy, read to record.
    copy_mean_s: float


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _environment(
    database_url: str, locations: dict[str, S3Location], exchange: str, port: int, concurrency: int
) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("QUAYSIDE_")}
    env.update(
        QUAYSIDE_DATABASE_URL=database_url,
        QUAYSIDE_STORAGE_LOCATIONS=json.dumps(
            {name: config.model_dump(mode="json") for name, config in locations.items()}
        ),
        QUAYSIDE_STORAGE_PREFERENCE="us",
        QUAYSIDE_FEATURE_STORAGE_REPLICATION="true",
        QUAYSIDE_DISTRIBUTED_STORAGE_DEFAULT_LOCATIONS="us,eu",
        QUAYSIDE_AMQP_URL=AMQP_URL,
        QUAYSIDE_EVENTS_EXCHANGE=exchange,
        QUAYSIDE_REPLICATION_QUEUE_PREFIX=exchange,
        QUAYSIDE_REPLICATION_CONCURRENCY=str(concurrency),
        QUAYSIDE_TOKEN_SECRET="bench-token-secret-0123456789abcdef",
        QUAYSIDE_LISTEN=f"127.0.0.1:{port}",
        PYTHONUNBUFFERED="1",
    )
    return env


@contextlib.asynccontextmanager
async def _process(
    module: str, env: dict[str, str], ready_url: str, accepted: frozenset[int]
) -> AsyncIterator[None]:
    server = await ServerProcess.start([sys.executable, "-m", module], env=env, cwd=REPOSITORY_ROOT)
    try:
        await server.wait_until_serving(ready_url, accepted=accepted, timeout_s=60.0)
        yield
    finally:
        await server.stop()


@contextlib.asynccontextmanager
async def _seaweed_pair(work: Path) -> AsyncIterator[dict[str, S3Location]]:
    servers = {name: SeaweedServer(work / f"seaweed-{name}") for name in ("us", "eu")}
    try:
        for server in servers.values():
            await asyncio.to_thread(server.start)
        yield {name: server.location() for name, server in servers.items()}
    finally:
        for server in servers.values():
            await asyncio.to_thread(server.stop)


async def _delete_queues(prefix: str) -> None:
    queue = f"{prefix}.blob-pushed"
    async with await aio_pika.connect(AMQP_URL) as connection:
        channel = await connection.channel()
        for name in (queue, f"{queue}.dead"):
            with contextlib.suppress(aio_pika.exceptions.ChannelClosed):
                await channel.queue_delete(name)
        with contextlib.suppress(aio_pika.exceptions.ChannelClosed):
            await channel.exchange_delete(prefix)


async def _token(client: httpx.AsyncClient, url: str, credentials: tuple[str, str], repository: str) -> str:
    scope = f"repository:{credentials[0]}/{repository}:pull,push"
    response = await client.get(f"{url}/v2/auth", params={"scope": scope}, auth=credentials)
    response.raise_for_status()
    token: str = response.json()["token"]
    return token


def _random_blob(size: int) -> tuple[bytes, str]:
    data = os.urandom(size)
    return data, f"sha256:{hashlib.sha256(data).hexdigest()}"


async def _pusher(
    client: httpx.AsyncClient, url: str, credentials: tuple[str, str], number: int, scale: Scale, until: float
) -> list[Push]:
    repository = f"pusher{number}"
    headers = {"Authorization": f"Bearer {await _token(client, url, credentials, repository)}"}
    pushes: list[Push] = []
    while time.monotonic() < until:
        data, digest = await asyncio.to_thread(_random_blob, scale.blob_bytes)
        response = await client.post(
            f"{url}/v2/{credentials[0]}/{repository}/blobs/uploads/",
            params={"digest": digest},
            content=data,
            headers={**headers, "Content-Type": "application/octet-stream"},
        )
        response.raise_for_status()
        pushes.append(Push(digest=digest, committed_at=time.time()))
    return pushes


async def _placed_at(conn: asyncpg.Connection, digests: list[str]) -> dict[str, float]:
    rows = await conn.fetch(
        "SELECT digest, extract(epoch FROM created_at)::float8 AS at FROM blob_placement"
        " WHERE location = 'eu' AND digest = ANY($1::text[])",
        digests,
    )
    return {row["digest"]: row["at"] for row in rows}


async def _queued_at(conn: asyncpg.Connection, prefix: str, digests: list[str]) -> dict[str, float]:
    """When the replication consumer handled each blob's BlobPushed (its transaction's start)."""
    rows = await conn.fetch(
        "SELECT o.payload->>'digest' AS digest, extract(epoch FROM min(p.processed_at))::float8 AS at"
        " FROM event_outbox o JOIN processed_event p ON p.event_id = o.event_id AND p.consumer = $1"
        " WHERE o.routing_key = 'blob.pushed' AND o.payload->>'digest' = ANY($2::text[])"
        " GROUP BY o.payload->>'digest'",
        f"{prefix}.blob-pushed",
        digests,
    )
    return {row["digest"]: row["at"] for row in rows}


async def measure(scale: Scale, work: Path) -> Result:
    exchange = f"bench-replication-{uuid.uuid4().hex[:8]}"
    async with bench_database() as database_url, _seaweed_pair(work) as locations:
        password = uuid.uuid4().hex
        conn = await asyncpg.connect(database_url)
        try:
            await create_user(conn, "bench", password)
            registry_port, replication_port = free_port(), free_port()
            registry_env = _environment(database_url, locations, exchange, registry_port, scale.concurrency)
            replication_env = _environment(
                database_url, locations, exchange, replication_port, scale.concurrency
            )
            url = f"http://127.0.0.1:{registry_port}"
            try:
                async with (
                    _process(
                        "services.replication",
                        replication_env,
                        f"http://127.0.0.1:{replication_port}/health/instance",
                        frozenset({200}),
                    ),
                    _process("services.registry", registry_env, f"{url}/v2/", frozenset({200, 401})),
                    httpx.AsyncClient(timeout=120.0) as client,
                ):
                    until = time.monotonic() + scale.seconds
                    batches = await asyncio.gather(
                        *(
                            _pusher(client, url, ("bench", password), n, scale, until)
                            for n in range(scale.pushers)
                        )
                    )
                    pushes = [push for batch in batches for push in batch]
                    digests = [push.digest for push in pushes]
                    deadline = time.monotonic() + DRAIN_TIMEOUT_S
                    placed = await _placed_at(conn, digests)
                    while len(placed) < len(digests) and time.monotonic() < deadline:
                        await asyncio.sleep(0.5)
                        placed = await _placed_at(conn, digests)
                    metrics = (await client.get(f"http://127.0.0.1:{replication_port}/metrics")).text
                    queued = await _queued_at(conn, exchange, digests)
            finally:
                await _delete_queues(exchange)
        finally:
            await conn.close()
    if len(placed) < len(pushes):
        raise RuntimeError(f"only {len(placed)} of {len(pushes)} blobs reached eu within {DRAIN_TIMEOUT_S} s")
    lags = [placed[push.digest] - push.committed_at for push in pushes]
    deliveries = [queued[push.digest] - push.committed_at for push in pushes if push.digest in queued]
    window = max(placed.values()) - min(push.committed_at for push in pushes)
    return Result(
        pushes=len(pushes),
        lag_p50_s=_percentile(lags, 0.5),
        lag_p95_s=_percentile(lags, 0.95),
        lag_max_s=max(lags),
        blobs_per_s=len(pushes) / window,
        mib_per_s=len(pushes) * scale.blob_bytes / MIB / window,
        queued_p50_s=_percentile(deliveries, 0.5),
        queued_p95_s=_percentile(deliveries, 0.95),
        copy_mean_s=_metric(metrics, "quayside_replication_copy_seconds_sum")
        / max(_metric(metrics, "quayside_replication_copy_seconds_count"), 1.0),
    )


def _metric(exposition: str, name: str) -> float:
    """The value of the sample ``name{location="eu"}`` in a Prometheus text exposition."""
    prefix = f'{name}{{location="eu"}} '
    for line in exposition.splitlines():
        if line.startswith(prefix):
            return float(line.removeprefix(prefix))
    raise LookupError(name)


def render(result: Result, scale: Scale) -> Table:
    table = Table(
        title=f"Replication us -> eu: {scale.pushers} pushers x {scale.blob_bytes // MIB} MiB blobs for {scale.seconds:.0f} s,"
        f" {scale.concurrency} copies at once"
        f" ({result.pushes} pushes)"
    )
    for column in ("metric", "value", "target", "met"):
        table.add_column(column, justify="right" if column == "value" else "left")
    table.add_row("lag p50 (s)", f"{result.lag_p50_s:.2f}", "", "")
    met = result.lag_p95_s <= LAG_TARGET_S
    table.add_row(
        "lag p95 (s)", f"{result.lag_p95_s:.2f}", f"<= {LAG_TARGET_S:.0f} s", "yes" if met else "NO"
    )
    table.add_row("lag max (s)", f"{result.lag_max_s:.2f}", "", "")
    table.add_row("replicated blobs/s", f"{result.blobs_per_s:.2f}", "", "")
    table.add_row("replicated MiB/s", f"{result.mib_per_s:.1f}", "", "")
    table.add_row(
        "push to copy queued p50 / p95 (s)", f"{result.queued_p50_s:.2f} / {result.queued_p95_s:.2f}", "", ""
    )
    table.add_row("mean copy time (s)", f"{result.copy_mean_s:.2f}", "", "")
    return table


async def main(scale: Scale) -> None:
    with tempfile.TemporaryDirectory(prefix="quayside-bench-replication-") as work:
        result = await measure(scale, Path(work))
    Console().print(render(result, scale))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="4 pushers for 10 s")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=FULL.concurrency,
        help="copies the replication service makes at once",
    )
    arguments = parser.parse_args()
    chosen = QUICK if arguments.quick else FULL
    asyncio.run(main(chosen.model_copy(update={"concurrency": arguments.concurrency})))
