"""Proxy pull-through cache: pulls through a cache organization against pulling the upstream directly
and against a normal repository, and the upstream fetches of concurrent misses.

Run from the repository root: `python bench/bench_proxy.py [--quick]`. See bench/README.md for what
is measured and how. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
# Run as a script, the repository root is not on sys.path; the test support modules live there.
sys.path.insert(0, str(REPOSITORY_ROOT))

from bench.benchdb import bench_database  # noqa: E402
from shared.auth.accounts import create_organization, create_user  # noqa: E402
from tests.fixtures.upstream import ImageFactory, Upstream, running_upstream  # noqa: E402
from tests.support.process import ServerProcess, free_port  # noqa: E402
from tests.support.skopeo import run_skopeo  # noqa: E402
from tests.support.waiting import eventually  # noqa: E402

MiB = 1024 * 1024
CONCURRENT_PULLS = 20


@dataclass
class Suite:
    url: str
    host: str
    owner: tuple[str, str]
    database_url: str

    @property
    def creds(self) -> str:
        return ":".join(self.owner)


@contextlib.asynccontextmanager
async def quayside(work_dir: Path) -> AsyncIterator[Suite]:
    """The registry (two HTTP processes) with a user owning the organizations 'cache' and 'normal'."""
    async with bench_database() as database_url:
        owner = ("benchuser", uuid.uuid4().hex)
        conn = await asyncpg.connect(database_url)
        try:
            await create_user(conn, *owner)
            await create_organization(conn, "cache", owner[0])
            await create_organization(conn, "normal", owner[0])
        finally:
            await conn.close()
        port = free_port()
        env = {key: value for key, value in os.environ.items() if not key.startswith("QUAYSIDE_")}
        env.update(
            QUAYSIDE_DATABASE_URL=database_url,
            QUAYSIDE_TOKEN_SECRET=uuid.uuid4().hex,
            QUAYSIDE_LISTEN=f"127.0.0.1:{port}",
            QUAYSIDE_HTTP_PROCESSES="2",
            QUAYSIDE_STORAGE_LOCATIONS=json.dumps(
                {"local": {"driver": "filesystem", "root": str(work_dir / "storage")}}
            ),
            QUAYSIDE_STORAGE_PREFERENCE="local",
        )
        url = f"http://127.0.0.1:{port}"
        process = await ServerProcess.start([sys.executable, "-m", "services.registry"], env, REPOSITORY_ROOT)
        try:
            await process.wait_until_serving(f"{url}/v2/", accepted=frozenset({200, 401}))
            yield Suite(url, f"127.0.0.1:{port}", owner, database_url)
        finally:
            await process.stop()


async def fresh_image(
    upstream: Upstream, work_dir: Path, repository: str, layer_sizes: tuple[int, ...]
) -> Path:
    """An image of random layers pushed upstream as repository:v1; its OCI layout."""
    root = work_dir / f"layout-{repository.replace('/', '-')}"
    factory = await asyncio.to_thread(ImageFactory, root, layer_sizes[:-1])
    await asyncio.to_thread(factory.tagged_image, "v1", layer_sizes[-1])
    await upstream.push(factory.layout, "v1", repository)
    return root


async def timed_pull(source: str, destination: Path, *auth: str) -> float:
    """skopeo copy of source into an OCI layout, timed; the earlier pulls' written data is synced
    first, so that its writeback does not land in this pull's time."""
    await asyncio.to_thread(os.sync)
    started = time.perf_counter()
    result = await run_skopeo("copy", "--src-tls-verify=false", *auth, source, f"oci:{destination}:v1")
    seconds = time.perf_counter() - started
    result.check()
    return seconds


async def http_pull(suite: Suite, name: str) -> None:
    """Manifest, then every blob at once, on a client (connections) of its own; bytes verified."""
    async with httpx.AsyncClient(base_url=suite.url, auth=suite.owner, timeout=300) as client:
        manifest = await client.get(
            f"/v2/{name}/manifests/v1", headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}
        )
        manifest.raise_for_status()
        document = manifest.json()
        digests = [document["config"]["digest"], *(layer["digest"] for layer in document["layers"])]

        async def blob(digest: str) -> None:
            response = await client.get(f"/v2/{name}/blobs/{digest}")
            response.raise_for_status()
            if f"sha256:{hashlib.sha256(response.content).hexdigest()}" != digest:
                raise RuntimeError(f"blob {digest} came back with other bytes")

        await asyncio.gather(*(blob(digest) for digest in digests))


# Every blob a manifest of the cache repository references has a placement: the fill is stored.
_FILL_STORED = """
SELECT NOT EXISTS (
    SELECT 1 FROM manifest m JOIN repository r ON r.id = m.repository_id
    JOIN namespace n ON n.id = r.namespace_id JOIN manifest_blob mb ON mb.manifest_id = m.id
    WHERE n.name = 'cache' AND r.name = $1
      AND NOT EXISTS (SELECT 1 FROM blob_placement p WHERE p.digest = mb.digest))
"""
FILL_TIMEOUT_S = 120.0


async def wait_until_stored(suite: Suite, repository: str) -> None:
    """Wait until the miss pull's fills are stored (a fill may still be syncing to storage when its
    client has every byte): a cached pull is of content the cache holds, as a normal repository's
    pull is of content whose push has completed."""
    conn = await asyncpg.connect(suite.database_url)
    try:
        await eventually(functools.partial(conn.fetchval, _FILL_STORED, repository), FILL_TIMEOUT_S)
    finally:
        await conn.close()


async def miss_pull(suite: Suite, repository: str, destination: Path) -> float:
    """The miss, timed until skopeo has the image; the fills' storing that goes on after it is
    waited for untimed, so that it does not land in the next pull's time either."""
    seconds = await timed_pull(
        f"docker://{suite.host}/cache/{repository}:v1", destination, f"--src-creds={suite.creds}"
    )
    await wait_until_stored(suite, repository)
    return seconds


async def in_turn(
    number: int,
    first: tuple[list[float], Callable[[], Awaitable[float]]],
    second: tuple[list[float], Callable[[], Awaitable[float]]],
) -> None:
    """Both timed pulls, in alternating order from round to round (the machine's load drifts)."""
    pair = (first, second) if number % 2 == 0 else (second, first)
    for samples, pull in pair:
        samples.append(await pull())


async def measure(
    work_dir: Path, layer_sizes: tuple[int, ...], rounds: int
) -> list[tuple[str, str, str, str, str, str]]:
    image_bytes = sum(layer_sizes)
    async with running_upstream(work_dir / "upstream") as upstream, quayside(work_dir) as suite:
        auth = (f"--src-creds={suite.creds}",)
        async with httpx.AsyncClient(base_url=suite.url, auth=suite.owner, timeout=60) as client:
            configured = await client.post(
                "/api/v1/organization/cache/proxycache",
                json={"upstream_registry": upstream.proxy.host, "insecure": True},
            )
            configured.raise_for_status()
        direct: list[float] = []
        miss: list[float] = []
        cached: list[float] = []
        normal: list[float] = []
        for number in range(rounds):
            repository = f"bench/app{number}"
            layout = await fresh_image(upstream, work_dir, repository, layer_sizes)
            print(f"round {number + 1}/{rounds}", file=sys.stderr)
            through = f"docker://{suite.host}/cache/{repository}:v1"
            # The direct pull goes through the same counting proxy as the cache's fetches: same path.
            direct_ref = f"docker://{upstream.proxy.host}/{repository}:v1"

            await in_turn(
                number,
                (direct, functools.partial(timed_pull, direct_ref, work_dir / f"direct{number}")),
                (miss, functools.partial(miss_pull, suite, repository, work_dir / f"miss{number}")),
            )
            normal_ref = f"docker://{suite.host}/normal/app{number}:v1"
            (
                await run_skopeo(
                    "copy",
                    "--dest-tls-verify=false",
                    f"--dest-creds={suite.creds}",
                    f"oci:{layout}:v1",
                    normal_ref,
                )
            ).check()
            await in_turn(
                number,
                (cached, functools.partial(timed_pull, through, work_dir / f"cached{number}", *auth)),
                (normal, functools.partial(timed_pull, normal_ref, work_dir / f"normal{number}", *auth)),
            )

        concurrent_repository = "bench/concurrent"
        await fresh_image(upstream, work_dir, concurrent_repository, layer_sizes)
        upstream.proxy.reset_counts()
        started = time.perf_counter()
        await asyncio.gather(
            *(http_pull(suite, f"cache/{concurrent_repository}") for _ in range(CONCURRENT_PULLS))
        )
        concurrent_s = time.perf_counter() - started
        fetches = upstream.proxy.blob_fetches

    print_rounds(direct, miss, cached, normal)
    miss_s, direct_s = statistics.median(miss), statistics.median(direct)
    cached_mbps = image_bytes / MiB / statistics.median(cached)
    normal_mbps = image_bytes / MiB / statistics.median(normal)
    paired_miss = statistics.median(m / d for m, d in zip(miss, direct, strict=True))
    paired_cached = statistics.median(n / c for c, n in zip(cached, normal, strict=True))
    most = max(fetches.values(), default=0)
    return [
        ("first (miss) pull s", f"{miss_s:.2f}", f"{direct_s:.2f} (upstream direct)",
         f"{miss_s / direct_s:.2f}x (paired {paired_miss:.2f}x)", "<= 1.2x",
         "yes" if miss_s <= 1.2 * direct_s else "no"),
        ("cached pull MiB/s", f"{cached_mbps:.1f}", f"{normal_mbps:.1f} (normal repository)",
         f"{cached_mbps / normal_mbps:.2f}x (paired {paired_cached:.2f}x)", ">= 0.95x",
         "yes" if cached_mbps >= 0.95 * normal_mbps else "no"),
        (f"upstream fetches per blob, {CONCURRENT_PULLS} concurrent misses", f"max {most}",
         f"{len(fetches)} blobs, {sum(fetches.values())} fetches, {concurrent_s:.2f} s", "-", "exactly 1",
         "yes" if most == 1 and len(fetches) == len(layer_sizes) + 1 else "no"),
    ]  # fmt: skip


def print_rounds(direct: list[float], miss: list[float], cached: list[float], normal: list[float]) -> None:
    """Every round's times (seconds), for judging the medians on a busy machine."""
    print("round | direct s | miss s | miss/direct | normal s | cached s | cached/normal throughput")
    for number, (d, m, c, n) in enumerate(zip(direct, miss, cached, normal, strict=True), start=1):
        print(f"{number:5d} | {d:8.2f} | {m:6.2f} | {m / d:11.2f} | {n:8.2f} | {c:8.2f} | {n / c:.2f}")


def print_table(image_bytes: int, rows: list[tuple[str, str, str, str, str, str]]) -> None:
    header = ("metric", "Quayside cache", "peer", "ratio", "target", "met")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    print(f"image: {image_bytes / MiB:.1f} MiB of random layers")
    for row in [header, tuple("-" * width for width in widths), *rows]:
        print(" | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small image, two rounds")
    parser.add_argument("--rounds", type=int, default=7, help="rounds of each pull (default 7)")
    arguments = parser.parse_args()
    layer_sizes = (
        (1 * MiB, 512 * 1024, 2 * MiB) if arguments.quick else (32 * MiB, 16 * MiB, 8 * MiB, 64 * MiB)
    )
    rounds = 2 if arguments.quick else arguments.rounds
    with tempfile.TemporaryDirectory(prefix="quayside-bench-proxy-") as work:
        rows = asyncio.run(measure(Path(work), layer_sizes, rounds))
    print_table(sum(layer_sizes), rows)


if __name__ == "__main__":
    main()
