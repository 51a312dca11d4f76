"""Two registries that share nothing: `live_registry` (the source) and `target_registry`, each a
server process with its own database and storage folder. An archive file is their only link."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fixtures.live_registry import REPOSITORY_ROOT, LiveRegistry, server_environment, serving_registry
from tests.fixtures.postgres import TemplateCopies, _dsn_for
from tests.support.process import ServerProcess, free_port


@pytest.fixture
async def target_registry(template_copies: TemplateCopies, tmp_path: Path) -> AsyncIterator[LiveRegistry]:
    name = await template_copies.take()
    database_url, storage = _dsn_for(name), tmp_path / "target-storage"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = await ServerProcess.start(
        [sys.executable, "-m", "services.registry"],
        server_environment(database_url, storage, port, {}),
        REPOSITORY_ROOT,
    )
    try:
        async with serving_registry(server, url, port, database_url, storage) as registry:
            await server.wait_until_serving(f"{url}/v2/", accepted=frozenset({200, 401}))
            yield registry
    finally:
        template_copies.release(name)
