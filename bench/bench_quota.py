"""Storage quota: the full recount of a namespace of 10,000 manifests, and push latency with quota
enforcement on against off.

Run from the repository root: `python bench/bench_quota.py [--quick]`. See bench/README.md for what
is measured and the targets. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import httpx
from pydantic import BaseModel

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
# Run as a script, the repository root is not on sys.path.
sys.path.insert(0, str(REPOSITORY_ROOT))

from bench.bench_registry import Registry, quayside  # noqa: E402
from bench.benchdb import bench_database  # noqa: E402
from shared.quota import lock_namespace, recheck_digests, recount_namespace  # noqa: E402

_MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
_CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
_LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
_BASE_LAYERS = 20
_REPOSITORIES = 10


class Scale(BaseModel):
    manifests: int
    recounts: int
    pushes: int


FULL = Scale(manifests=10_000, recounts=5, pushes=500)
QUICK = Scale(manifests=10_000, recounts=3, pushes=30)


class Row(BaseModel):
    metric: str
    on: float
    off: float | None
    target: str
    met: bool


# --- (a) the full recount --------------------------------------------------------------------------

_FILL = """
WITH ns AS (INSERT INTO namespace (name, kind) VALUES ('recount', 'organization') RETURNING id),
repos AS (
    INSERT INTO repository (namespace_id, name) SELECT ns.id, 'repo' || n FROM ns, generate_series(0, $2 - 1) n
    RETURNING id
),
bases AS (
    INSERT INTO blob (digest, size)
    SELECT 'sha256:' || encode(sha256(('base' || n)::bytea), 'hex'), 10000000 + n FROM generate_series(0, $3 - 1) n
),
own AS (
    INSERT INTO blob (digest, size)
    SELECT 'sha256:' || encode(sha256((kind || n)::bytea), 'hex'), 1000 + n
      FROM generate_series(0, $1 - 1) n, (VALUES ('config'), ('layer')) k(kind)
)
INSERT INTO manifest (repository_id, digest, media_type, size, content)
SELECT r.id, 'sha256:' || encode(sha256(('manifest' || n)::bytea), 'hex'), $4, 2, '{}'
  FROM generate_series(0, $1 - 1) n
  JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS position FROM repos) r ON r.position = n % $2
"""

_FILL_BLOBS = """
INSERT INTO manifest_blob (manifest_id, digest)
SELECT m.id, d.digest FROM (
    SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM manifest
) m CROSS JOIN LATERAL (
    VALUES ('sha256:' || encode(sha256(('config' || m.n)::bytea), 'hex')),
           ('sha256:' || encode(sha256(('layer' || m.n)::bytea), 'hex')),
           ('sha256:' || encode(sha256(('base' || (m.n % $1))::bytea), 'hex')),
           ('sha256:' || encode(sha256(('base' || ((m.n + 7) % $1))::bytea), 'hex')),
           ('sha256:' || encode(sha256(('base' || ((m.n + 13) % $1))::bytea), 'hex'))
) d(digest)
"""


async def measure_recount(scale: Scale) -> list[Row]:
    async with bench_database() as database_url:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(_FILL, scale.manifests, _REPOSITORIES, _BASE_LAYERS, _MANIFEST_TYPE)
            await conn.execute(_FILL_BLOBS, _BASE_LAYERS)
            await conn.execute("ANALYZE")
            namespace_id = await conn.fetchval("SELECT id FROM namespace WHERE name = 'recount'")
            started = time.perf_counter()
            async with conn.transaction():
                await lock_namespace(conn, namespace_id)
                repaired = await recount_namespace(conn, namespace_id, repair=True)
            repair_s = time.perf_counter() - started
            await conn.execute("ANALYZE")
            timings = []
            for _ in range(scale.recounts):
                started = time.perf_counter()
                result = await recount_namespace(conn, namespace_id)
                timings.append(time.perf_counter() - started)
                assert not result.drifted, result
            # One manifest's re-check (the incremental path of a push), on the full namespace.
            digests = [
                row[0]
                for row in await conn.fetch(
                    "SELECT mb.digest FROM manifest_blob mb JOIN manifest m ON m.id = mb.manifest_id"
                    " ORDER BY m.id DESC LIMIT 5"
                )
            ]
            recheck_timings = []
            for _ in range(20):
                started = time.perf_counter()
                async with conn.transaction():
                    await lock_namespace(conn, namespace_id)
                    await recheck_digests(
                        conn, namespace_id=namespace_id, repository_id=None, digests=digests
                    )
                recheck_timings.append(time.perf_counter() - started)
        finally:
            await conn.close()
    label = f"{scale.manifests:,} manifests, {repaired.actual_bytes / 1e9:.2f} GB"
    return [
        Row(
            metric=f"full recount, {label} (s)",
            on=statistics.median(timings),
            off=None,
            target="< 2 s",
            met=statistics.median(timings) < 2,
        ),
        Row(metric="recount + repair from empty records (s)", on=repair_s, off=None, target="-", met=True),
        Row(
            metric="re-check of one manifest's 5 blobs (ms)",
            on=statistics.median(recheck_timings) * 1000,
            off=None,
            target="-",
            met=True,
        ),
    ]


# --- (b) push latency, enforcement on and off ------------------------------------------------------


def _blob(label: str) -> tuple[bytes, str]:
    content = label.encode()
    return content, "sha256:" + hashlib.sha256(content).hexdigest()


async def _push(
    client: httpx.AsyncClient, registry: Registry, repository: str, headers: dict[str, str], n: int
) -> tuple[float, float]:
    """Push one image (config and layer, monolithic uploads, then the manifest): (total s, manifest PUT s)."""
    base = f"{registry.url}/v2/{registry.namespace}/{repository}"
    started = time.perf_counter()
    descriptors = []
    for kind, media_type in (("config", _CONFIG_TYPE), ("layer", _LAYER_TYPE)):
        content, digest = _blob(f"{kind}-{repository}-{n}-" + "x" * 4096)
        answer = await client.post(
            f"{base}/blobs/uploads/",
            params={"digest": digest},
            content=content,
            headers={**headers, "Content-Type": "application/octet-stream"},
        )
        answer.raise_for_status()
        descriptors.append({"mediaType": media_type, "digest": digest, "size": len(content)})
    manifest = json.dumps(
        {"schemaVersion": 2, "mediaType": _MANIFEST_TYPE, "config": descriptors[0], "layers": descriptors[1:]}
    ).encode()
    put_started = time.perf_counter()
    answer = await client.put(
        f"{base}/manifests/t{n}", content=manifest, headers={**headers, "Content-Type": _MANIFEST_TYPE}
    )
    answer.raise_for_status()
    done = time.perf_counter()
    return done - started, done - put_started


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def measure_pushes(scale: Scale, work_dir: Path) -> list[Row]:
    async with quayside(work_dir) as registry, httpx.AsyncClient(timeout=60) as client:
        assert registry.database_url is not None
        conn = await asyncpg.connect(registry.database_url)
        try:
            namespace_id = await conn.fetchval("SELECT id FROM namespace WHERE name = $1", registry.namespace)
            # Off: the quota row is parked on a namespace of its own, so the bench's has none.
            parked_id = await conn.fetchval(
                "INSERT INTO namespace (name, kind) VALUES ('parked', 'organization') RETURNING id"
            )
            # A quota far above what the bench pushes, rejecting at 100 % and warning at 80 %.
            quota_id = await conn.fetchval(
                "INSERT INTO quota (namespace_id, limit_bytes) VALUES ($1, $2) RETURNING id",
                namespace_id,
                10**15,
            )
            await conn.execute(
                "INSERT INTO quota_limit (quota_id, limit_type, threshold_percent) VALUES ($1, 'Reject', 100), ($1, 'Warning', 80)",
                quota_id,
            )
            headers = {mode: await registry.authorization(client, f"push-{mode}") for mode in ("on", "off")}
            for mode in ("on", "off"):  # warm-up (quota on the bench namespace)
                for n in range(5):
                    await _push(client, registry, f"push-{mode}", headers[mode], -1 - n)
            totals: dict[str, list[float]] = {"on": [], "off": []}
            puts: dict[str, list[float]] = {"on": [], "off": []}
            for n in range(scale.pushes):
                # Alternating, so that the machine's other load weighs on both alike.
                for mode in ("on", "off") if n % 2 == 0 else ("off", "on"):
                    owner = namespace_id if mode == "on" else parked_id
                    await conn.execute("UPDATE quota SET namespace_id = $1 WHERE id = $2", owner, quota_id)
                    total, put = await _push(client, registry, f"push-{mode}", headers[mode], n)
                    totals[mode].append(total)
                    puts[mode].append(put)
        finally:
            await conn.close()
    rows = []
    for label, samples in (("whole push", totals), ("manifest PUT", puts)):
        for name, fraction in (("p50", 0.5), ("p99", 0.99)):
            on, off = (
                _percentile(samples["on"], fraction) * 1000,
                _percentile(samples["off"], fraction) * 1000,
            )
            ratio = on / off if off else float("inf")
            # The target is the push's (the issue's "push latency"); the manifest PUT, where all of
            # enforcement's work happens, is shown for where the difference comes from.
            targeted = label == "whole push"
            rows.append(
                Row(
                    metric=f"{label} {name} (ms)",
                    on=on,
                    off=off,
                    target=f"<= 1.05x ({ratio:.2f}x)" if targeted else f"- ({ratio:.2f}x)",
                    met=ratio <= 1.05 or not targeted,
                )
            )
    return rows


def render(rows: list[Row], scale: Scale) -> str:
    lines = [
        f"recount: {scale.manifests:,} manifests in {_REPOSITORIES} repositories, 5 blobs each (3 of {_BASE_LAYERS} shared);"
        f" pushes: {scale.pushes} per mode, alternating",
        f"{'metric':<52}{'quota on':>12}{'quota off':>12}  {'target':<20}{'met':>4}",
        "-" * 102,
    ]
    for row in rows:
        off = f"{row.off:12.2f}" if row.off is not None else f"{'-':>12}"
        lines.append(f"{row.metric:<52}{row.on:12.2f}{off}  {row.target:<20}{'yes' if row.met else 'NO':>4}")
    return "\n".join(lines)


async def main(scale: Scale, only: str | None) -> None:
    rows: list[Row] = []
    if only in (None, "recount"):
        rows += await measure_recount(scale)
    if only in (None, "push"):
        with tempfile.TemporaryDirectory(prefix="quayside-bench-quota-") as work:
            rows += await measure_pushes(scale, Path(work))
    print(render(rows, scale))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer recounts and pushes")
    parser.add_argument(
        "--only", choices=("recount", "push"), default=None, help="one of the two measurements"
    )
    arguments = parser.parse_args()
    asyncio.run(main(QUICK if arguments.quick else FULL, arguments.only))
