"""The storage driver contract: a small async interface every backend implements.

Paths are '/'-separated keys relative to the driver's root (no leading slash, no '..');
a bad path raises InvalidPathError. A path names either an object or a folder (the objects
below it), never both. Content written by ``put`` or ``concat`` becomes visible only once
complete: a reader never sees a partial object, and a failed write leaves nothing behind.
"""

from __future__ import annotations

import builtins
from abc import ABC, abstractmethod
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from datetime import datetime


class StorageError(Exception):
    """Base class of every driver error."""


class PathNotFoundError(StorageError):
    def __init__(self, path: str) -> None:
        super().__init__(f"path not found: {path}")
        self.path = path


class InvalidPathError(StorageError, ValueError):
    """The path is empty, absolute, contains '..' or an empty segment, or is otherwise unusable."""

    def __init__(self, path: str) -> None:
        super().__init__(f"invalid storage path: {path!r}")
        self.path = path


class InvalidOffsetError(StorageError):
    def __init__(self, path: str, offset: int) -> None:
        super().__init__(f"invalid offset {offset} for {path}")
        self.path = path
        self.offset = offset


def checked_path(path: str, *, allow_root: bool = False) -> str:
    """Return path unchanged when it is a valid relative key; raise InvalidPathError otherwise.

    allow_root admits '' (the root folder), for listing.
    """
    if path == "" and allow_root:
        return path
    segments = path.split("/")
    if any(segment in ("", ".", "..") for segment in segments) or "\\" in path or "\0" in path:
        raise InvalidPathError(path)
    return path


def check_range(path: str, offset: int, length: int | None) -> None:
    """Reject a negative offset (InvalidOffsetError) or a negative length (ValueError)."""
    if offset < 0:
        raise InvalidOffsetError(path, offset)
    if length is not None and length < 0:
        raise ValueError(f"negative length {length} for {path}")


@dataclass(frozen=True)
class ObjectInfo:
    """A stored object: its path, size in bytes and when it was last written (aware, UTC)."""

    path: str
    size: int
    modified_at: datetime


class StorageDriver(ABC):
    """Async object storage. Implementations: filesystem, S3."""

    name: str

    @abstractmethod
    async def put(self, path: str, chunks: AsyncIterable[bytes]) -> int:
        """Store the stream at path, replacing any object there; return the bytes written."""

    @abstractmethod
    def read(self, path: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        """Stream bytes [offset, offset+length) (to the end when length is None).

        Raises PathNotFoundError when path is absent, InvalidOffsetError when offset > size
        (offset == size yields nothing). Errors surface on the first iteration.
        """

    @abstractmethod
    async def stat(self, path: str) -> int:
        """Return the object's size; PathNotFoundError when absent."""

    @abstractmethod
    async def delete(self, path: str) -> None:
        """Delete the object, or every object below path when it names a folder. Absent: no error."""

    @abstractmethod
    async def list(self, prefix: str) -> list[str]:
        """Every object path inside the folder prefix, recursively, sorted ('' lists everything)."""

    @abstractmethod
    async def list_objects(self, prefix: str) -> builtins.list[ObjectInfo]:
        """As ``list``, with each object's size and last write time."""

    async def abort_incomplete_writes(self, started_before: datetime) -> int:
        """Drop the leftovers of writes that never completed (a crashed process's S3 multipart
        uploads, partial files) started before the instant, anywhere in the location; how many.
        Writes still in progress that started later are left alone."""
        return 0

    @abstractmethod
    async def move(self, source: str, destination: str) -> None:
        """Move an object, replacing destination; PathNotFoundError when source is absent."""

    @abstractmethod
    async def concat(self, sources: builtins.list[str], destination: str) -> int:
        """Write the sources' bytes, in order, as one object at destination; return its size.

        The sources stay in place; PathNotFoundError when one is absent. Used to assemble
        chunked uploads.
        """

    async def download_url(self, path: str) -> str | None:
        """A URL a client may fetch the object from directly, or None when not offered."""
        return None

    def local_path(self, path: str) -> str | None:
        """The object's path on the local filesystem (it need not exist), or None when the
        driver keeps nothing locally. Lets the HTTP layer serve files efficiently."""
        return None

    async def close(self) -> None:
        """Release connections; the driver is not used afterwards."""
        return None
