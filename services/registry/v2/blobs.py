"""HEAD|GET|DELETE /v2/<name>/blobs/<digest>: fetching blobs, and unlinking them from a repository."""

from __future__ import annotations

import re
from dataclasses import dataclass

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, RedirectResponse, Response, StreamingResponse

from services.registry.context import RegistryContext, get_context
from services.registry.domain.blobstore import (
    linked_blob_size,
    opened_stream,
    placement_locations,
    readable_source,
    unlink_blob,
)
from services.registry.proxy import blobs as proxy_blobs
from services.registry.v2.access import authorize
from services.registry.v2.errors import RegistryError
from shared.oci.digest import is_digest

router = APIRouter()

BLOB_MEDIA_TYPE = "application/octet-stream"
_BYTE_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)")
# Blob sizes are 64-bit: a position of more than 19 digits lies past the end of every blob, and is
# not converted (Python refuses to convert numbers of more than 4,300 digits).
_MAX_POSITION_DIGITS = 19
_PAST_EVERY_BLOB = 2**63


class _BlobFileResponse(FileResponse):
    # Over plain HTTP the server sends the file with sendfile (shared/pathsend.py). Otherwise (TLS)
    # each chunk is one read in a worker thread and one socket write: 4 MiB chunks took a quarter
    # less CPU per 64 MiB GET than 1 MiB chunks (bench/README.md), at 4 MiB of memory per download.
    chunk_size = 4 * 1024 * 1024


@dataclass(frozen=True)
class ByteRange:
    """Bytes first..last of a blob, both included."""

    first: int
    last: int

    @property
    def length(self) -> int:
        return self.last - self.first + 1


def checked_digest(value: str) -> str:
    """value when it is a sha256 or sha512 digest; DIGEST_INVALID otherwise."""
    if not is_digest(value):
        raise RegistryError("DIGEST_INVALID", "invalid digest", detail={"digest": value[:200]})
    return value


def blob_unknown(digest: str) -> RegistryError:
    return RegistryError("BLOB_UNKNOWN", "blob unknown to registry", detail={"digest": digest})


def requested_range(header: str | None, size: int) -> ByteRange | None:
    """The single byte range a Range header asks for, clipped to the blob; None for the whole blob.

    Headers this server does not act on (other units, several ranges, bad syntax) are ignored,
    as RFC 9110 allows. A range that starts past the end raises a 416 error.
    """
    match = _BYTE_RANGE.fullmatch(header.strip()) if header else None
    if match is None or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if not first:
        suffix_length = _position(last)
        if suffix_length == 0 or size == 0:
            raise _range_not_satisfiable(size)
        return ByteRange(max(size - suffix_length, 0), size - 1)
    start = _position(first)
    end = _position(last) if last else size - 1
    if last and end < start:
        return None
    if start >= size:
        raise _range_not_satisfiable(size)
    return ByteRange(start, min(end, size - 1))


def _position(digits: str) -> int:
    return int(digits) if len(digits) <= _MAX_POSITION_DIGITS else _PAST_EVERY_BLOB


def _range_not_satisfiable(size: int) -> RegistryError:
    return RegistryError(
        "SIZE_INVALID",
        "requested range not satisfiable",
        detail={"size": size},
        status=416,
        headers={"Content-Range": f"bytes */{size}"},
    )


def _blob_headers(digest: str, size: int, byte_range: ByteRange | None) -> dict[str, str]:
    headers = {
        "Docker-Content-Digest": digest,
        "Content-Type": BLOB_MEDIA_TYPE,
        "Accept-Ranges": "bytes",
        "ETag": f'"{digest}"',
        "Content-Length": str(byte_range.length if byte_range else size),
    }
    if byte_range:
        headers["Content-Range"] = f"bytes {byte_range.first}-{byte_range.last}/{size}"
    return headers


@router.api_route("/v2/{name:path}/blobs/{digest}", methods=["GET", "HEAD"])
async def fetch_blob(
    name: str, digest: str, request: Request, context: RegistryContext = Depends(get_context)
) -> Response:
    """The blob's bytes (or a range of them), from the most preferred healthy location holding it
    (an unhealthy one only when no other copy answers).

    HEAD answers from the records alone. GET redirects (307) when the location offers direct
    download URLs; 503 when no location holding the blob can be read.
    """
    grant = await authorize(context, request, name, "pull")
    assert grant.repository is not None
    checked_digest(digest)
    size, placed = await _linked_blob(context, grant.repository.id, digest)
    if size is None:
        # A cache organization fetches what its manifests reference from the upstream.
        if streamed := await proxy_blobs.fill_missing_blob(context, request, grant.repository, digest):
            return streamed
        size, placed = await _linked_blob(context, grant.repository.id, digest)
    if size is None:
        raise blob_unknown(digest)
    byte_range = requested_range(request.headers.get("range"), size)
    headers = _blob_headers(digest, size, byte_range)
    status = 206 if byte_range else 200
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers)
    source = await readable_source(context.locations, placed, digest)
    if source is None:
        raise _storage_unavailable(digest)
    url = await source.download_url()
    if url is not None:
        return RedirectResponse(url, status_code=307, headers={"Docker-Content-Digest": digest})
    local_path = source.local_path()
    if local_path is not None and "range" not in request.headers:
        return _BlobFileResponse(local_path, headers=headers, media_type=BLOB_MEDIA_TYPE)
    first, length = (byte_range.first, byte_range.length) if byte_range else (0, size)
    stream = await opened_stream(context.locations, placed, source, digest, first, length)
    if stream is None:
        raise _storage_unavailable(digest)
    return StreamingResponse(stream, status_code=status, headers=headers)


def _storage_unavailable(digest: str) -> RegistryError:
    return RegistryError(
        "BLOB_UNKNOWN", "blob storage unavailable, retry later", detail={"digest": digest}, status=503
    )


async def _linked_blob(
    context: RegistryContext, repository_id: int, digest: str
) -> tuple[int | None, set[str]]:
    """The blob's size and locations when the repository may read it; (None, empty) otherwise."""
    async with context.pool.acquire() as conn:
        size = await linked_blob_size(conn, repository_id, digest)
        placed = await placement_locations(conn, digest) if size is not None else set()
    return size, placed


@router.delete("/v2/{name:path}/blobs/{digest}", status_code=202)
async def delete_blob(
    name: str, digest: str, request: Request, context: RegistryContext = Depends(get_context)
) -> Response:
    """Unlink the blob from the repository (202); its bytes stay for other repositories."""
    grant = await authorize(context, request, name, "delete")
    checked_digest(digest)
    unlinked = False
    if grant.repository is not None:
        async with context.pool.acquire() as conn:
            unlinked = await unlink_blob(conn, grant.repository.id, digest)
    if not unlinked:
        raise blob_unknown(digest)
    return Response(status_code=202, headers={"Docker-Content-Digest": digest})
