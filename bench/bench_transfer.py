"""Air-gapped transfer: `quayside export` / `quayside import` against `skopeo copy` to and from `oci-archive:`.

Run from the repository root: `python bench/bench_transfer.py [--quick]`. See bench/README.md for
what is measured and how. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path

import psutil
from pydantic import BaseModel

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY_ROOT))

from bench.bench_registry import Registry, quayside, rss_peak_growth  # noqa: E402
from quayside.transfer.client import RegistryClient  # noqa: E402
from quayside.transfer.exporter import Selection, export_archive  # noqa: E402
from quayside.transfer.importer import import_archive  # noqa: E402
from tests.support.ocilayout import OciLayout  # noqa: E402
from tests.support.skopeo import run_skopeo  # noqa: E402

MiB = 1024 * 1024
_SAMPLE_S = 0.02


class Scale(BaseModel):
    images: int
    layers_per_image: int
    layer_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.images * self.layers_per_image * self.layer_bytes


FULL = Scale(images=20, layers_per_image=10, layer_bytes=10 * MiB)  # 200 layers, ~2 GiB
QUICK = Scale(images=20, layers_per_image=10, layer_bytes=MiB)  # 200 layers, ~200 MiB


class Run(BaseModel):
    seconds: float
    rss_growth_mb: float


def build_layout(root: Path, scale: Scale) -> OciLayout:
    """One OCI layout with `images` images of random (incompressible) gzip'd layers (blocking)."""
    layout = OciLayout(root)
    for number in range(scale.images):
        layout.tag(layout.add_image([scale.layer_bytes] * scale.layers_per_image), f"t{number}")
    return layout


async def timed_process(*args: str) -> Run:
    """Run a command to completion, sampling its process tree's RSS; its wall time and RSS growth."""
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        *args, cwd=REPOSITORY_ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    async with rss_peak_growth(process.pid) as growth:
        output, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:3])} failed: {output.decode(errors='replace')[-2000:]}")
    return Run(seconds=time.perf_counter() - started, rss_growth_mb=growth[0] / MiB)


async def own_run(operation: Awaitable[object]) -> Run:
    """Await an export or import in this process, sampling this process's RSS alone (the
    registries are other processes): wall time and peak growth over the RSS before it started."""
    me = psutil.Process()
    baseline = peak = me.memory_info().rss
    started = time.perf_counter()
    task = asyncio.ensure_future(operation)
    while not task.done():
        peak = max(peak, me.memory_info().rss)
        await asyncio.wait([task], timeout=_SAMPLE_S)
    task.result()
    return Run(
        seconds=time.perf_counter() - started,
        rss_growth_mb=(max(peak, me.memory_info().rss) - baseline) / MiB,
    )


async def skopeo_runs(pairs: list[tuple[str, str]], *auth: str) -> Run:
    """skopeo copy for each (source, destination), one after another: total time, largest RSS growth."""
    total, worst = 0.0, 0.0
    for source, destination in pairs:
        run = await timed_process(
            "skopeo", "--insecure-policy", "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
            *auth, source, destination,
        )  # fmt: skip
        total += run.seconds
        worst = max(worst, run.rss_growth_mb)
    return Run(seconds=total, rss_growth_mb=worst)


def client(registry: Registry) -> RegistryClient:
    assert registry.credentials is not None
    return RegistryClient(registry.url, *registry.credentials)


async def main(scale: Scale) -> None:
    with tempfile.TemporaryDirectory(prefix="quayside-bench-transfer-") as work:
        work_dir = Path(work)
        layout_dir = work_dir / "layout"
        await asyncio.to_thread(build_layout, layout_dir, scale)
        async with quayside(work_dir / "source") as source, quayside(work_dir / "target") as target:
            assert source.credentials is not None and target.credentials is not None
            src_creds = "--dest-creds={}:{}".format(*source.credentials)
            for number in range(scale.images):
                (
                    await run_skopeo(
                        "copy", "--dest-tls-verify=false", src_creds, f"oci:{layout_dir}:t{number}",
                        f"docker://127.0.0.1:{source.port}/bench/set:t{number}",
                    )
                ).check()  # fmt: skip

            archive = work_dir / "export.tar"
            async with client(source) as exporting:
                ours_export = await own_run(
                    export_archive(
                        exporting, archive, selections=[Selection.parse("bench/set")], show_progress=False
                    )
                )
            async with client(target) as importing:
                ours_import = await own_run(import_archive(importing, archive, show_progress=False))
            archives = [work_dir / f"skopeo-{number}.tar" for number in range(scale.images)]
            theirs_export = await skopeo_runs(
                [
                    (
                        f"docker://127.0.0.1:{source.port}/bench/set:t{number}",
                        f"oci-archive:{path}:bench/set:t{number}",
                    )
                    for number, path in enumerate(archives)
                ],
                "--src-creds={}:{}".format(*source.credentials),
            )
            theirs_import = await skopeo_runs(
                [
                    (
                        f"oci-archive:{path}:bench/set:t{number}",
                        f"docker://127.0.0.1:{target.port}/bench/skopeo:t{number}",
                    )
                    for number, path in enumerate(archives)
                ],
                "--dest-creds={}:{}".format(*target.credentials),
            )
            archive_mb = archive.stat().st_size / MiB
    megabytes = scale.total_bytes / MiB
    rows = [
        ("export MB/s", megabytes / ours_export.seconds, megabytes / theirs_export.seconds, "≥ 1.0x"),
        ("import MB/s", megabytes / ours_import.seconds, megabytes / theirs_import.seconds, "≥ 1.0x"),
        ("export RSS growth MB", ours_export.rss_growth_mb, theirs_export.rss_growth_mb, "< 100 MB"),
        ("import RSS growth MB", ours_import.rss_growth_mb, theirs_import.rss_growth_mb, "< 100 MB"),
    ]
    print(
        f"{scale.images} images x {scale.layers_per_image} layers x {scale.layer_bytes // MiB} MiB"
        f" = {megabytes:.0f} MiB of layers; quayside archive {archive_mb:.0f} MiB"
    )
    print(f"{'metric':<22} {'quayside':>10} {'skopeo':>10} {'ratio':>7}  target    met")
    for metric, ours, theirs, target_text in rows:
        if "MB/s" in metric:
            ratio = ours / theirs
            met = ratio >= 1.0
            ratio_text = f"{ratio:.2f}x"
        else:
            met, ratio_text = ours < 100, ""
        print(
            f"{metric:<22} {ours:>10.1f} {theirs:>10.1f} {ratio_text:>7}  {target_text:<9} {'yes' if met else 'no'}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="~200 MiB instead of ~2 GiB")
    asyncio.run(main(QUICK if parser.parse_args().quick else FULL))
