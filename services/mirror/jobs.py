"""A claimed mirror (the job a worker runs), the progress of its sync, and the sync's result."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field

from services.mirror.config_store import MirrorConfig
from shared.auth.identity import Identity


class MirrorJob(MirrorConfig):
    """A mirror configuration claimed by a worker (``lease_owner``), with its repository's names."""

    namespace: str
    repository_name: str
    robot_namespace_id: int | None
    claimed_from: str

    @property
    def full_name(self) -> str:
        return f"{self.namespace}/{self.repository_name}"

    @property
    def owner(self) -> uuid.UUID:
        """The worker's lease: set on every claimed mirror."""
        assert self.lease_owner is not None
        return self.lease_owner

    @property
    def robot(self) -> Identity | None:
        """The identity the sync pushes as; None when the mirror's robot was deleted."""
        if self.robot_id is None or self.robot_username is None or self.robot_namespace_id is None:
            return None
        return Identity(
            kind="robot", id=self.robot_id, name=self.robot_username, namespace_id=self.robot_namespace_id
        )

    def describe(self) -> str:
        """Quay's log message: "'<external reference>' with tag pattern '<patterns>'"."""
        return f"'{self.external_reference}' with tag pattern '{','.join(self.tag_patterns)}'"


class SyncProgress(BaseModel):
    """Where a running sync stands (answered by GET .../mirror as ``sync_progress``)."""

    started_at: datetime
    tags_total: int = 0
    tags_done: int = 0
    tags_synced: int = 0
    tags_skipped: int = 0
    tags_failed: int = 0
    bytes_copied: int = 0
    current_tag: str | None = None


SyncResult = Literal["SUCCESS", "FAIL", "CANCEL"]


class SyncReport(BaseModel):
    """What a sync did (answered by GET .../mirror as ``last_sync``).

    ``tags_synced`` were copied, ``tags_skipped`` pointed at the upstream digest already,
    ``tags_failed`` maps tags that could not be copied to why, ``tags_deleted`` no longer matched or
    were gone upstream. ``rolled_back``: the tags were put back as they were before the sync.
    ``reason`` classifies a failure for metrics.
    """

    status: SyncResult
    started_at: datetime
    finished_at: datetime
    tags_synced: list[str] = Field(default_factory=list)
    tags_skipped: list[str] = Field(default_factory=list)
    tags_failed: dict[str, str] = Field(default_factory=dict)
    tags_deleted: list[str] = Field(default_factory=list)
    bytes_copied: int = 0
    error: str | None = None
    reason: str | None = None
    rolled_back: bool = False

    @classmethod
    def failure(cls, started_at: datetime, error: str, reason: str) -> SyncReport:
        """A sync that failed before it changed anything."""
        return cls(
            status="FAIL", started_at=started_at, finished_at=datetime.now(UTC), error=error, reason=reason
        )
