"""Backup and restore throughput, against the manual procedure of seed 004 (pg_dump plus a copy of
the storage folder); and the cost of the read-only check on a write.

    python bench/bench_backup.py            # 100 images of 2 x 2 MiB layers (~400 MiB)
    python bench/bench_backup.py --quick    # 20 images of 2 x 256 KiB

Not part of the test suite; it prints one table. Filesystem storage in a temporary folder, a fresh
database on QUAYSIDE_BENCH_PG (dropped at the end), the registry app in-process for the pushes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.benchdb import ADMIN_DSN, bench_database, local_settings
from quayside.backup.archive import BackupFolder, InstallConfig
from quayside.backup.dump import Installation, pg_tool, run_tool, take_backup
from quayside.backup.restore import restore_server
from services.registry.app import create_app
from shared.auth.accounts import create_user
from shared.config import FilesystemLocation, Settings, StorageLocation
from shared.db import create_pool
from shared.readonly_state import registry_read_only
from tests.support.oci import push_image, random_image


async def _fill(settings: Settings, images: int, layer_size: int) -> int:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with app.state.context.pool.acquire() as conn:
            await create_user(conn, "bench", "bench-password")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://b", auth=("bench", "bench-password")
        ) as client:
            semaphore = asyncio.Semaphore(4)

            async def push(number: int) -> None:
                async with semaphore:
                    await push_image(client, "bench/app", random_image(2, layer_size), f"t{number}")

            await asyncio.gather(*(push(number) for number in range(images)))
    return images * 2 * layer_size


async def _timed(coroutine: object) -> float:
    started = time.perf_counter()
    await coroutine  # type: ignore[misc]
    return time.perf_counter() - started


async def _peer_backup(database_url: str, storage: Path, dest: Path) -> None:
    """Seed 004's way: pg_dump, then a copy of the storage (aws s3 sync there; cp -a here)."""
    await asyncio.to_thread(dest.mkdir)
    await run_tool(
        [pg_tool("pg_dump"), "--format=custom", f"--file={dest / 'db.dump'}", f"--dbname={database_url}"]
    )
    await run_tool(["cp", "-a", str(storage), str(dest / "storage")])


async def _check_cost(database_url: str, refresh_s: float, calls: int) -> float:
    pool = await create_pool(database_url, max_size=2)
    settings = Settings(database_url=database_url, registry_state_refresh_s=refresh_s)
    try:
        started = time.perf_counter()
        for _ in range(calls):
            await registry_read_only(pool, settings)
        return (time.perf_counter() - started) / calls * 1e6
    finally:
        await pool.close()


async def main(quick: bool) -> None:
    images, layer_size = (20, 256 * 1024) if quick else (100, 2 * 1024 * 1024)
    work = Path(tempfile.mkdtemp(prefix="quayside-bench-backup-"))
    try:
        async with bench_database() as database_url:
            storage = work / "storage"
            settings = local_settings(database_url, storage)
            total = await _fill(settings, images, layer_size)
            config = InstallConfig(
                token_secret=settings.token_secret,
                secrets_key=None,
                storage_locations=settings.storage_locations,
                storage_preference=["local"],
            )
            source = Installation(database_url=database_url, config=config, embedded=False)
            ours = await _timed(take_backup(source, BackupFolder(work / "backup")))
            peer = await _timed(_peer_backup(database_url, storage, work / "peer"))
            target_name = f"qs_bench_restore_{uuid.uuid4().hex[:12]}"
            admin = await asyncpg.connect(ADMIN_DSN)
            try:
                await admin.execute(f'CREATE DATABASE "{target_name}"')
                base, _, _ = ADMIN_DSN.rpartition("/")
                target: dict[str, StorageLocation] = {
                    "local": FilesystemLocation(root=str(work / "restored"))
                }
                restore = await _timed(
                    restore_server(BackupFolder(work / "backup"), f"{base}/{target_name}", target, ["local"])
                )
            finally:
                await admin.execute(f'DROP DATABASE IF EXISTS "{target_name}" WITH (FORCE)')
                await admin.close()
            cached = await _check_cost(database_url, 1.0, 20_000)
            uncached = await _check_cost(database_url, 0.0, 2_000)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    megabytes = total / 1e6
    rows = [
        ("content", f"{images} images, {images * 2} layers, {megabytes:.0f} MB", "", ""),
        (
            "backup s (MB/s)",
            f"{ours:.2f} ({megabytes / ours:.0f})",
            f"{peer:.2f} ({megabytes / peer:.0f})",
            f"{peer / ours:.2f}x",
        ),
        ("backup consistent under pushes", "yes (snapshot + lease)", "no", ""),
        ("backup verified", "digests while copying, sizes after", "no", ""),
        ("restore + verify s (MB/s)", f"{restore:.2f} ({megabytes / restore:.0f})", "manual steps", ""),
        ("read-only check, cached µs/call", f"{cached:.1f}", "", ""),
        ("read-only check, uncached µs/call", f"{uncached:.0f}", "", ""),
    ]
    print(f"{'metric':36} {'quayside':38} {'seed 004 (pg_dump + cp -a)':28} ratio")
    for metric, quayside, peer_value, ratio in rows:
        print(f"{metric:36} {quayside:38} {peer_value:28} {ratio}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    asyncio.run(main(parser.parse_args().quick))
