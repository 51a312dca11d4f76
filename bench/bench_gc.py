"""Garbage collection: one pass over 100,000 blobs of which half are garbage, and push latency while
it runs against the same registry idle.

Run from the repository root: `python bench/bench_gc.py [--blobs N] [--blob-bytes N]`. See
bench/README.md for what is measured and how. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
# Run as a script, the repository root is not on sys.path.
sys.path.insert(0, str(REPOSITORY_ROOT))

from bench.benchdb import bench_database, local_settings  # noqa: E402
from shared.auth.accounts import create_user  # noqa: E402
from shared.db import create_pool  # noqa: E402
from shared.storage.paths import blob_path  # noqa: E402
from tests.support.process import ServerProcess, free_port  # noqa: E402

LAYERS_PER_MANIFEST = 10
_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
_CONFIG = "application/vnd.oci.image.config.v1+json"
# Long enough before the pass for PUSH_TEMP_TAG_EXPIRATION_SEC (one hour) to have passed.
_AGE = timedelta(hours=2)


@dataclasses.dataclass
class Seeded:
    repository_id: int
    garbage_blobs: int
    garbage_bytes: int


def _digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def _write_blobs(root: Path, contents: list[bytes]) -> list[str]:
    digests = []
    for data in contents:
        digest = _digest(data)
        path = root / blob_path(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        digests.append(digest)
    return digests


async def _seed(conn: asyncpg.Connection, storage: Path, blobs: int, blob_bytes: int) -> Seeded:
    """One repository: half the blobs in tagged manifests, half in untagged ones (the garbage)."""
    namespace_id = await conn.fetchval("SELECT id FROM namespace WHERE name = 'bench'")
    repository_id = await conn.fetchval(
        "INSERT INTO repository (namespace_id, name) VALUES ($1, 'seeded') RETURNING id", namespace_id
    )
    padding = b"x" * max(blob_bytes - 16, 0)
    contents = [f"{index:016d}".encode() + padding for index in range(blobs)]
    digests = await asyncio.to_thread(_write_blobs, storage, contents)
    created = datetime.now(UTC) - _AGE
    await conn.copy_records_to_table(
        "blob",
        records=[(d, len(c), created) for d, c in zip(digests, contents, strict=True)],
        columns=["digest", "size", "created_at"],
    )
    await conn.copy_records_to_table(
        "blob_placement",
        records=[(d, "local", created) for d in digests],
        columns=["digest", "location", "created_at"],
    )
    await conn.copy_records_to_table(
        "repository_blob",
        records=[(repository_id, d, created, created) for d in digests],
        columns=["repository_id", "digest", "created_at", "touched_at"],
    )
    manifests = []
    links = []
    tags = []
    first_id = await conn.fetchval("SELECT nextval('manifest_id_seq')")
    for number, start in enumerate(range(0, blobs, LAYERS_PER_MANIFEST)):
        layers = digests[start : start + LAYERS_PER_MANIFEST]
        body = json.dumps({"schemaVersion": 2, "mediaType": _OCI_MANIFEST, "layers": layers}).encode()
        manifest_id = first_id + number
        manifests.append(
            (manifest_id, repository_id, _digest(body), _OCI_MANIFEST, len(body), body, created, created)
        )
        links += [(manifest_id, layer) for layer in layers]
        if start < blobs // 2:
            tags.append((repository_id, f"t{number}", manifest_id, created))
    await conn.copy_records_to_table(
        "manifest",
        records=manifests,
        columns=["id", "repository_id", "digest", "media_type", "size", "content", "created_at", "pushed_at"],
    )
    await conn.execute("SELECT setval('manifest_id_seq', $1)", first_id + len(manifests))
    await conn.copy_records_to_table("manifest_blob", records=links, columns=["manifest_id", "digest"])
    await conn.copy_records_to_table(
        "tag", records=tags, columns=["repository_id", "name", "manifest_id", "lifetime_start"]
    )
    await conn.execute("ANALYZE")
    garbage = blobs - blobs // 2
    return Seeded(repository_id, garbage, sum(len(c) for c in contents[blobs // 2 :]))


PHASES = ("config upload", "layer upload", "manifest PUT")


@dataclasses.dataclass(frozen=True)
class PushTiming:
    """One push's seconds, per request (PHASES) and in all."""

    started_at: float  # time.time(), to line pushes up with other traces
    phases: tuple[float, ...]

    @property
    def total(self) -> float:
        return sum(self.phases)


async def _push(client: httpx.AsyncClient, number: int) -> PushTiming:
    """One small image pushed (config, layer, manifest), timed per request."""
    layer = os.urandom(512)
    config = json.dumps({"architecture": "amd64", "os": "linux", "n": number}).encode()
    phases = []
    started_at = time.time()
    for blob in (config, layer):
        started = time.perf_counter()
        uploaded = await client.post(
            "/v2/bench/pushed/blobs/uploads/", params={"digest": _digest(blob)}, content=blob
        )
        uploaded.raise_for_status()
        phases.append(time.perf_counter() - started)
    manifest = {
        "schemaVersion": 2,
        "mediaType": _OCI_MANIFEST,
        "config": {"mediaType": _CONFIG, "digest": _digest(config), "size": len(config)},
        "layers": [{"mediaType": _LAYER, "digest": _digest(layer), "size": len(layer)}],
    }
    started = time.perf_counter()
    put = await client.put(
        f"/v2/bench/pushed/manifests/p{number}",
        content=json.dumps(manifest),
        headers={"Content-Type": _OCI_MANIFEST},
    )
    put.raise_for_status()
    phases.append(time.perf_counter() - started)
    return PushTiming(started_at, tuple(phases))


async def _pushes_until(
    client: httpx.AsyncClient, stop: asyncio.Event, first: int, at_least: int
) -> list[PushTiming]:
    timings: list[PushTiming] = []
    while not stop.is_set() or len(timings) < at_least:
        timings.append(await _push(client, first + len(timings)))
    return timings


async def _pass_in_its_own_process(pool: asyncpg.Pool, env: dict[str, str]) -> asyncpg.Record:
    """One pass by `quayside gc run`, in a process of its own as the gc service runs it: a pass in
    the bench's event loop would stall the pushing client and be measured as push latency."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "quayside", "gc", "run", env=env, cwd=REPOSITORY_ROOT,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"quayside gc run failed: {stderr.decode()}")
    async with pool.acquire() as conn:
        record = await conn.fetchrow("SELECT * FROM gc_pass WHERE NOT dry_run ORDER BY id DESC LIMIT 1")
    assert record is not None and record["status"] == "finished", record
    return record


def _p99(latencies: list[float]) -> float:
    return statistics.quantiles(latencies, n=100)[98] * 1000


def _phase_lines(idle: list[PushTiming], during: list[PushTiming]) -> list[tuple[str, str, str]]:
    """Each request's p99, idle and during, and its share of the slowest 1% of pushes during the
    pass: which part of a push the pass slows."""
    slowest = sorted(during, key=lambda timing: timing.total)[-max(len(during) // 100, 1) :]
    slowest_total = sum(timing.total for timing in slowest)
    lines = []
    for index, phase in enumerate(PHASES):
        idle_p99 = _p99([timing.phases[index] for timing in idle])
        during_p99 = _p99([timing.phases[index] for timing in during])
        share = sum(timing.phases[index] for timing in slowest) / slowest_total
        lines.append((f"{phase} p99 ms idle / during", f"{idle_p99:.1f} / {during_p99:.1f}", ""))
        lines.append((f"{phase} share of the slowest 1% during", f"{share:.0%}", ""))
    return lines


@dataclasses.dataclass(frozen=True)
class Options:
    blobs: int
    blob_bytes: int
    idle_pushes: int
    warm_up_pushes: int
    duty: float
    timings_out: Path | None


@dataclasses.dataclass(frozen=True)
class Measured:
    seeded: Seeded
    record: asyncpg.Record
    idle_before: list[PushTiming]
    during: list[PushTiming]
    idle_after: list[PushTiming]

    @property
    def idle(self) -> list[PushTiming]:
        return self.idle_before + self.idle_after


async def bench(options: Options) -> None:
    with tempfile.TemporaryDirectory(prefix="qs-bench-gc-") as folder:
        async with bench_database() as dsn:
            measured = await _measure(dsn, Path(folder) / "storage", options)
    if options.timings_out is not None:
        _write_timings(options.timings_out, measured)
    _print_table(options, measured)


async def _measure(dsn: str, storage: Path, options: Options) -> Measured:
    settings = local_settings(dsn, storage, garbage_collection_duty=options.duty)
    pool = await create_pool(dsn, max_size=4)
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("QUAYSIDE_")}
    env |= {
        "QUAYSIDE_DATABASE_URL": dsn,
        "QUAYSIDE_STORAGE_LOCATIONS": json.dumps({"local": {"driver": "filesystem", "root": str(storage)}}),
        "QUAYSIDE_STORAGE_PREFERENCE": "local",
        "QUAYSIDE_TOKEN_SECRET": settings.token_secret,
        "QUAYSIDE_LISTEN": f"127.0.0.1:{port}",
    }
    server = await ServerProcess.start([sys.executable, "-m", "services.registry"], env, REPOSITORY_ROOT)
    try:
        async with pool.acquire() as conn:
            await create_user(conn, "bench", "bench-password")
            print(f"seeding {options.blobs} blobs of {options.blob_bytes} bytes …", flush=True)
            seeded = await _seed(conn, storage, options.blobs, options.blob_bytes)
        url = f"http://127.0.0.1:{port}"
        await server.wait_until_serving(f"{url}/v2/", accepted=frozenset({200, 401}))
        async with httpx.AsyncClient(base_url=url, auth=("bench", "bench-password"), timeout=60) as client:
            # Seeding wrote 100,000 files and rows: let their writeback and checkpoint finish
            # first, or they land in the idle figures (idle p99 swung 31 to 91 ms without this).
            async with pool.acquire() as conn:
                await conn.execute("CHECKPOINT")
            await asyncio.to_thread(os.sync)
            # Warm-up, not counted: the new repository's first pushes, caches, connections.
            await _pushes(client, -options.warm_up_pushes, options.warm_up_pushes)
            idle_before = await _pushes(client, 0, options.idle_pushes)
            during_stop = asyncio.Event()
            pushing = asyncio.create_task(_pushes_until(client, during_stop, options.idle_pushes, 20))
            record = await _pass_in_its_own_process(
                pool, env | {"QUAYSIDE_GARBAGE_COLLECTION_DUTY": str(options.duty)}
            )
            during_stop.set()
            during = await pushing
            # Idle again after the pass, as many: the machine's other load drifts over minutes, and
            # a second idle series shows whether it did while this run measured.
            idle_after = await _pushes(client, options.idle_pushes + len(during), options.idle_pushes)
    finally:
        await server.stop()
        await pool.close()
    return Measured(seeded, record, idle_before, during, idle_after)


async def _pushes(client: httpx.AsyncClient, first: int, count: int) -> list[PushTiming]:
    stopped = asyncio.Event()
    stopped.set()
    return await _pushes_until(client, stopped, first, count)


def _write_timings(path: Path, measured: Measured) -> None:
    document = {
        "idle_before": [dataclasses.asdict(timing) for timing in measured.idle_before],
        "during": [dataclasses.asdict(timing) for timing in measured.during],
        "idle_after": [dataclasses.asdict(timing) for timing in measured.idle_after],
        "pass_started_at": measured.record["started_at"].timestamp(),
        "pass_finished_at": measured.record["finished_at"].timestamp(),
    }
    path.write_text(json.dumps(document))


def _print_table(options: Options, measured: Measured) -> None:
    record, seeded = measured.record, measured.seeded
    elapsed = (record["finished_at"] - record["started_at"]).total_seconds()
    rows = sum(record["rows_by_table"].values())
    before_p99 = _p99([timing.total for timing in measured.idle_before])
    after_p99 = _p99([timing.total for timing in measured.idle_after])
    during_p99 = _p99([timing.total for timing in measured.during])
    lines = [
        ("blobs in the registry", f"{options.blobs}", ""),
        ("pass duty (share of time working)", f"{options.duty}", ""),
        ("garbage blobs deleted", f"{record['blobs_deleted']} of {seeded.garbage_blobs}", "all"),
        ("manifests deleted", f"{record['manifests_deleted']}", ""),
        ("pass time s", f"{elapsed:.2f}", ""),
        ("rows deleted", f"{rows}", ""),
        ("rows/s", f"{rows / elapsed:,.0f}", ""),
        ("bytes reclaimed", f"{record['bytes_reclaimed']} of {seeded.garbage_bytes}", "all"),
        ("bytes/s", f"{record['bytes_reclaimed'] / elapsed / 1e6:,.1f} MB/s", ""),
        ("blobs/s", f"{record['blobs_deleted'] / elapsed:,.0f}", ""),
        (f"push p99 ms idle before ({len(measured.idle_before)} pushes)", f"{before_p99:.1f}", ""),
        (f"push p99 ms during the pass ({len(measured.during)} pushes)", f"{during_p99:.1f}", ""),
        (f"push p99 ms idle after ({len(measured.idle_after)} pushes)", f"{after_p99:.1f}", ""),
        # Far from 1: the machine's other load changed during the run, which says nothing of the pass.
        ("push p99 idle after / idle before", f"{after_p99 / before_p99:.2f}x", "near 1x"),
        ("push p99 during / idle before", f"{during_p99 / before_p99:.2f}x", "<= 1.2x"),
        ("push p99 during / idle after", f"{during_p99 / after_p99:.2f}x", "<= 1.2x"),
        *_phase_lines(measured.idle, measured.during),
        ("load average (1 min) at the end", f"{os.getloadavg()[0]:.2f}", ""),
    ]
    width = max(len(line[0]) for line in lines)
    print(f"\n{'metric':<{width}}  {'value':>24}  target")
    for name, value, target in lines:
        print(f"{name:<{width}}  {value:>24}  {target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blobs", type=int, default=100_000)
    parser.add_argument("--blob-bytes", type=int, default=1024)
    parser.add_argument(
        "--idle-pushes", type=int, default=800, help="pushes measured idle, before and again after the pass"
    )
    parser.add_argument("--warm-up-pushes", type=int, default=50)
    parser.add_argument(
        "--duty", type=float, default=0.5, help="QUAYSIDE_GARBAGE_COLLECTION_DUTY of the pass"
    )
    parser.add_argument("--timings-out", type=Path, help="write every push's timings here (JSON)")
    arguments = parser.parse_args()
    asyncio.run(
        bench(
            Options(
                arguments.blobs,
                arguments.blob_bytes,
                arguments.idle_pushes,
                arguments.warm_up_pushes,
                arguments.duty,
                arguments.timings_out,
            )
        )
    )


if __name__ == "__main__":
    main()
