"""Extra in-process registry apps beside the `registry` fixture: the same database and storage
(a restarted or second replica), or other storage locations."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from services.registry.app import create_app
from shared.config import Settings
from tests.fixtures.registry import Registry


@asynccontextmanager
async def running_registry(settings: Settings) -> AsyncIterator[Registry]:
    """A registry app with its lifespan entered, on the given settings."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield Registry(app=app, settings=settings)
