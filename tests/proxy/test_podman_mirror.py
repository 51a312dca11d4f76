"""podman pulls an upstream image by its own name; a registries.conf mirror entry sends it to the cache."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.proxy.conftest import Cache

pytestmark = pytest.mark.skipif(shutil.which("podman") is None, reason="podman is installed by scripts/test")


def registries_conf(upstream: str, mirror: str) -> str:
    """The README's recipe: pulls of upstream/... try the cache organization first."""
    return (
        "unqualified-search-registries = []\n\n"
        "[[registry]]\n"
        f'prefix = "{upstream}"\n'
        f'location = "{upstream}"\n'
        "insecure = true\n\n"
        "[[registry.mirror]]\n"
        f'location = "{mirror}"\n'
        "insecure = true\n"
    )


async def podman(root: Path, env: dict[str, str], *args: str) -> tuple[int, str]:
    """podman with its own storage below root and the given environment."""
    process = await asyncio.create_subprocess_exec(
        "podman",
        "--root",
        str(root / "storage"),
        "--runroot",
        str(root / "run"),
        "--storage-driver",
        "vfs",
        "--cgroup-manager",
        "cgroupfs",
        "--events-backend",
        "file",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    try:
        async with asyncio.timeout(120):
            output, _ = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


async def test_podman_pull_redirected_by_registries_conf_lands_in_cache(cache: Cache) -> None:
    pushed = await cache.push_image("app", "v1")
    # podman refuses a run root path longer than 50 characters: below /tmp, not pytest's tmp_path.
    root = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="qs-podman-"))
    try:
        conf = root / "registries.conf"
        await asyncio.to_thread(
            conf.write_text, registries_conf(cache.upstream.host, f"{cache.registry.host}/{cache.org}")
        )
        auth = root / "auth.json"
        token = base64.b64encode(cache.creds.encode()).decode()
        await asyncio.to_thread(
            auth.write_text, json.dumps({"auths": {cache.registry.host: {"auth": token}}})
        )
        env = {**os.environ, "CONTAINERS_REGISTRIES_CONF": str(conf), "REGISTRY_AUTH_FILE": str(auth)}
        code, output = await podman(
            root, env, "pull", f"{cache.upstream.host}/{cache.upstream_name('app')}:v1"
        )
    finally:
        await asyncio.to_thread(shutil.rmtree, root, ignore_errors=True)

    assert code == 0, output
    cached = await cache.registry.pool.fetchval(
        "SELECT t.name FROM tag t JOIN manifest m ON m.id = t.manifest_id JOIN repository r ON r.id = t.repository_id"
        " JOIN namespace n ON n.id = r.namespace_id WHERE n.name = $1 AND r.name = $2 AND m.digest = $3",
        cache.org,
        cache.upstream_name("app"),
        pushed,
    )
    assert cached == "v1"
    assert cache.counter.blob_fetches, "the cache fetched the layers from the upstream"
