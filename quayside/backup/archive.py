"""The backup folder's layout and its description files (pydantic models)."""

from __future__ import annotations

import asyncio
import os
from datetime import datetime
from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, Field

from shared.config import StorageLocation

FORMAT: Literal[1] = 1
# The row counts compared between a backup and its restore.
COUNTED_TABLES = ("namespace", "app_user", "repository", "manifest", "tag", "blob", "manifest_blob")


class BackupError(Exception):
    """A backup or restore that cannot go on (bad folder, failed tool, failed verification)."""


class BlobEntry(BaseModel):
    digest: str
    size: int = Field(ge=0)


class BackupManifest(BaseModel):
    """backup.json, written last: a folder without it is an unfinished backup."""

    format: Literal[1] = FORMAT
    created_at: datetime
    # Every change committed before this moment is in the backup.
    consistency_point: datetime
    source: Literal["embedded", "server"]
    counts: dict[str, int]
    blobs: list[BlobEntry]


class InstallConfig(BaseModel):
    """config.json: what the installation needs besides its data to run as before."""

    token_secret: str
    secrets_key: str | None
    storage_locations: dict[str, StorageLocation]
    storage_preference: list[str]


class Progress(Protocol):
    """Where long steps report: a phase with its total (None: unknown), then advances."""

    def phase(self, name: str, total: int | None) -> None: ...

    def advance(self, amount: int) -> None: ...


class NoProgress:
    def phase(self, name: str, total: int | None) -> None:
        return None

    def advance(self, amount: int) -> None:
        return None


class BackupFolder:
    def __init__(self, root: Path) -> None:
        self.root = root.absolute()

    @property
    def manifest(self) -> Path:
        return self.root / "backup.json"

    @property
    def database(self) -> Path:
        return self.root / "database.dump"

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def blobs_root(self) -> Path:
        """The root of a filesystem location holding the blobs (under blobs/)."""
        return self.root

    async def prepare_new(self) -> None:
        """Create the folder; BackupError when it exists and is not empty."""

        def prepare() -> None:
            if self.root.exists() and any(self.root.iterdir()):
                raise BackupError(f"{self.root} is not empty: back up into a new folder")
            self.root.mkdir(parents=True, exist_ok=True)

        await asyncio.to_thread(prepare)

    async def write_config(self, config: InstallConfig) -> None:
        def write() -> None:
            fd = os.open(self.config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as file:
                file.write(config.model_dump_json(indent=2))

        await asyncio.to_thread(write)

    async def write_manifest(self, manifest: BackupManifest) -> None:
        await asyncio.to_thread(self.manifest.write_text, manifest.model_dump_json(indent=2))

    async def read(self) -> tuple[BackupManifest, InstallConfig]:
        """The description files; BackupError when the folder is no finished backup."""
        if not await asyncio.to_thread(self.manifest.is_file):
            raise BackupError(f"{self.root} holds no finished backup (no backup.json)")
        manifest = BackupManifest.model_validate_json(await asyncio.to_thread(self.manifest.read_text))
        config = InstallConfig.model_validate_json(await asyncio.to_thread(self.config.read_text))
        return manifest, config
