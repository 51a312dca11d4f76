"""Manifest GETs with Basic credentials against the same GETs with a bearer token, on one registry.

Run from the repository root: `python bench/bench_auth.py [--quick]`. See bench/README.md for what
is measured, how, and what the targets mean. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import re
import sys
import tempfile
from pathlib import Path

import httpx
from pydantic import BaseModel

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
# Run as a script, the repository root is not on sys.path; the benchmark modules live there.
sys.path.insert(0, str(REPOSITORY_ROOT))

from bench.bench_registry import (  # noqa: E402
    Registry,
    distribution,
    ensure_wrk,
    header_options,
    quayside,
    rss_peak_growth,
    run_tool,
)
from tests.support.ocilayout import OciLayout  # noqa: E402
from tests.support.skopeo import run_skopeo  # noqa: E402

_TAG = "bench"
_ACCEPT = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
# Counts responses per wall-clock second in each wrk thread, and prints the totals, the latency
# percentiles (microseconds) and every second's count when the run ends.
_WRK_SCRIPT = """
local threads = {}
counts = {}

function setup(thread)
  table.insert(threads, thread)
end

function response(status, headers, body)
  local second = os.time()
  counts[second] = (counts[second] or 0) + 1
end

function done(summary, latency, requests)
  io.write(string.format("STATS %d %d %d %d %d %d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), latency.max, summary.errors.status))
  local windows = {}
  for _, thread in ipairs(threads) do
    for second, count in pairs(thread:get("counts")) do
      windows[second] = (windows[second] or 0) + count
    end
  end
  for second, count in pairs(windows) do
    io.write(string.format("WINDOW %d %d\\n", second, count))
  end
end
"""


class Scale(BaseModel):
    seconds: int
    connections: int


FULL = Scale(seconds=60, connections=64)
QUICK = Scale(seconds=10, connections=64)


class Load(BaseModel):
    """What wrk saw of one run."""

    requests_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    worst_second: float
    mean_second: float


class Row(BaseModel):
    metric: str
    basic: float
    bearer: float
    target: str
    met: bool


async def push_small_image(registry: Registry, work_dir: Path) -> None:
    """A one-layer image tagged 'bench' in <namespace>/image, pushed with skopeo."""
    layout = OciLayout(work_dir / "image")
    layout.tag(await asyncio.to_thread(layout.add_image, [4096]), _TAG)
    (
        await run_skopeo(
            "copy",
            "--dest-tls-verify=false",
            *registry.skopeo_auth("dest"),
            f"oci:{layout.root}:{_TAG}",
            registry.reference("image"),
        )
    ).check()


def basic_authorization(registry: Registry) -> dict[str, str]:
    assert registry.credentials is not None
    raw = ":".join(registry.credentials).encode()
    return {"Authorization": f"Basic {base64.b64encode(raw).decode()}"}


def parse_wrk(output: str) -> Load:
    stats = re.search(r"^STATS (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)$", output, re.MULTILINE)
    if stats is None:
        raise RuntimeError(f"unexpected wrk output:\n{output}")
    requests, duration_us, p50, p99, longest, failed = (int(value) for value in stats.groups())
    if failed:
        raise RuntimeError(f"{failed} manifest GETs failed\n{output}")
    windows = sorted(
        (int(second), int(count)) for second, count in re.findall(r"^WINDOW (\d+) (\d+)$", output, re.M)
    )
    whole_seconds = [count for _, count in windows[1:-1]] or [count for _, count in windows]
    return Load(
        requests_per_s=requests / (duration_us / 1e6),
        p50_ms=p50 / 1000,
        p99_ms=p99 / 1000,
        max_ms=longest / 1000,
        worst_second=min(whole_seconds),
        mean_second=sum(whole_seconds) / len(whole_seconds),
    )


def mean_load(first: Load, second: Load) -> Load:
    """Every figure of two runs, averaged."""
    return Load(
        **{field: (getattr(first, field) + getattr(second, field)) / 2 for field in Load.model_fields}
    )


async def load(url: str, headers: dict[str, str], scale: Scale, script: Path) -> Load:
    """wrk on url for the scale's duration, over its connections, with the counting script."""
    output = await run_tool(
        "wrk",
        "-t2",
        f"-c{scale.connections}",
        f"-d{scale.seconds}s",
        "-s",
        str(script),
        *header_options(headers),
        url,
    )
    return parse_wrk(output)


async def argon2_verifications(client: httpx.AsyncClient, registry: Registry) -> float:
    metrics = (await client.get(f"{registry.url}/metrics")).text
    found = re.search(r"^quayside_argon2_verifications_total ([\d.e+]+)$", metrics, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def rows(
    scale: Scale, basic: Load, bearer: Load, verifications: float, rss_growth_mb: tuple[float, float]
) -> list[Row]:
    """The table; ``rss_growth_mb`` is the server's peak RSS growth during the Basic and first bearer run."""

    def row(metric: str, ours: float, theirs: float, target: str, met: bool) -> Row:
        return Row(metric=metric, basic=ours, bearer=theirs, target=target, met=met)

    ratio = basic.requests_per_s / bearer.requests_per_s
    return [
        row(
            f"manifest GET c={scale.connections} (req/s)",
            basic.requests_per_s,
            bearer.requests_per_s,
            f">= 0.8x ({ratio:.2f}x)",
            ratio >= 0.8,
        ),
        row("p50 latency (ms)", basic.p50_ms, bearer.p50_ms, "-", True),
        row("p99 latency (ms)", basic.p99_ms, bearer.p99_ms, "<= 50 ms", basic.p99_ms <= 50),
        row("max latency (ms)", basic.max_ms, bearer.max_ms, "-", True),
        row(
            "worst 1-s window (req)",
            basic.worst_second,
            bearer.worst_second,
            ">= 0.5x mean",
            basic.worst_second >= 0.5 * basic.mean_second,
        ),
        row(
            "argon2 verifications during the run",
            verifications,
            0,
            f"<= {scale.seconds // 20 + 1} (refreshes)",
            verifications <= scale.seconds // 20 + 1,
        ),
        # Each argon2 verification holds its 64 MiB memory cost; the pool runs ARGON2_THREADS at most.
        row("server RSS growth (MB)", *rss_growth_mb, "< 150 MB", rss_growth_mb[0] < 150),
    ]


def render(scale: Scale, table: list[Row]) -> str:
    header = f"{'metric':<38} {'Basic':>10} {'Bearer':>10}  {'target':<18} met"
    lines = [f"{scale.seconds} s per run, wrk -t2 -c{scale.connections}", header, "-" * len(header)]
    for row in table:
        lines.append(
            f"{row.metric:<38} {row.basic:>10.1f} {row.bearer:>10.1f}  {row.target:<18} {'yes' if row.met else 'NO'}"
        )
    return "\n".join(lines)


async def main(scale: Scale) -> None:
    await ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="quayside-bench-auth-") as work:
        work_dir = Path(work)
        script = work_dir / "count.lua"
        await asyncio.to_thread(script.write_text, _WRK_SCRIPT)
        async with quayside(work_dir) as registry, httpx.AsyncClient(timeout=60) as client:
            await push_small_image(registry, work_dir)
            url = f"{registry.url}/v2/{registry.namespace}/image/manifests/{_TAG}"
            bearer_headers = {**await registry.authorization(client, "image"), **_ACCEPT}
            basic_headers = {**basic_authorization(registry), **_ACCEPT}
            for headers in (bearer_headers, basic_headers):  # warm: the first Basic GET verifies once
                (await client.get(url, headers=headers)).raise_for_status()
            # Bearer runs before and after the Basic one: the machine's other load shifts between runs.
            print(f"bearer, basic, bearer: wrk for {scale.seconds} s each...", file=sys.stderr)
            async with rss_peak_growth(registry.server.pid) as bearer_growth:
                bearer_before = await load(url, bearer_headers, scale, script)
            before = await argon2_verifications(client, registry)
            async with rss_peak_growth(registry.server.pid) as growth:
                basic = await load(url, basic_headers, scale, script)
            verifications = await argon2_verifications(client, registry) - before
            bearer_after = await load(url, bearer_headers, scale, script)
        peer = await distribution_load(work_dir, scale, script)
    bearer = mean_load(bearer_before, bearer_after)
    table = rows(scale, basic, bearer, verifications, (growth[0] / 1e6, bearer_growth[0] / 1e6))
    print(render(scale, table))
    print(render_peer(peer))


async def distribution_load(work_dir: Path, scale: Scale, script: Path) -> Load:
    """The same wrk run against Distribution (no auth) serving the same image: what this machine
    lets a registry's latency be at these connections."""
    print("distribution: wrk...", file=sys.stderr)
    layout_dir = work_dir / "distribution"
    layout_dir.mkdir()
    async with distribution(work_dir) as theirs:
        await push_small_image(theirs, layout_dir)
        return await load(
            f"{theirs.url}/v2/{theirs.namespace}/image/manifests/{_TAG}", _ACCEPT, scale, script
        )


def render_peer(peer: Load) -> str:
    return (
        f"Distribution, same machine and wrk (no auth; for reference): {peer.requests_per_s:.1f} req/s,"
        f" p50 {peer.p50_ms:.1f} ms, p99 {peer.p99_ms:.1f} ms, max {peer.max_ms:.1f} ms"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10 s runs instead of 60 s")
    asyncio.run(main(QUICK if parser.parse_args().quick else FULL))
