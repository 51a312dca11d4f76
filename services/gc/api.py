"""The garbage-collection status API: the last passes and what each freed.

GET /api/v1/gc/status answers aggregate numbers only (counts, bytes per location, rows per
table), never names, as /metrics does; it is served by the gc service's own app.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from services.gc.passes import GcPass, recent_passes
from shared.config import Settings
from shared.storage import Locations

router = APIRouter(prefix="/api/v1/gc", tags=["garbage collection"])

MAX_PASSES = 100


@dataclass
class GcContext:
    settings: Settings
    pool: asyncpg.Pool
    locations: Locations


def get_gc_context(request: Request) -> GcContext:
    context: GcContext = request.app.state.gc
    return context


class GcSettingsView(BaseModel):
    garbage_collection: bool
    namespace_garbage_collection: bool
    repository_garbage_collection: bool
    frequency_s: float
    push_temp_tag_expiration_s: int


class GcStatus(BaseModel):
    settings: GcSettingsView
    passes: list[GcPass]


@router.get("/status")
async def gc_status(
    limit: int = Query(default=10, ge=1, le=MAX_PASSES, description="How many of the last passes"),
    context: GcContext = Depends(get_gc_context),
) -> GcStatus:
    """The switches in force and the last passes, newest first, with what each freed."""
    settings = context.settings
    return GcStatus(
        settings=GcSettingsView(
            garbage_collection=settings.feature_garbage_collection,
            namespace_garbage_collection=settings.feature_namespace_garbage_collection,
            repository_garbage_collection=settings.feature_repository_garbage_collection,
            frequency_s=settings.garbage_collection_frequency,
            push_temp_tag_expiration_s=settings.push_temp_tag_expiration_sec,
        ),
        passes=await recent_passes(context.pool, limit),
    )
