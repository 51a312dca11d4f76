from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.cli.helpers import REPO_ROOT, clean_env, stop_leftover_postgres
from tests.support.process import ServerProcess, free_port

# A first start runs initdb; on a loaded machine that takes a while.
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 60.0


class EmbeddedInstall:
    """`quayside up` on a data folder of the test's own, on a free port."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.gateway_port = free_port()
        self._servers: list[ServerProcess] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, **extra: str) -> dict[str, str]:
        """A clean environment pointing at this install; extra variables override."""
        own = {
            "QUAYSIDE_DATA_DIR": str(self.data_dir),
            "QUAYSIDE_LISTEN": f"127.0.0.1:{self.port}",
            "QUAYSIDE_GATEWAY_LISTEN": f"127.0.0.1:{self.gateway_port}",
        }
        return clean_env(**{**own, **extra})

    async def start(self, **extra_env: str) -> ServerProcess:
        """Run `quayside up` until GET /v2/ answers 401 (serving, anonymous refused)."""
        server = await ServerProcess.start(
            [sys.executable, "-m", "quayside", "up"], self.env(**extra_env), REPO_ROOT
        )
        self._servers.append(server)
        await server.wait_until_serving(
            f"{self.base_url}/v2/", accepted=frozenset({401}), timeout_s=START_TIMEOUT_S
        )
        return server

    async def stop(self, server: ServerProcess) -> int:
        """SIGTERM the server; its exit status (-9 when it had to be killed)."""
        await server.stop(timeout_s=STOP_TIMEOUT_S)
        assert server.process.returncode is not None
        return server.process.returncode

    async def close(self) -> None:
        for server in self._servers:
            await server.stop()
        await stop_leftover_postgres(self.data_dir / "postgres")


@pytest.fixture
async def install() -> AsyncIterator[EmbeddedInstall]:
    # Not below pytest's tmp_path: as root, the embedded PostgreSQL runs as the `pgserver` user,
    # which must traverse every parent folder, and pytest makes its base folder private again.
    root = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="quayside-cli-"))
    embedded = EmbeddedInstall(root / "data")
    try:
        yield embedded
    finally:
        await embedded.close()
        await asyncio.to_thread(shutil.rmtree, root)
