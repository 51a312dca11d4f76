"""Fixtures for garbage-collection tests: registries on filesystem and S3 storage, passes run
directly (with a controllable clock and grace window), and scans of storage against the database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from services.gc.passes import PassOptions, PassOutcome
from shared.config import S3Location
from tests.fixtures.registry import Account, Registry, registry_settings
from tests.support.gc import collect_garbage
from tests.support.registry_app import running_registry


@dataclass
class Collector:
    """Runs garbage-collection passes over a registry's database and storage locations."""

    registry: Registry

    async def run(self, *, dry_run: bool = False, days_later: float = 0, grace_s: int = 0) -> PassOutcome:
        """A pass as if run ``days_later`` days from now, keeping unreferenced content ``grace_s``."""
        now: datetime = await self.registry.context.pool.fetchval("SELECT now()")
        options = PassOptions(dry_run=dry_run, now=now + timedelta(days=days_later), grace_s=grace_s)
        return await collect_garbage(self.registry, options)


@pytest.fixture(params=["filesystem", "s3"])
async def storage_registry(
    request: pytest.FixtureRequest, database_url: str, tmp_path: Path
) -> AsyncIterator[Registry]:
    """The registry app on filesystem storage, then on S3 (SeaweedFS)."""
    settings = registry_settings(database_url, tmp_path / "storage")
    if request.param == "s3":
        location: S3Location = request.getfixturevalue("s3_location")
        settings = settings.model_copy(
            update={"storage_locations": {"s3": location}, "storage_preference": ["s3"]}
        )
    async with running_registry(settings) as registry:
        yield registry


@pytest.fixture
def collector(registry: Registry) -> Collector:
    return Collector(registry)


@pytest.fixture
async def owner(registry: Registry) -> Account:
    return await registry.user()
