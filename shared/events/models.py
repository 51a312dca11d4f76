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


class TagDeleted(Event):
    """A live tag was deleted (its row ended; restorable within the namespace's time machine)."""

    routing_key: ClassVar[str] = "tag.deleted"

    namespace: str
    repository: str
    tag: str
    digest: str
    performer: str | None = None


class TagExpired(Event):
    """A tag reached the expiration set on it (API or the `quay.expires-after` label)."""

    routing_key: ClassVar[str] = "tag.expired"

    namespace: str
    repository: str
    tag: str
    digest: str


class RepositoryDeleted(Event):
    routing_key: ClassVar[str] = "repository.deleted"

    namespace: str
    repository: str
    performer: str | None = None


class MirrorStarted(Event):
    """A mirror worker started syncing a MIRROR repository from its external reference."""

    routing_key: ClassVar[str] = "mirror.started"

    namespace: str
    repository: str
    external_reference: str


class MirrorSucceeded(Event):
    """A sync finished with every matching tag in place.

    ``tags`` were copied (new or changed upstream), ``tags_skipped`` already pointed at the upstream
    digest, ``tags_deleted`` no longer matched or no longer existed upstream; ``bytes_copied`` counts
    the blob bytes fetched from the upstream.
    """

    routing_key: ClassVar[str] = "mirror.succeeded"

    namespace: str
    repository: str
    external_reference: str
    tags: list[str] = Field(default_factory=list)
    tags_skipped: list[str] = Field(default_factory=list)
    tags_deleted: list[str] = Field(default_factory=list)
    bytes_copied: int = 0


class MirrorFailed(Event):
    """A sync failed (or was cancelled): ``error`` says why, the lists say what happened to the tags.

    ``tags`` were copied and stay (best effort) or were put back (``rolled_back``), ``tags_failed``
    could not be copied and kept their earlier state.
    """

    routing_key: ClassVar[str] = "mirror.failed"

    namespace: str
    repository: str
    external_reference: str
    error: str
    tags: list[str] = Field(default_factory=list)
    tags_skipped: list[str] = Field(default_factory=list)
    tags_failed: list[str] = Field(default_factory=list)
    tags_deleted: list[str] = Field(default_factory=list)
    bytes_copied: int = 0
    rolled_back: bool = False


class QuotaWarning(Event):
    """A namespace's usage crossed a Warning limit of its quota."""

    routing_key: ClassVar[str] = "quota.warning"

    namespace: str
    usage_bytes: int
    limit_bytes: int
    threshold_percent: int


class QuotaExceeded(Event):
    """A namespace's usage crossed a Reject limit of its quota: pushes are refused."""

    routing_key: ClassVar[str] = "quota.exceeded"

    namespace: str
    usage_bytes: int
    limit_bytes: int
    threshold_percent: int


class CollectedRepository(BaseModel):
    """One repository whose manifests a GC pass removed, and the blob digests those manifests used.

    ``digests`` are the blobs the removed manifests referenced (whether or not the blob itself was
    deleted): a usage counter re-checks exactly these digests for the repository and its namespace.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    namespace_id: int
    repository_id: int
    namespace: str
    repository: str
    digests: list[str] = Field(default_factory=list)


class BlobsCollected(Event):
    """A garbage-collection pass committed: manifests removed (per repository) and blobs deleted.

    ``blobs_deleted`` are the blob digests whose bytes left every placement; ``bytes_by_location``
    sums their sizes per storage location. A large pass publishes several of these events.
    """

    routing_key: ClassVar[str] = "gc.blobs-collected"

    repositories: list[CollectedRepository] = Field(default_factory=list)
    blobs_deleted: list[str] = Field(default_factory=list)
    bytes_reclaimed: int = 0
    bytes_by_location: dict[str, int] = Field(default_factory=dict)


class BlobReplicated(Event):
    """The replication service copied a blob into a location and verified it there (placement recorded)."""

    routing_key: ClassVar[str] = "blob.replicated"

    digest: str
    location: str
    size: int
    source_location: str


class NotificationTestRequested(Event):
    """Someone asked for a sample delivery of one notification (the API's test endpoint)."""

    routing_key: ClassVar[str] = "notification.test"

    notification_uuid: uuid.UUID


EVENT_TYPES: dict[str, type[Event]] = {
    cls.routing_key: cls
    for cls in (
        BlobPushed,
        ManifestPushed,
        TagDeleted,
        TagExpired,
        RepositoryDeleted,
        MirrorStarted,
        MirrorSucceeded,
        MirrorFailed,
        QuotaWarning,
        QuotaExceeded,
        BlobsCollected,
        BlobReplicated,
        NotificationTestRequested,
    )
}


def parse_event(routing_key: str, body: bytes | str) -> Event:
    """Rebuild an event from its routing key and JSON body; KeyError for unknown keys."""
    return EVENT_TYPES[routing_key].model_validate_json(body)
