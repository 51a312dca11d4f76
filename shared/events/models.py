"""Event models: every event has an id, a time and a dotted routing key."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field


def _now() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    routing_key: ClassVar[str]

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    occurred_at: datetime = Field(default_factory=_now)


class BlobPushed(Event):
    routing_key: ClassVar[str] = "blob.pushed"

    namespace: str
    repository: str
    digest: str
    size: int
    location: str


class ManifestPushed(Event):
    routing_key: ClassVar[str] = "manifest.pushed"

    namespace: str
    repository: str
    digest: str
    media_type: str
    size: int
    tags: list[str] = Field(default_factory=list)
    pusher: str | None = None


EVENT_TYPES: dict[str, type[Event]] = {cls.routing_key: cls for cls in (BlobPushed, ManifestPushed)}


def parse_event(routing_key: str, body: bytes | str) -> Event:
    """Rebuild an event from its routing key and JSON body; KeyError for unknown keys."""
    return EVENT_TYPES[routing_key].model_validate_json(body)
