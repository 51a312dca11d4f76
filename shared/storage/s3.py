"""S3 storage through aioboto3: objects are keys in one bucket, below an optional key prefix."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import math
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from contextlib import AsyncExitStack
from datetime import datetime
from typing import TYPE_CHECKING

import aioboto3
from aiobotocore.config import AioConfig
from botocore.exceptions import BotoCoreError, ClientError

from shared.config import S3Location
from shared.storage.base import (
    InvalidOffsetError,
    ObjectInfo,
    PathNotFoundError,
    StorageDriver,
    StorageError,
    check_range,
    checked_path,
)

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import CompletedPartTypeDef

MIB = 1024 * 1024
READ_CHUNK_BYTES = MIB
# S3 rules: every part but the last is at least 5 MiB; a copied part or a CopyObject is at most
# 5 GiB; DeleteObjects takes at most 1000 keys.
MIN_PART_BYTES = 5 * MIB
MAX_COPY_BYTES = 5 * 1024 * MIB
MAX_DELETE_BATCH = 1000
NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
NO_BUCKET_CODES = frozenset({"404", "NoSuchBucket", "NotFound"})


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


@contextlib.contextmanager
def _storage_errors(path: str) -> Iterator[None]:
    """Translate botocore errors into the typed errors: missing keys -> PathNotFoundError."""
    try:
        yield
    except ClientError as error:
        if _error_code(error) in NOT_FOUND_CODES:
            raise PathNotFoundError(path) from error
        raise StorageError(f"{path}: {error}") from error
    except BotoCoreError as error:
        raise StorageError(f"{path}: {error}") from error


class _ObjectWriter:
    """Builds one object from streamed bytes and server-side copied ranges.

    Streamed bytes are buffered up to one part. The object stays a single PutObject when it
    never outgrows one part, and becomes a multipart upload otherwise. Nothing is visible
    before finish(); abort() drops an unfinished multipart upload.
    """

    def __init__(self, client: S3Client, bucket: str, key: str, path: str, part_bytes: int) -> None:
        self._client = client
        self._bucket = bucket
        self._key = key
        self._path = path
        self._part_bytes = part_bytes
        self._buffer = bytearray()
        self._parts: list[CompletedPartTypeDef] = []
        self._upload_id: str | None = None
        self.size = 0

    @property
    def buffered_bytes(self) -> int:
        return len(self._buffer)

    async def write(self, data: bytes) -> None:
        self._buffer += data
        self.size += len(data)
        while len(self._buffer) >= self._part_bytes:
            part = bytes(self._buffer[: self._part_bytes])
            del self._buffer[: self._part_bytes]
            await self._upload_part(part)

    async def copy(self, source_key: str, start: int, end: int) -> None:
        """Append bytes [start, end) of source_key, copied inside S3.

        The range must hold at least MIN_PART_BYTES, and so must the buffer when not empty.
        """
        if self._buffer:
            await self._upload_part(bytes(self._buffer))
            self._buffer.clear()
        pieces = math.ceil((end - start) / MAX_COPY_BYTES)
        piece_bytes = math.ceil((end - start) / pieces)
        for piece_start in range(start, end, piece_bytes):
            await self._copy_part(source_key, piece_start, min(piece_start + piece_bytes, end))
        self.size += end - start

    async def finish(self) -> None:
        with _storage_errors(self._path):
            if self._upload_id is None:
                await self._client.put_object(Bucket=self._bucket, Key=self._key, Body=bytes(self._buffer))
                return
            if self._buffer:
                await self._upload_part(bytes(self._buffer))
            await self._client.complete_multipart_upload(
                Bucket=self._bucket,
                Key=self._key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )

    async def abort(self) -> None:
        if self._upload_id is None:
            return
        # The caller needs the original failure; a failed abort only leaves an upload behind.
        with contextlib.suppress(ClientError, BotoCoreError):
            await self._client.abort_multipart_upload(
                Bucket=self._bucket, Key=self._key, UploadId=self._upload_id
            )

    async def _started_upload(self) -> str:
        if self._upload_id is None:
            with _storage_errors(self._path):
                created = await self._client.create_multipart_upload(Bucket=self._bucket, Key=self._key)
            self._upload_id = created["UploadId"]
        return self._upload_id

    async def _upload_part(self, data: bytes) -> None:
        upload_id = await self._started_upload()
        number = len(self._parts) + 1
        with _storage_errors(self._path):
            uploaded = await self._client.upload_part(
                Bucket=self._bucket, Key=self._key, UploadId=upload_id, PartNumber=number, Body=data
            )
        self._parts.append({"PartNumber": number, "ETag": uploaded["ETag"]})

    async def _copy_part(self, source_key: str, start: int, end: int) -> None:
        upload_id = await self._started_upload()
        number = len(self._parts) + 1
        with _storage_errors(self._path):
            copied = await self._client.upload_part_copy(
                Bucket=self._bucket,
                Key=self._key,
                UploadId=upload_id,
                PartNumber=number,
                CopySource={"Bucket": self._bucket, "Key": source_key},
                CopySourceRange=f"bytes={start}-{end - 1}",
            )
        self._parts.append({"PartNumber": number, "ETag": copied["CopyPartResult"]["ETag"]})


class S3Driver(StorageDriver):
    """Objects in an S3 bucket (created at open when missing), keyed below location.prefix.

    One client stays open from open() to close(). Streamed writes upload parts of
    multipart_chunk_bytes (at least the S3 minimum of 5 MiB), holding one part in memory.
    """

    def __init__(self, name: str, location: S3Location, client: S3Client, exit_stack: AsyncExitStack) -> None:
        """Use S3Driver.open, which opens the client and the bucket."""
        self.name = name
        self._location = location
        self._client = client
        self._exit_stack = exit_stack
        self._bucket = location.bucket
        self._key_prefix = f"{location.prefix.strip('/')}/" if location.prefix.strip("/") else ""
        self._part_bytes = max(location.multipart_chunk_bytes, MIN_PART_BYTES)

    @classmethod
    async def open(cls, location: S3Location, name: str = "s3") -> S3Driver:
        exit_stack = AsyncExitStack()
        try:
            client = await exit_stack.enter_async_context(_client_for(location))
            driver = cls(name, location, client, exit_stack)
            await driver._ensure_bucket()
        except BaseException:
            await exit_stack.aclose()
            raise
        return driver

    async def close(self) -> None:
        await self._exit_stack.aclose()

    async def _ensure_bucket(self) -> None:
        with _storage_errors(self._bucket):
            try:
                await self._client.head_bucket(Bucket=self._bucket)
                return
            except ClientError as error:
                if _error_code(error) not in NO_BUCKET_CODES:
                    raise
            try:
                if self._location.region == "us-east-1":
                    await self._client.create_bucket(Bucket=self._bucket)
                else:
                    await self._client.create_bucket(
                        Bucket=self._bucket,
                        CreateBucketConfiguration={"LocationConstraint": self._location.region},  # type: ignore[typeddict-item]
                    )
            except ClientError as error:
                if _error_code(error) != "BucketAlreadyOwnedByYou":
                    raise

    def _key(self, path: str) -> str:
        return f"{self._key_prefix}{checked_path(path)}"

    async def put(self, path: str, chunks: AsyncIterable[bytes]) -> int:
        async with self._writer(path) as writer:
            async for chunk in chunks:
                await writer.write(chunk)
        return writer.size

    @contextlib.asynccontextmanager
    async def _writer(self, path: str) -> AsyncIterator[_ObjectWriter]:
        """A writer for path, finished when the block completes and aborted when it fails."""
        writer = _ObjectWriter(self._client, self._bucket, self._key(path), path, self._part_bytes)
        try:
            yield writer
            await writer.finish()
        except BaseException:
            await writer.abort()
            raise

    async def read(self, path: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        key = self._key(path)
        check_range(path, offset, length)
        if length == 0:
            if offset > await self.stat(path):
                raise InvalidOffsetError(path, offset)
            return
        with _storage_errors(path):
            try:
                response = await self._client.get_object(
                    Bucket=self._bucket, Key=key, Range=_range(offset, length)
                )
            except ClientError as error:
                if _error_code(error) != "InvalidRange":
                    raise
                # S3 refuses a range starting at the end; the contract wants it empty.
                if offset > await self.stat(path):
                    raise InvalidOffsetError(path, offset) from error
                return
            body = response["Body"]
            async with body:
                async for chunk in body.iter_chunks(READ_CHUNK_BYTES):
                    yield chunk

    async def stat(self, path: str) -> int:
        key = self._key(path)
        with _storage_errors(path):
            head = await self._client.head_object(Bucket=self._bucket, Key=key)
        return head["ContentLength"]

    async def delete(self, path: str) -> None:
        key = self._key(path)
        with _storage_errors(path):
            await self._client.delete_object(Bucket=self._bucket, Key=key)
            keys = await self._keys_below(f"{key}/")
            for start in range(0, len(keys), MAX_DELETE_BATCH):
                batch = keys[start : start + MAX_DELETE_BATCH]
                result = await self._client.delete_objects(
                    Bucket=self._bucket,
                    Delete={"Objects": [{"Key": item} for item in batch], "Quiet": True},
                )
                if result.get("Errors"):
                    raise StorageError(f"{path}: could not delete {result['Errors']}")

    async def list(self, prefix: str) -> list[str]:
        key_prefix = f"{self._key(prefix)}/" if prefix else self._key_prefix
        with _storage_errors(prefix):
            keys = await self._keys_below(key_prefix)
        return sorted(key.removeprefix(self._key_prefix) for key in keys)

    async def _keys_below(self, key_prefix: str) -> builtins.list[str]:
        paginator = self._client.get_paginator("list_objects_v2")
        keys: builtins.list[str] = []
        async for page in paginator.paginate(Bucket=self._bucket, Prefix=key_prefix):
            keys.extend(item["Key"] for item in page.get("Contents", []))
        return keys

    async def list_objects(self, prefix: str) -> builtins.list[ObjectInfo]:
        key_prefix = f"{self._key(prefix)}/" if prefix else self._key_prefix
        found: builtins.list[ObjectInfo] = []
        with _storage_errors(prefix):
            paginator = self._client.get_paginator("list_objects_v2")
            async for page in paginator.paginate(Bucket=self._bucket, Prefix=key_prefix):
                found.extend(
                    ObjectInfo(item["Key"].removeprefix(self._key_prefix), item["Size"], item["LastModified"])
                    for item in page.get("Contents", [])
                )
        return sorted(found, key=lambda info: info.path)

    async def abort_incomplete_writes(self, started_before: datetime) -> int:
        aborted = 0
        with _storage_errors(self._key_prefix or self._bucket):
            paginator = self._client.get_paginator("list_multipart_uploads")
            async for page in paginator.paginate(Bucket=self._bucket, Prefix=self._key_prefix):
                for upload in page.get("Uploads", []):
                    if upload["Initiated"] >= started_before:
                        continue
                    try:
                        await self._client.abort_multipart_upload(
                            Bucket=self._bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
                    except ClientError as error:
                        if _error_code(error) != "NoSuchUpload":  # completed or aborted meanwhile
                            raise
                        continue
                    aborted += 1
        return aborted

    async def move(self, source: str, destination: str) -> None:
        await self._copy(source, destination, await self.stat(source))
        with _storage_errors(source):
            await self._client.delete_object(Bucket=self._bucket, Key=self._key(source))

    async def _copy(self, source: str, destination: str, size: int) -> None:
        if size > MAX_COPY_BYTES:
            async with self._writer(destination) as writer:
                await writer.copy(self._key(source), 0, size)
            return
        with _storage_errors(source):
            await self._client.copy_object(
                Bucket=self._bucket,
                Key=self._key(destination),
                CopySource={"Bucket": self._bucket, "Key": self._key(source)},
            )

    async def concat(self, sources: builtins.list[str], destination: str) -> int:
        sizes = await asyncio.gather(*(self.stat(source) for source in sources))
        if len(sources) == 1:
            await self._copy(sources[0], destination, sizes[0])
            return sizes[0]
        async with self._writer(destination) as writer:
            for source, size in zip(sources, sizes, strict=True):
                await self._append(writer, source, size)
        return writer.size

    async def _append(self, writer: _ObjectWriter, source: str, size: int) -> None:
        """Append a source, copying inside S3 what part-size rules allow and streaming the rest."""
        start = 0
        if writer.buffered_bytes:
            # A copied part may only follow a part of at least the minimum size: top the
            # streamed bytes up to it from this source first.
            start = min(size, max(0, MIN_PART_BYTES - writer.buffered_bytes))
            await self._stream_into(writer, source, 0, start)
        if size - start >= MIN_PART_BYTES:
            await writer.copy(self._key(source), start, size)
        else:
            await self._stream_into(writer, source, start, size)

    async def _stream_into(self, writer: _ObjectWriter, source: str, start: int, end: int) -> None:
        if end > start:
            async for chunk in self.read(source, start, end - start):
                await writer.write(chunk)

    async def download_url(self, path: str) -> str | None:
        if not self._location.redirect_downloads:
            return None
        with _storage_errors(path):
            return await self._client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self._bucket, "Key": self._key(path)},
                ExpiresIn=self._location.presign_expiry_s,
            )


def _client_for(location: S3Location) -> contextlib.AbstractAsyncContextManager[S3Client]:
    config = AioConfig(
        signature_version="s3v4",
        s3={
            # Custom endpoints (SeaweedFS, MinIO, ...) rarely serve virtual-hosted buckets.
            "addressing_style": "path" if location.endpoint_url else "auto",
            # Over TLS, which already protects the bytes, bodies are not SHA-256 signed: botocore
            # would hash every part on the event loop. Over plain HTTP the signature is all the
            # integrity a body has, so it stays.
            "payload_signing_enabled": not _over_tls(location),
        },
        # Checksums only where S3 demands them: S3-compatible servers often lack the newer ones.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"mode": "standard", "max_attempts": location.max_attempts},
        connect_timeout=location.connect_timeout_s,
    )
    return aioboto3.Session().client(
        "s3",
        endpoint_url=location.endpoint_url,
        region_name=location.region,
        aws_access_key_id=location.access_key,
        aws_secret_access_key=location.secret_key,
        config=config,
        # An https endpoint's certificate is verified against ca_bundle (else the system's CAs).
        verify=location.ca_bundle or location.verify_tls,
    )


def _over_tls(location: S3Location) -> bool:
    return location.endpoint_url is None or location.endpoint_url.lower().startswith("https://")


def _range(offset: int, length: int | None) -> str:
    """The HTTP Range for [offset, offset+length), open-ended when length is None."""
    end = "" if length is None else str(offset + length - 1)
    return f"bytes={offset}-{end}"
