"""The gateway's overhead: blob GET throughput and manifest GET requests/s, directly against a
registry and through `python -m services.gateway` in front of it (one region).

Run from the repository root: `python bench/bench_gateway.py [--quick]`. Not part of the test
suite; nothing asserts on its figures. What runs: `python -m services.registry` on a fresh database
(bench_registry.quayside: filesystem storage, a user `bench`, bearer tokens from /v2/auth) and the
gateway in front of it, both on loopback. In alternating rounds (3; --quick: 1): a 64 MiB random
blob (--quick: 16 MiB) GET 5 times with curl (median MiB/s), then `wrk -t2 -c16 -d10s` on the
tagged manifest (req/s), directly and through the gateway. The table shows the medians, the
overhead (how much lower the figure through the gateway is; target <= 15 %), and the CPU time per
request of the registry and of the gateway processes (from /proc), which the machine's other load
hardly moves.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import statistics
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import TypeVar

import httpx
from pydantic import BaseModel

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
# Run as a script, the repository root is not on sys.path; the support modules live there.
sys.path.insert(0, str(REPOSITORY_ROOT))

from bench.bench_registry import (  # noqa: E402
    BlobFile,
    Registry,
    curl_get,
    manifest_get_requests_per_s,
    quayside,
    tree_cpu_s,
    upload_blob,
    write_random_file,
)
from tests.support.process import ServerProcess, free_port  # noqa: E402

MiB = 1024 * 1024
_TAG = "bench"  # bench_registry's tag
OVERHEAD_TARGET_PERCENT = 15.0


class Scale(BaseModel):
    blob_bytes: int
    blob_gets: int
    manifest_seconds: int
    manifest_connections: int
    rounds: int


FULL = Scale(blob_bytes=64 * MiB, blob_gets=5, manifest_seconds=10, manifest_connections=16, rounds=3)
QUICK = Scale(blob_bytes=16 * MiB, blob_gets=3, manifest_seconds=3, manifest_connections=16, rounds=1)


class Side(BaseModel):
    """The figures of each round on one way to the registry (directly, or through the gateway), and
    the CPU seconds the registry and the gateway processes spent on them."""

    blob_mib_s: list[float] = []
    manifest_rps: list[float] = []
    blob_gets: int = 0
    manifest_gets: float = 0
    registry_cpu_s: dict[str, float] = {"blob": 0.0, "manifest": 0.0}
    gateway_cpu_s: dict[str, float] = {"blob": 0.0, "manifest": 0.0}


T = TypeVar("T")


async def with_cpu(pids: tuple[int, int], operation: Awaitable[T]) -> tuple[T, tuple[float, float]]:
    """The operation's result and the CPU seconds each of the two processes spent meanwhile."""

    def snapshot() -> tuple[float, float]:
        return tree_cpu_s(pids[0]), tree_cpu_s(pids[1])

    before = await asyncio.to_thread(snapshot)
    result = await operation
    after = await asyncio.to_thread(snapshot)
    return result, (after[0] - before[0], after[1] - before[1])


@contextlib.asynccontextmanager
async def gateway_in_front(registry: Registry) -> AsyncIterator[Registry]:
    """The gateway with the registry as its one region, as a Registry whose URL is the gateway's."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("QUAYSIDE_")}
    env.update(
        QUAYSIDE_GATEWAY_REGIONS=json.dumps({"local": registry.url}),
        QUAYSIDE_GATEWAY_LISTEN=f"127.0.0.1:{port}",
    )
    server = await ServerProcess.start(
        [sys.executable, "-m", "services.gateway"], env=env, cwd=REPOSITORY_ROOT
    )
    try:
        await server.wait_until_serving(f"http://127.0.0.1:{port}/health/instance")
        yield Registry(
            "gateway",
            port,
            server,
            namespace=registry.namespace,
            credentials=registry.credentials,
            database_url=registry.database_url,
        )
    finally:
        await server.stop()


async def push_small_image(client: httpx.AsyncClient, registry: Registry, work_dir: Path) -> str:
    """A one-layer image tagged _TAG in repository 'manifest-get'; its repository name."""
    repository = "manifest-get"
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}}).encode()
    layer = os.urandom(4096)
    descriptors = []
    for name, data, media_type in (
        ("config", config, "application/vnd.oci.image.config.v1+json"),
        ("layer", layer, "application/vnd.oci.image.layer.v1.tar"),
    ):
        path = work_dir / name
        await asyncio.to_thread(path.write_bytes, data)
        digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
        await upload_blob(client, registry, repository, BlobFile(path=path, digest=digest, size=len(data)))
        descriptors.append({"mediaType": media_type, "digest": digest, "size": len(data)})
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": descriptors[0],
        "layers": descriptors[1:],
    }
    headers = {
        **await registry.authorization(client, repository),
        "Content-Type": "application/vnd.oci.image.manifest.v1+json",
    }
    url = f"{registry.url}/v2/{registry.namespace}/{repository}/manifests/{_TAG}"
    (await client.put(url, content=json.dumps(manifest).encode(), headers=headers)).raise_for_status()
    return repository


async def blob_get_mib_s(client: httpx.AsyncClient, registry: Registry, blob: BlobFile, gets: int) -> float:
    """Median MiB/s of sequential curl GETs of the blob (in repository 'blob-get')."""
    headers = await registry.authorization(client, "blob-get")
    url = f"{registry.url}/v2/{registry.namespace}/blob-get/blobs/{blob.digest}"
    speeds = [await curl_get(url, headers) for _ in range(gets)]
    return statistics.median(speeds) / MiB


def overhead_percent(direct: float, through: float) -> float:
    """How much lower the figure through the gateway is, in percent of the direct one."""
    return 100 * (direct - through) / direct


def render(scale: Scale, direct: Side, through: Side) -> str:
    rows = [
        (f"blob GET MiB/s ({scale.blob_bytes // MiB} MiB)", direct.blob_mib_s, through.blob_mib_s),
        (f"manifest GET req/s (c={scale.manifest_connections})", direct.manifest_rps, through.manifest_rps),
    ]
    lines = [
        f"{'metric':<30} {'direct':>10} {'via gateway':>12} {'overhead':>9}  target      met",
        "-" * 78,
    ]
    for metric, direct_rounds, through_rounds in rows:
        figure, via = statistics.median(direct_rounds), statistics.median(through_rounds)
        overhead = overhead_percent(figure, via)
        met = "yes" if overhead <= OVERHEAD_TARGET_PERCENT else "NO"
        lines.append(
            f"{metric:<30} {figure:>10.1f} {via:>12.1f} {overhead:>8.1f}%  <= {OVERHEAD_TARGET_PERCENT:g} %   {met}"
        )
    lines += [
        "",
        "CPU ms per request (user + system, from /proc; what the machine's other load hardly moves):",
    ]
    for kind, count_direct, count_through in (
        ("blob", direct.blob_gets, through.blob_gets),
        ("manifest", direct.manifest_gets, through.manifest_gets),
    ):
        registry_direct = 1000 * direct.registry_cpu_s[kind] / count_direct
        registry_through = 1000 * through.registry_cpu_s[kind] / count_through
        gateway = 1000 * through.gateway_cpu_s[kind] / count_through
        lines.append(
            f"  {kind} GET: registry {registry_direct:.3f} directly, {registry_through:.3f} via the gateway;"
            f" gateway {gateway:.3f} ({100 * gateway / registry_direct:.0f} % of the registry's)"
        )
    lines += ["", f"rounds: direct {direct.blob_mib_s} MiB/s, {direct.manifest_rps} req/s;"]
    lines += [f"        via gateway {through.blob_mib_s} MiB/s, {through.manifest_rps} req/s"]
    return "\n".join(lines)


async def measure_blob(
    client: httpx.AsyncClient,
    target: Registry,
    blob: BlobFile,
    scale: Scale,
    pids: tuple[int, int],
    side: Side,
) -> None:
    rate, (registry_s, gateway_s) = await with_cpu(
        pids, blob_get_mib_s(client, target, blob, scale.blob_gets)
    )
    side.blob_mib_s.append(rate)
    side.blob_gets += scale.blob_gets
    side.registry_cpu_s["blob"] += registry_s
    side.gateway_cpu_s["blob"] += gateway_s


async def measure_manifest(
    client: httpx.AsyncClient,
    target: Registry,
    repository: str,
    scale: Scale,
    pids: tuple[int, int],
    side: Side,
) -> None:
    rate, (registry_s, gateway_s) = await with_cpu(
        pids, manifest_get_requests_per_s(client, target, repository, scale)
    )
    side.manifest_rps.append(rate)
    side.manifest_gets += rate * scale.manifest_seconds
    side.registry_cpu_s["manifest"] += registry_s
    side.gateway_cpu_s["manifest"] += gateway_s


async def main(scale: Scale) -> None:
    with tempfile.TemporaryDirectory(prefix="quayside-bench-gateway-") as folder:
        work_dir = Path(folder)
        blob = await asyncio.to_thread(write_random_file, work_dir / "blob", scale.blob_bytes)
        async with (
            quayside(work_dir) as registry,
            gateway_in_front(registry) as gateway,
            httpx.AsyncClient(timeout=120) as client,
        ):
            await upload_blob(client, registry, "blob-get", blob)
            repository = await push_small_image(client, registry, work_dir)
            pids = (registry.server.pid, gateway.server.pid)
            direct, through = Side(), Side()
            # Alternating rounds, so that the machine's other load weighs on both sides alike.
            for _ in range(scale.rounds):
                await measure_blob(client, registry, blob, scale, pids, direct)
                await measure_blob(client, gateway, blob, scale, pids, through)
                await measure_manifest(client, registry, repository, scale, pids, direct)
                await measure_manifest(client, gateway, repository, scale, pids, through)
    print(render(scale, direct, through))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small blob, short load, one round")
    asyncio.run(main(QUICK if parser.parse_args().quick else FULL))
