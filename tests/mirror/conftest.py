"""Fixtures of the mirroring tests: the mirror service in-process on the test's database, with the
registry as a live server (`live_registry`) where syncs push, and upstream registries
(tests.fixtures.upstream)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fixtures.live_registry import LiveRegistry
from tests.fixtures.upstream import auth_upstream, upstream
from tests.mirror.helpers import TOKEN_SECRET, MirrorService, running_mirror_service

__all__ = ["auth_upstream", "upstream"]


@pytest.fixture
def live_registry_env() -> dict[str, str]:
    """The live registry shares its token secret with the mirror (which mints its robots' tokens)."""
    return {"QUAYSIDE_TOKEN_SECRET": TOKEN_SECRET}


@pytest.fixture
async def mirror_api(database_url: str) -> AsyncIterator[MirrorService]:
    """The mirror app alone (no workers, no registry): for API tests."""
    async with running_mirror_service(database_url, "http://127.0.0.1:9") as service:
        yield service


@pytest.fixture
async def mirror(live_registry: LiveRegistry) -> AsyncIterator[MirrorService]:
    """The mirror app on the live registry's database, pushing to it; start workers with `.workers()`."""
    async with running_mirror_service(live_registry.database_url, live_registry.url) as service:
        yield service
