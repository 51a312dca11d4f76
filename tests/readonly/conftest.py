"""Fixtures of the read-only tests: the mirror service beside the live registry, an upstream."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fixtures.live_registry import LiveRegistry
from tests.fixtures.upstream import upstream
from tests.mirror.helpers import TOKEN_SECRET, MirrorService, running_mirror_service

__all__ = ["upstream"]


@pytest.fixture
def live_registry_env() -> dict[str, str]:
    """The live registry shares its token secret with the mirror (which mints its robots' tokens)."""
    return {"QUAYSIDE_TOKEN_SECRET": TOKEN_SECRET}


@pytest.fixture
async def mirror(live_registry: LiveRegistry) -> AsyncIterator[MirrorService]:
    async with running_mirror_service(live_registry.database_url, live_registry.url) as service:
        yield service
