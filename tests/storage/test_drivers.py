"""One behaviour suite for every storage driver, run against the filesystem and a real S3."""

from __future__ import annotations

import asyncio
import os
import resource
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import aioboto3
import httpx
import pytest

from shared.config import FilesystemLocation, S3Location, Settings
from shared.storage import (
    FilesystemDriver,
    InvalidOffsetError,
    InvalidPathError,
    Locations,
    PathNotFoundError,
    S3Driver,
    StorageDriver,
)
from shared.storage import s3 as s3_driver_module

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

MIB = 1024 * 1024
PART_BYTES = 5 * MIB


async def stream(*pieces: bytes) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


async def chunked(data: bytes, chunk_bytes: int = 256 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), chunk_bytes):
        yield data[start : start + chunk_bytes]


async def failing_after(data: bytes) -> AsyncIterator[bytes]:
    async for chunk in chunked(data):
        yield chunk
    raise ConnectionResetError("client went away")


async def read_all(driver: StorageDriver, path: str, offset: int = 0, length: int | None = None) -> bytes:
    return b"".join([chunk async for chunk in driver.read(path, offset, length)])


async def put_bytes(driver: StorageDriver, path: str, data: bytes) -> None:
    assert await driver.put(path, chunked(data)) == len(data)


@pytest.fixture(params=["filesystem", "s3"])
async def driver(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StorageDriver]:
    opened: StorageDriver
    if request.param == "filesystem":
        opened = FilesystemDriver(tmp_path / "storage")
    else:
        location: S3Location = request.getfixturevalue("s3_location")
        opened = await S3Driver.open(
            location.model_copy(
                update={"multipart_chunk_bytes": PART_BYTES, "redirect_downloads": True, "prefix": "registry"}
            )
        )
    yield opened
    await opened.close()


async def test_put_then_read_returns_the_same_bytes(driver: StorageDriver) -> None:
    data = os.urandom(3 * MIB + 17)

    assert await driver.put("blobs/one", chunked(data)) == len(data)

    assert await read_all(driver, "blobs/one") == data
    assert await driver.stat("blobs/one") == len(data)


async def test_empty_object_round_trips(driver: StorageDriver) -> None:
    assert await driver.put("empty", stream()) == 0

    assert await driver.stat("empty") == 0
    assert await read_all(driver, "empty") == b""


@pytest.mark.parametrize(
    ("offset", "length"),
    [(0, None), (10, None), (10, 100), (1000, 0), (4090, None), (4090, 100), (4096, None), (4096, 10)],
)
async def test_read_returns_the_requested_range(
    driver: StorageDriver, offset: int, length: int | None
) -> None:
    data = os.urandom(4096)
    await put_bytes(driver, "ranged", data)

    expected = data[offset:] if length is None else data[offset : offset + length]
    assert await read_all(driver, "ranged", offset, length) == expected


@pytest.mark.parametrize("length", [None, 0, 10])
async def test_read_past_the_end_raises_invalid_offset(driver: StorageDriver, length: int | None) -> None:
    await put_bytes(driver, "short", b"0123456789")

    with pytest.raises(InvalidOffsetError):
        await read_all(driver, "short", 11, length)


async def test_read_with_negative_offset_raises_invalid_offset(driver: StorageDriver) -> None:
    await put_bytes(driver, "short", b"0123456789")

    with pytest.raises(InvalidOffsetError):
        await read_all(driver, "short", -1)


async def test_missing_paths_raise_path_not_found(driver: StorageDriver) -> None:
    await put_bytes(driver, "present/object", b"x")

    with pytest.raises(PathNotFoundError):
        await driver.stat("absent")
    with pytest.raises(PathNotFoundError):
        await read_all(driver, "absent")
    with pytest.raises(PathNotFoundError):
        await read_all(driver, "absent", 0, 0)
    with pytest.raises(PathNotFoundError):
        await driver.stat("present")
    with pytest.raises(PathNotFoundError):
        await driver.move("absent", "elsewhere")
    with pytest.raises(PathNotFoundError):
        await driver.concat(["present/object", "absent"], "joined")
    assert await driver.list("") == ["present/object"]


@pytest.mark.parametrize("path", ["", "/absolute", "a/../b", "a//b", "trailing/", "./here", ".."])
async def test_invalid_paths_are_rejected(driver: StorageDriver, path: str) -> None:
    with pytest.raises(InvalidPathError):
        await driver.put(path, stream(b"x"))
    with pytest.raises(InvalidPathError):
        await driver.stat(path)
    with pytest.raises(InvalidPathError):
        await driver.delete(path)


async def test_list_is_recursive_sorted_and_limited_to_the_folder(driver: StorageDriver) -> None:
    for path in ["a/e", "a/b/d", "z", "ab/x", "a/b/c"]:
        await put_bytes(driver, path, path.encode())

    assert await driver.list("a") == ["a/b/c", "a/b/d", "a/e"]
    assert await driver.list("a/b") == ["a/b/c", "a/b/d"]
    assert await driver.list("") == ["a/b/c", "a/b/d", "a/e", "ab/x", "z"]
    assert await driver.list("nothing/here") == []


async def test_list_objects_gives_each_object_with_its_size_and_last_write(driver: StorageDriver) -> None:
    before = datetime.now(UTC) - timedelta(minutes=5)
    for path in ["u/1/a", "u/1/b", "u/2/a", "v/x"]:
        await put_bytes(driver, path, path.encode() * 2)

    listed = await driver.list_objects("u")
    assert [(info.path, info.size) for info in listed] == [("u/1/a", 10), ("u/1/b", 10), ("u/2/a", 10)]
    assert all(before < info.modified_at < datetime.now(UTC) + timedelta(minutes=5) for info in listed)
    assert await driver.list_objects("nothing") == []
    # No write is left unfinished here: nothing to drop, and the objects stay.
    assert await driver.abort_incomplete_writes(datetime.now(UTC) + timedelta(days=1)) == 0
    assert len(await driver.list("")) == 4


async def test_delete_removes_one_object(driver: StorageDriver) -> None:
    await put_bytes(driver, "f/one", b"1")
    await put_bytes(driver, "f/two", b"2")

    await driver.delete("f/one")

    assert await driver.list("") == ["f/two"]
    with pytest.raises(PathNotFoundError):
        await driver.stat("f/one")


async def test_delete_of_a_folder_removes_everything_below_it(driver: StorageDriver) -> None:
    for path in ["uploads/u1/0", "uploads/u1/1", "uploads/u1/deep/2", "uploads/u10/0"]:
        await put_bytes(driver, path, b"chunk")

    await driver.delete("uploads/u1")

    assert await driver.list("") == ["uploads/u10/0"]


async def test_delete_of_an_absent_path_is_fine(driver: StorageDriver) -> None:
    await driver.delete("never/written")

    assert await driver.list("") == []


async def test_move_replaces_the_destination_and_removes_the_source(driver: StorageDriver) -> None:
    await put_bytes(driver, "uploads/u/data", b"new content")
    await put_bytes(driver, "blobs/sha256/ab/abc", b"old")

    await driver.move("uploads/u/data", "blobs/sha256/ab/abc")

    assert await read_all(driver, "blobs/sha256/ab/abc") == b"new content"
    assert await driver.list("") == ["blobs/sha256/ab/abc"]


async def test_move_creates_the_destination_folders(driver: StorageDriver) -> None:
    await put_bytes(driver, "source", b"payload")

    await driver.move("source", "deep/new/folder/destination")

    assert await read_all(driver, "deep/new/folder/destination") == b"payload"
    assert await driver.list("") == ["deep/new/folder/destination"]


@pytest.mark.parametrize(
    "sizes",
    [
        [3, 6 * MIB, 1, 5 * MIB + 1, 2 * MIB, 7 * MIB],
        [6 * MIB, 3, 5 * MIB],
        [1, 2, 3],
        [MIB, MIB, MIB, MIB, MIB, MIB, 11],
        [5 * MIB, 5 * MIB],
    ],
    ids=["mixed", "large-first", "tiny", "small-many", "large-only"],
)
async def test_concat_joins_the_sources_in_order(driver: StorageDriver, sizes: list[int]) -> None:
    pieces = [os.urandom(size) for size in sizes]
    sources = [f"uploads/u/{index:04d}" for index in range(len(pieces))]
    for source, piece in zip(sources, pieces, strict=True):
        await put_bytes(driver, source, piece)

    size = await driver.concat(sources, "blobs/joined")

    joined = b"".join(pieces)
    assert size == len(joined)
    assert await driver.stat("blobs/joined") == len(joined)
    assert await read_all(driver, "blobs/joined") == joined
    for source, piece in zip(sources, pieces, strict=True):
        assert await read_all(driver, source) == piece


async def test_concat_of_one_source_copies_it(driver: StorageDriver) -> None:
    data = os.urandom(6 * MIB)
    await put_bytes(driver, "uploads/u/0", data)

    assert await driver.concat(["uploads/u/0"], "blobs/copy") == len(data)

    assert await read_all(driver, "blobs/copy") == data
    assert await read_all(driver, "uploads/u/0") == data


async def test_put_replaces_an_existing_object(driver: StorageDriver) -> None:
    await put_bytes(driver, "tag", b"a much longer first version")
    await put_bytes(driver, "tag", b"second")

    assert await read_all(driver, "tag") == b"second"
    assert await driver.stat("tag") == len(b"second")


@pytest.mark.parametrize("written_before_failure", [1000, 7 * MIB], ids=["small", "past-one-part"])
async def test_a_failing_stream_leaves_no_object(driver: StorageDriver, written_before_failure: int) -> None:
    with pytest.raises(ConnectionResetError):
        await driver.put("broken", failing_after(os.urandom(written_before_failure)))

    with pytest.raises(PathNotFoundError):
        await driver.stat("broken")
    assert await driver.list("") == []


async def test_a_failing_overwrite_keeps_the_previous_object(driver: StorageDriver) -> None:
    await put_bytes(driver, "kept", b"original")

    with pytest.raises(ConnectionResetError):
        await driver.put("kept", failing_after(os.urandom(7 * MIB)))

    assert await read_all(driver, "kept") == b"original"


async def test_an_object_is_invisible_until_its_put_completes(driver: StorageDriver) -> None:
    halfway = asyncio.Event()
    resume = asyncio.Event()

    async def paused_stream() -> AsyncIterator[bytes]:
        yield os.urandom(6 * MIB)
        halfway.set()
        await resume.wait()
        yield b"tail"

    writing = asyncio.create_task(driver.put("pending", paused_stream()))
    await asyncio.wait_for(halfway.wait(), timeout=30)

    with pytest.raises(PathNotFoundError):
        await driver.stat("pending")
    assert await driver.list("") == []

    resume.set()
    assert await writing == 6 * MIB + 4
    assert await driver.stat("pending") == 6 * MIB + 4


async def test_a_cancelled_put_leaves_no_object(driver: StorageDriver) -> None:
    halfway = asyncio.Event()

    async def endless_stream() -> AsyncIterator[bytes]:
        yield os.urandom(6 * MIB)
        halfway.set()
        await asyncio.Event().wait()
        yield b"never"

    writing = asyncio.create_task(driver.put("cancelled", endless_stream()))
    await asyncio.wait_for(halfway.wait(), timeout=30)
    writing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await writing

    assert await driver.list("") == []


async def test_a_put_larger_than_several_parts_round_trips(driver: StorageDriver) -> None:
    data = os.urandom(12 * MIB + 123)

    assert await driver.put("big", chunked(data, MIB)) == len(data)

    assert await read_all(driver, "big") == data
    assert await read_all(driver, "big", 5 * MIB - 10, 20) == data[5 * MIB - 10 : 5 * MIB + 10]


async def test_streaming_a_large_object_keeps_memory_flat(driver: StorageDriver) -> None:
    size = 256 * MIB
    block = os.urandom(MIB)

    async def blocks() -> AsyncIterator[bytes]:
        for _ in range(size // MIB):
            yield block

    peak_before_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert await driver.put("large", blocks()) == size
    read_bytes = 0
    async for chunk in driver.read("large"):
        read_bytes += len(chunk)
    peak_growth_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before_kib) / 1024

    assert read_bytes == size
    assert peak_growth_mib < 64


async def test_download_url_serves_the_object_where_offered(driver: StorageDriver) -> None:
    await put_bytes(driver, "blobs/served", b"direct download")

    url = await driver.download_url("blobs/served")

    if isinstance(driver, FilesystemDriver):
        assert url is None
        return
    assert url is not None
    async with httpx.AsyncClient() as client:
        response = await client.get(url)
    assert response.status_code == 200
    assert response.content == b"direct download"


async def test_filesystem_local_path_names_the_stored_file(tmp_path: Path) -> None:
    driver = FilesystemDriver(tmp_path)
    await put_bytes(driver, "blobs/x", b"on disk")

    local = driver.local_path("blobs/x")

    assert local is not None
    assert await asyncio.to_thread(Path(local).read_bytes) == b"on disk"


async def test_filesystem_failed_put_leaves_no_partial_file(tmp_path: Path) -> None:
    driver = FilesystemDriver(tmp_path)

    with pytest.raises(ConnectionResetError):
        await driver.put("folder/broken", failing_after(os.urandom(MIB)))

    assert await asyncio.to_thread(os.listdir, tmp_path / "folder") == []


async def test_s3_location_without_redirects_offers_no_download_url(s3_location: S3Location) -> None:
    driver = await S3Driver.open(s3_location)
    try:
        await put_bytes(driver, "blob", b"x")
        assert await driver.download_url("blob") is None
        assert driver.local_path("blob") is None
    finally:
        await driver.close()


def raw_s3_client(location: S3Location) -> AbstractAsyncContextManager[S3Client]:
    return aioboto3.Session().client(
        "s3",
        endpoint_url=location.endpoint_url,
        aws_access_key_id=location.access_key,
        aws_secret_access_key=location.secret_key,
        region_name=location.region,
    )


async def test_s3_large_put_is_a_multipart_upload_under_the_prefix(s3_location: S3Location) -> None:
    location = s3_location.model_copy(update={"multipart_chunk_bytes": PART_BYTES, "prefix": "site/eu"})
    driver = await S3Driver.open(location)
    try:
        await put_bytes(driver, "blobs/big", os.urandom(12 * MIB))
    finally:
        await driver.close()

    async with raw_s3_client(location) as client:
        head = await client.head_object(Bucket=location.bucket, Key="site/eu/blobs/big")
    assert head["ETag"].strip('"').endswith("-3")


async def test_s3_failed_multipart_put_aborts_its_upload(s3_location: S3Location) -> None:
    location = s3_location.model_copy(update={"multipart_chunk_bytes": PART_BYTES})
    driver = await S3Driver.open(location)
    try:
        with pytest.raises(ConnectionResetError):
            await driver.put("broken", failing_after(os.urandom(11 * MIB)))
    finally:
        await driver.close()

    async with raw_s3_client(location) as client:
        uploads = await client.list_multipart_uploads(Bucket=location.bucket)
    assert uploads.get("Uploads", []) == []


async def test_s3_objects_beyond_the_copy_limit_move_in_copied_parts(
    s3_location: S3Location, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Real S3 copies at most 5 GiB per request; a 10 MiB limit exercises the same split.
    monkeypatch.setattr(s3_driver_module, "MAX_COPY_BYTES", 10 * MIB)
    data = os.urandom(13 * MIB)
    driver = await S3Driver.open(s3_location)
    try:
        await put_bytes(driver, "uploads/u/data", data)
        await driver.move("uploads/u/data", "blobs/moved")
        assert await read_all(driver, "blobs/moved") == data
        assert await driver.list("") == ["blobs/moved"]
    finally:
        await driver.close()

    async with raw_s3_client(s3_location) as client:
        head = await client.head_object(Bucket=s3_location.bucket, Key="blobs/moved")
    assert head["ETag"].strip('"').endswith("-2")


async def test_locations_open_every_kind_in_preference_order(tmp_path: Path, s3_location: S3Location) -> None:
    settings = Settings(
        storage_locations={"eu": FilesystemLocation(root=str(tmp_path / "eu")), "us": s3_location},
        storage_preference=["us"],
    )

    locations = await Locations.open(settings)
    try:
        assert locations.order == ["us", "eu"]
        assert locations.preferred == "us"
        assert isinstance(locations.driver("us").inner, S3Driver)  # type: ignore[attr-defined]
        assert isinstance(locations.driver("eu").inner, FilesystemDriver)  # type: ignore[attr-defined]
        for name in locations.order:
            await put_bytes(locations.driver(name), "blob", name.encode())
            assert await read_all(locations.driver(name), "blob") == name.encode()
        with pytest.raises(KeyError):
            locations.driver("ap")
    finally:
        await locations.close()
