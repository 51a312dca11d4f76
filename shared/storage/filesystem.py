"""Local filesystem storage: every object is a file below a root folder."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import os
import shutil
import stat
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import aiofiles
import aiofiles.os

from shared.storage.base import (
    InvalidOffsetError,
    InvalidPathError,
    ObjectInfo,
    PathNotFoundError,
    StorageDriver,
    StorageError,
    check_range,
    checked_path,
)

READ_CHUNK_BYTES = 1024 * 1024
# Files being written carry this name prefix until they are renamed into place; listing skips
# them and no object path may use it.
PARTIAL_PREFIX = ".partial-"


@contextlib.contextmanager
def _storage_errors(path: str) -> Iterator[None]:
    """Translate OSError from the driver's own file operations into the typed errors."""
    try:
        yield
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as error:
        raise PathNotFoundError(path) from error
    except OSError as error:
        raise StorageError(f"{path}: {error}") from error


class FilesystemDriver(StorageDriver):
    """Objects are files below root (created on first write).

    A write goes to a partial file beside its destination and is renamed into place once
    complete, so readers see either the previous object or the whole new one.
    """

    def __init__(self, root: str | os.PathLike[str], name: str = "filesystem") -> None:
        self.name = name
        self.root = os.path.abspath(root)

    def _file(self, path: str, *, allow_root: bool = False) -> str:
        checked_path(path, allow_root=allow_root)
        segments = path.split("/") if path else []
        if any(segment.startswith(PARTIAL_PREFIX) for segment in segments):
            raise InvalidPathError(path)
        return os.path.join(self.root, *segments)

    def local_path(self, path: str) -> str | None:
        return self._file(path)

    async def put(self, path: str, chunks: AsyncIterable[bytes]) -> int:
        return await self._write_atomically(path, chunks)

    async def _write_atomically(self, path: str, chunks: AsyncIterable[bytes]) -> int:
        destination = self._file(path)
        folder = os.path.dirname(destination)
        partial = os.path.join(folder, f"{PARTIAL_PREFIX}{uuid.uuid4().hex}")
        written = 0
        try:
            with _storage_errors(path):
                await aiofiles.os.makedirs(folder, exist_ok=True)
                file = await aiofiles.open(partial, "wb")
            try:
                # Only the driver's own I/O is translated: errors of the caller's stream pass as-is.
                async for chunk in chunks:
                    with _storage_errors(path):
                        await file.write(chunk)
                    written += len(chunk)
                with _storage_errors(path):
                    await file.flush()
                    await asyncio.to_thread(os.fsync, file.fileno())
            finally:
                await file.close()
            with _storage_errors(path):
                await aiofiles.os.replace(partial, destination)
        except BaseException:
            with contextlib.suppress(OSError):
                await aiofiles.os.remove(partial)
            raise
        return written

    async def read(self, path: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        file_path = self._file(path)
        check_range(path, offset, length)
        with _storage_errors(path):
            async with aiofiles.open(file_path, "rb") as file:
                size = (await asyncio.to_thread(os.fstat, file.fileno())).st_size
                if offset > size:
                    raise InvalidOffsetError(path, offset)
                remaining = size - offset if length is None else min(length, size - offset)
                await file.seek(offset)
                while remaining > 0 and (chunk := await file.read(min(READ_CHUNK_BYTES, remaining))):
                    remaining -= len(chunk)
                    yield chunk

    async def stat(self, path: str) -> int:
        file_path = self._file(path)
        with _storage_errors(path):
            result = await aiofiles.os.stat(file_path)
        if not stat.S_ISREG(result.st_mode):
            raise PathNotFoundError(path)
        return result.st_size

    async def delete(self, path: str) -> None:
        target = self._file(path)
        with _storage_errors(path):
            await asyncio.to_thread(_delete_tree_or_file, target)

    async def list(self, prefix: str) -> list[str]:
        folder = self._file(prefix, allow_root=True)
        with _storage_errors(prefix):
            return await asyncio.to_thread(self._list_files, folder)

    def _list_files(self, folder: str) -> builtins.list[str]:
        found = [
            Path(directory, name).relative_to(self.root).as_posix()
            for directory, _, names in os.walk(folder)
            for name in names
            if not name.startswith(PARTIAL_PREFIX)
        ]
        return sorted(found)

    async def list_objects(self, prefix: str) -> builtins.list[ObjectInfo]:
        folder = self._file(prefix, allow_root=True)
        with _storage_errors(prefix):
            return await asyncio.to_thread(self._describe_files, folder)

    def _describe_files(self, folder: str) -> builtins.list[ObjectInfo]:
        found: builtins.list[ObjectInfo] = []
        for path in self._list_files(folder):
            with contextlib.suppress(FileNotFoundError):  # deleted meanwhile
                result = os.stat(os.path.join(self.root, path))
                found.append(ObjectInfo(path, result.st_size, datetime.fromtimestamp(result.st_mtime, UTC)))
        return found

    async def abort_incomplete_writes(self, started_before: datetime) -> int:
        return await asyncio.to_thread(self._remove_partials, started_before.timestamp())

    def _remove_partials(self, started_before: float) -> int:
        removed = 0
        for directory, _, names in os.walk(self.root):
            for name in names:
                if not name.startswith(PARTIAL_PREFIX):
                    continue
                with contextlib.suppress(FileNotFoundError):
                    partial = os.path.join(directory, name)
                    # A partial file is written until renamed: its last write is its last sign of life.
                    if os.stat(partial).st_mtime < started_before:
                        os.remove(partial)
                        removed += 1
        return removed

    async def move(self, source: str, destination: str) -> None:
        source_file = self._file(source)
        destination_file = self._file(destination)
        if not await aiofiles.os.path.isfile(source_file):
            raise PathNotFoundError(source)
        with _storage_errors(source):
            await aiofiles.os.makedirs(os.path.dirname(destination_file), exist_ok=True)
            await aiofiles.os.replace(source_file, destination_file)

    async def concat(self, sources: builtins.list[str], destination: str) -> int:
        for source in sources:
            await self.stat(source)
        return await self._write_atomically(destination, self._chained(sources))

    async def _chained(self, sources: builtins.list[str]) -> AsyncIterator[bytes]:
        for source in sources:
            async for chunk in self.read(source):
                yield chunk


def _delete_tree_or_file(target: str) -> None:
    """Remove a folder with everything in it, or a single file; absent is fine."""
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        if os.path.isdir(target) and not os.path.islink(target):
            shutil.rmtree(target)
        else:
            os.remove(target)
