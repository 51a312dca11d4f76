"""Running a garbage-collection pass over an in-process registry, as the gc worker would."""

from __future__ import annotations

from services.gc.passes import PassOptions, PassOutcome, run_pass
from tests.fixtures.registry import Registry


async def collect_garbage(registry: Registry, options: PassOptions | None = None) -> PassOutcome:
    """One pass now over the registry's database and storage; fails when it could not run."""
    context = registry.context
    outcome = await run_pass(context.pool, context.locations, context.settings, options)
    assert outcome.record is not None, outcome.reason
    return outcome
