"""Two registries that share nothing: `source_registry` and `target_registry`, each a server process
with its own database and storage folder; an archive file is their only link.

They serve every test of a module (starting and stopping a registry costs seconds); each test works
in namespaces of its own, made fresh, so no test sees another's content.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tests.fixtures.live_registry import REPOSITORY_ROOT, LiveRegistry, server_environment, serving_registry
from tests.fixtures.postgres import TemplateCopies, _dsn_for
from tests.support.process import ServerProcess, free_port


@asynccontextmanager
async def _registry(template_copies: TemplateCopies, storage: Path) -> AsyncIterator[LiveRegistry]:
    name = await template_copies.take()
    database_url = _dsn_for(name)
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


@pytest.fixture(scope="module")
async def source_registry(
    template_copies: TemplateCopies, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LiveRegistry]:
    async with _registry(template_copies, tmp_path_factory.mktemp("source-storage")) as registry:
        yield registry


@pytest.fixture(scope="module")
async def target_registry(
    template_copies: TemplateCopies, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LiveRegistry]:
    async with _registry(template_copies, tmp_path_factory.mktemp("target-storage")) as registry:
        yield registry
