"""Progress of an export or import on stderr: bytes, blobs, speed and time left (rich)."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)


class TransferProgress:
    """One bar for the bytes of a run and a count of its blobs; `with` shows and ends it."""

    def __init__(self, description: str, *, total_bytes: int, total_blobs: int, enabled: bool = True) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TextColumn("{task.fields[blobs]}/{task.fields[total_blobs]} blobs"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            disable=not enabled,
        )
        self._task: TaskID = self._progress.add_task(
            description, total=total_bytes, blobs=0, total_blobs=total_blobs
        )
        self.blobs = 0

    def __enter__(self) -> TransferProgress:
        self._progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._progress.stop()

    def advance_bytes(self, count: int) -> None:
        self._progress.advance(self._task, count)

    def blob_done(self, skipped_bytes: int = 0) -> None:
        """One more blob finished; `skipped_bytes` of it were not transferred (already there)."""
        self.blobs += 1
        if skipped_bytes:
            self._progress.advance(self._task, skipped_bytes)
        self._progress.update(self._task, blobs=self.blobs)
