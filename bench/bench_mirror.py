"""Repository mirroring: Quayside's mirror service against `skopeo sync` of the same upstream repository.

Run from the repository root: `python bench/bench_mirror.py [--tags N] [--quick]`. See bench/README.md
for what is measured and how. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from pydantic import BaseModel

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
# Run as a script, the repository root is not on sys.path; the test support modules live there.
sys.path.insert(0, str(REPOSITORY_ROOT))

from bench.benchdb import bench_database  # noqa: E402
from shared.auth.accounts import create_organization, create_robot, create_user  # noqa: E402
from shared.auth.api_tokens import create_api_token  # noqa: E402
from tests.fixtures.upstream import ImageFactory, Upstream, running_upstream  # noqa: E402
from tests.support.process import ServerProcess, free_port  # noqa: E402
from tests.support.skopeo import run_skopeo  # noqa: E402

KiB = 1024
UPSTREAM_REPOSITORY = "library/app"
# Every image: these base layers (shared by all) and one small layer and config of its own.
BASE_LAYER_SIZES = (4096 * KiB, 2048 * KiB, 1024 * KiB)
OWN_LAYER_SIZE = 32 * KiB
_POLL_S = 0.05
_SYNC_TIMEOUT_S = 600.0


class Figures(BaseModel):
    """One sync as the upstream saw it: how long, how many blob bytes, the most fetches of one blob."""

    seconds: float
    blob_bytes: int
    most_fetches_of_a_blob: int
    blobs_fetched: int


@dataclass
class Suite:
    registry_url: str
    registry_host: str
    mirror_url: str
    owner: tuple[str, str]
    # An API token of the owner: Basic would verify the password (argon2) on every poll.
    api_token: str
    organization: str
    robot: str


def environment(database_url: str, token_secret: str, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("QUAYSIDE_")}
    env.update(QUAYSIDE_DATABASE_URL=database_url, QUAYSIDE_TOKEN_SECRET=token_secret, **extra)
    return env


@contextlib.asynccontextmanager
async def server(args: list[str], env: dict[str, str], ready_url: str) -> AsyncIterator[ServerProcess]:
    process = await ServerProcess.start(args, env, REPOSITORY_ROOT)
    try:
        await process.wait_until_serving(ready_url, accepted=frozenset({200, 401}))
        yield process
    finally:
        await process.stop()


@contextlib.asynccontextmanager
async def quayside(work_dir: Path) -> AsyncIterator[Suite]:
    """The registry and the mirror service (one worker) as processes, with an organization, its
    owner and a robot."""
    async with bench_database() as database_url:
        token_secret = uuid.uuid4().hex
        owner = ("benchuser", uuid.uuid4().hex)
        conn = await asyncpg.connect(database_url)
        try:
            user = await create_user(conn, *owner)
            api_token = (await create_api_token(conn, user.id, "bench", ["repo:admin"], None)).token
            namespace_id = await create_organization(conn, "bench", owner[0])
            robot = (await create_robot(conn, "bench", "mirror")).username
            # The repository to mirror into (the mirror API configures an existing one).
            await conn.execute("INSERT INTO repository (namespace_id, name) VALUES ($1, 'app')", namespace_id)
            await create_organization(conn, "skopeo", owner[0])
        finally:
            await conn.close()
        registry_port, mirror_port = free_port(), free_port()
        storage = json.dumps({"local": {"driver": "filesystem", "root": str(work_dir / "storage")}})
        registry_env = environment(
            database_url,
            token_secret,
            QUAYSIDE_LISTEN=f"127.0.0.1:{registry_port}",
            QUAYSIDE_STORAGE_LOCATIONS=storage,
            QUAYSIDE_STORAGE_PREFERENCE="local",
        )
        mirror_env = environment(
            database_url,
            token_secret,
            QUAYSIDE_LISTEN=f"127.0.0.1:{mirror_port}",
            QUAYSIDE_REGISTRY_URL=f"http://127.0.0.1:{registry_port}",
            QUAYSIDE_MIRROR_WORKERS="1",
            QUAYSIDE_REPO_MIRROR_INTERVAL_S="0.2",
        )
        registry_url, mirror_url = f"http://127.0.0.1:{registry_port}", f"http://127.0.0.1:{mirror_port}"
        async with (
            server([sys.executable, "-m", "services.registry"], registry_env, f"{registry_url}/v2/"),
            server([sys.executable, "-m", "services.mirror"], mirror_env, f"{mirror_url}/health/instance"),
        ):
            yield Suite(
                registry_url, f"127.0.0.1:{registry_port}", mirror_url, owner, api_token, "bench", robot
            )


async def fill_upstream(upstream: Upstream, work_dir: Path, tags: int) -> dict[str, int]:
    """Push the tags; the blobs (configs and layers) of their images, with their sizes."""
    factory = await asyncio.to_thread(ImageFactory, work_dir / "layout", BASE_LAYER_SIZES)
    blobs: dict[str, int] = {}
    for number in range(tags):
        tag = f"v{number:03d}"
        manifest = await asyncio.to_thread(factory.tagged_image, tag, OWN_LAYER_SIZE)
        await upstream.push(factory.layout, tag, UPSTREAM_REPOSITORY)
        document = json.loads(await asyncio.to_thread(factory.layout.read_blob, manifest.digest))
        for descriptor in (document["config"], *document["layers"]):
            blobs[descriptor["digest"]] = descriptor["size"]
        if number % 20 == 19:
            print(f"  {number + 1} tags pushed upstream", file=sys.stderr)
    return blobs


def figures(upstream: Upstream, seconds: float) -> Figures:
    fetches = upstream.proxy.blob_fetches
    return Figures(
        seconds=seconds,
        blob_bytes=upstream.proxy.total_blob_bytes,
        most_fetches_of_a_blob=max(fetches.values(), default=0),
        blobs_fetched=len(fetches),
    )


async def mirror_sync(client: httpx.AsyncClient, suite: Suite, upstream: Upstream) -> Figures:
    """Ask for a sync and wait for it; the time is the worker's, from claim to release."""
    path = f"/api/v1/repository/{suite.organization}/app/mirror"
    upstream.proxy.reset_counts()
    previous = (await client.get(path)).json()["last_sync"]
    (await client.post(f"{path}/sync-now")).raise_for_status()
    async with asyncio.timeout(_SYNC_TIMEOUT_S):
        while True:
            view: dict[str, Any] = (await client.get(path)).json()
            if view["last_sync"] != previous and view["sync_status"] not in ("SYNC_NOW", "SYNCING"):
                break
            await asyncio.sleep(_POLL_S)
    last = view["last_sync"]
    if last["status"] != "SUCCESS":
        raise RuntimeError(f"the mirror sync failed: {last['error']}")
    seconds = (
        datetime.fromisoformat(last["finished_at"]) - datetime.fromisoformat(last["started_at"])
    ).total_seconds()
    return figures(upstream, seconds)


async def skopeo_sync(suite: Suite, upstream: Upstream) -> Figures:
    """`skopeo sync` of every tag into the 'skopeo' organization, timed around the process."""
    upstream.proxy.reset_counts()
    started = time.perf_counter()
    result = await run_skopeo(
        "sync", "--src", "docker", "--dest", "docker",
        "--src-tls-verify=false", "--dest-tls-verify=false", "--dest-creds", ":".join(suite.owner),
        upstream.reference(UPSTREAM_REPOSITORY), f"{suite.registry_host}/skopeo",
        timeout_s=_SYNC_TIMEOUT_S,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    result.check()
    return figures(upstream, seconds)


async def measure(work_dir: Path, tags: int) -> tuple[dict[str, Figures], int, int]:
    """({measurement: figures}, unique blob count, unique blob bytes)."""
    async with running_upstream(work_dir / "upstream") as upstream, quayside(work_dir) as suite:
        print(f"pushing {tags} tags upstream with skopeo...", file=sys.stderr)
        unique = await fill_upstream(upstream, work_dir, tags)
        body = {
            "external_reference": upstream.reference(UPSTREAM_REPOSITORY),
            "sync_interval": 86400,
            "sync_start_date": "2999-01-01T00:00:00Z",
            "robot_username": suite.robot,
            "root_rule": {"rule_kind": "tag_glob_csv", "rule_value": ["*"]},
            "external_registry_config": {"verify_tls": False},
        }
        headers = {"Authorization": f"Bearer {suite.api_token}"}
        async with httpx.AsyncClient(base_url=suite.mirror_url, headers=headers, timeout=30) as client:
            (
                await client.post(f"/api/v1/repository/{suite.organization}/app/mirror", json=body)
            ).raise_for_status()
            print("mirror: first sync...", file=sys.stderr)
            first = await mirror_sync(client, suite, upstream)
            print("mirror: re-sync...", file=sys.stderr)
            again = await mirror_sync(client, suite, upstream)
        print("skopeo sync: first...", file=sys.stderr)
        skopeo_first = await skopeo_sync(suite, upstream)
        print("skopeo sync: again...", file=sys.stderr)
        skopeo_again = await skopeo_sync(suite, upstream)
    measured = {"first": first, "again": again, "skopeo_first": skopeo_first, "skopeo_again": skopeo_again}
    return measured, len(unique), sum(unique.values())


class Row(BaseModel):
    metric: str
    mirror: float
    skopeo: float
    target: str
    met: bool

    @property
    def ratio(self) -> float:
        return self.mirror / self.skopeo if self.skopeo else float("inf")


def rows(measured: dict[str, Figures], unique_count: int, unique_bytes: int) -> list[Row]:
    first, again = measured["first"], measured["again"]
    skopeo_first, skopeo_again = measured["skopeo_first"], measured["skopeo_again"]
    mib = 1024 * 1024
    return [
        Row(
            metric="first sync (s)",
            mirror=first.seconds,
            skopeo=skopeo_first.seconds,
            target="<= 1.0x",
            met=first.seconds <= skopeo_first.seconds,
        ),
        Row(
            metric=f"first sync blob MiB (unique: {unique_bytes / mib:.1f})",
            mirror=first.blob_bytes / mib,
            skopeo=skopeo_first.blob_bytes / mib,
            target="= unique",
            met=first.blob_bytes == unique_bytes,
        ),
        Row(
            metric=f"first sync blobs fetched (unique: {unique_count})",
            mirror=first.blobs_fetched,
            skopeo=skopeo_first.blobs_fetched,
            target="= unique",
            met=first.blobs_fetched == unique_count,
        ),
        Row(
            metric="first sync most fetches of one blob",
            mirror=first.most_fetches_of_a_blob,
            skopeo=skopeo_first.most_fetches_of_a_blob,
            target="1",
            met=first.most_fetches_of_a_blob == 1,
        ),
        Row(
            metric="re-sync, nothing changed (s)",
            mirror=again.seconds,
            skopeo=skopeo_again.seconds,
            target="< 2 s",
            met=again.seconds < 2.0,
        ),
        Row(
            metric="re-sync blob bytes",
            mirror=again.blob_bytes,
            skopeo=skopeo_again.blob_bytes,
            target="0",
            met=again.blob_bytes == 0,
        ),
    ]


def render(table: list[Row]) -> str:
    header = f"{'metric':<44} {'mirror':>9} {'skopeo sync':>12} {'ratio':>7}  {'target':<9} met"
    lines = [header, "-" * len(header)]
    for row in table:
        ratio = f"{row.ratio:>6.2f}x" if row.skopeo else f"{'-':>7}"
        lines.append(
            f"{row.metric:<44} {row.mirror:>9.2f} {row.skopeo:>12.2f} {ratio}  {row.target:<9} {'yes' if row.met else 'NO'}"
        )
    return "\n".join(lines)


async def main(tags: int) -> None:
    with tempfile.TemporaryDirectory(prefix="quayside-bench-mirror-") as work:
        measured, unique_count, unique_bytes = await measure(Path(work), tags)
    print(f"{tags} tags sharing {len(BASE_LAYER_SIZES)} base layers, each with a layer and config of its own")
    print(render(rows(measured, unique_count, unique_bytes)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tags", type=int, default=100, help="tags in the upstream repository (default 100)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 10 tags")
    arguments = parser.parse_args()
    asyncio.run(main(10 if arguments.quick else arguments.tags))
