"""Fixtures for garbage-collection tests: the registry app with a user, and passes run directly."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pytest

from services.gc.passes import PassOptions, PassOutcome, run_pass
from tests.fixtures.registry import Account, Registry


@dataclass
class Collector:
    """Runs garbage-collection passes over the registry's database and storage locations."""

    registry: Registry

    async def run(self, *, dry_run: bool = False, now: datetime | None = None, grace_s: int = 0) -> PassOutcome:
        context = self.registry.context
        outcome = await run_pass(
            context.pool, context.locations, context.settings, PassOptions(dry_run=dry_run, now=now, grace_s=grace_s)
        )
        assert outcome.record is not None, outcome.reason
        return outcome


@pytest.fixture
def collector(registry: Registry) -> Collector:
    return Collector(registry)


@pytest.fixture
async def owner(registry: Registry) -> Account:
    return await registry.user()
