"""/v2/<name>/blobs/uploads: the OCI blob upload protocol (monolithic, chunked, cross-repository mount).

Every endpoint needs push access to <name>. The session logic lives in upload_sessions; this module
maps HTTP requests and OCI errors onto it.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from starlette.requests import ClientDisconnect

from services.registry.context import RegistryContext, get_context
from services.registry.domain.blobstore import (
    in_preference_order,
    link_blob,
    linked_blob_size,
    placement_locations,
)
from services.registry.domain.quota_enforcement import refuse_upload_when_over
from services.registry.domain.repositories import Repository
from services.registry.v2.access import Grant, authorize, pull_scope
from services.registry.v2.blobs import checked_digest
from services.registry.v2.errors import RegistryError
from services.registry.v2.manifests import quota_denied
from services.registry.v2.upload_sessions import (
    DigestMismatchError,
    InvalidBodyError,
    SessionChangedError,
    StoredChunksError,
    UploadSession,
    append_chunk,
    complete_session,
    discard_session,
    find_session,
    relocate_empty_session,
    start_session,
)
from shared import blob_guard
from shared.events.models import BlobPushed
from shared.events.outbox import enqueue
from shared.oci.digest import is_digest
from shared.storage import StorageError

logger = logging.getLogger(__name__)

router = APIRouter()

# A first chunk whose write fails is written again in the next healthy location when the registry
# still holds every byte of it read so far: at most this many per request.
REPLAYABLE_BYTES = 8 * 1024 * 1024

# Positions and lengths are 64-bit: at most 19 ASCII digits (\d would take any Unicode digit).
_CONTENT_RANGE = re.compile(r"(?:bytes[ =])?([0-9]{1,19})-([0-9]{1,19})")
_CONTENT_LENGTH = re.compile(r"[0-9]{1,19}")


def _upload_url(name: str, session: UploadSession) -> str:
    return f"/v2/{name}/blobs/uploads/{session.id}"


def _session_headers(name: str, session: UploadSession) -> dict[str, str]:
    """Where to continue the session and which bytes it holds ('0-0' when none, as Distribution)."""
    return {
        "Location": _upload_url(name, session),
        "Range": f"0-{max(session.byte_offset - 1, 0)}",
        "Docker-Upload-UUID": str(session.id),
    }


def _accepted(name: str, session: UploadSession) -> Response:
    return Response(status_code=202, headers=_session_headers(name, session))


def _created(name: str, digest: str) -> Response:
    return Response(
        status_code=201, headers={"Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": digest}
    )


def _upload_unknown(upload_id: str) -> RegistryError:
    return RegistryError(
        "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry", detail={"upload": upload_id[:100]}
    )


def _upload_invalid(message: str) -> RegistryError:
    return RegistryError("BLOB_UPLOAD_INVALID", message)


def _out_of_order(name: str, session: UploadSession) -> RegistryError:
    """416 telling the client where the session stands, so that it can resume from there."""
    return RegistryError(
        "BLOB_UPLOAD_INVALID",
        "chunk does not continue the upload",
        detail={"offset": session.byte_offset},
        status=416,
        headers=_session_headers(name, session),
    )


async def _request_body(request: Request) -> AsyncIterator[bytes]:
    try:
        async for piece in request.stream():
            yield piece
    except ClientDisconnect as error:
        raise InvalidBodyError("the client stopped sending the body") from error


def _content_length(request: Request) -> int | None:
    header = request.headers.get("content-length")
    if header is None:
        return None
    if not _CONTENT_LENGTH.fullmatch(header):
        raise _upload_invalid("invalid Content-Length")
    return int(header)


def parse_content_range(header: str) -> tuple[int, int] | None:
    """(first, last) byte positions of a chunk's Content-Range ('<first>-<last>'); None when malformed."""
    match = _CONTENT_RANGE.fullmatch(header.strip())
    return (int(match.group(1)), int(match.group(2))) if match else None


def _chunk_length(request: Request, name: str, session: UploadSession) -> int | None:
    """The body's declared length, once its Content-Range (if any) continues the session."""
    content_length = _content_length(request)
    content_range = request.headers.get("content-range")
    if content_range is None:
        return content_length
    positions = parse_content_range(content_range)
    if positions is None:
        raise _out_of_order(name, session)
    first, last = positions
    if first != session.byte_offset or last < first:
        raise _out_of_order(name, session)
    if content_length is not None and content_length != last - first + 1:
        raise _upload_invalid("Content-Length does not match Content-Range")
    return last - first + 1


async def _session(
    context: RegistryContext, grant: Grant, upload_id: str
) -> tuple[Repository, UploadSession]:
    """The repository and its upload session upload_id; BLOB_UPLOAD_UNKNOWN when there is none."""
    try:
        parsed_id = uuid.UUID(upload_id)
    except ValueError:
        raise _upload_unknown(upload_id) from None
    if grant.repository is None:
        raise _upload_unknown(upload_id)
    async with context.pool.acquire() as conn:
        session = await find_session(conn, parsed_id, grant.repository.id)
    if session is None:
        raise _upload_unknown(upload_id)
    return grant.repository, session


async def _append(
    context: RegistryContext, request: Request, name: str, session: UploadSession
) -> UploadSession:
    """Store the request body as the session's next chunk (after checking Content-Range).

    A session without bytes yet writes to the first healthy location: it moves there when its own
    is unhealthy, and when writing fails it moves on to the next one, the body written again from
    its start while the registry still holds all of it read so far (REPLAYABLE_BYTES). Otherwise a
    storage failure answers 503 UNAVAILABLE (the client may retry).
    """
    expected_length = _chunk_length(request, name, session)
    body = _ReplayableBody(_request_body(request), REPLAYABLE_BYTES if session.byte_offset == 0 else 0)
    session = await _in_healthy_location(context, name, session)
    tried: set[str] = set()
    while True:
        tried.add(session.location)
        driver = context.locations.driver(session.location)
        try:
            return await append_chunk(
                context.pool, driver, context.upload_hashers, session, body.read(), expected_length
            )
        except SessionChangedError:
            raise await _session_changed(context, name, session) from None
        except (InvalidBodyError, StoredChunksError) as error:
            raise _upload_invalid(str(error)) from error
        except StorageError as error:
            failed = session.location
            logger.warning("upload %s: writing to location %s failed: %s", session.id, failed, error)
            untried = [location for location in context.locations.write_order() if location not in tried]
            if session.byte_offset != 0 or not untried:
                raise _storage_unavailable(failed) from error
            session = await _relocated(context, name, session, untried[0])
            if not body.replayable:
                raise _storage_unavailable(failed) from error
            logger.warning("upload %s: writing the chunk again, to location %s", session.id, untried[0])


async def _in_healthy_location(context: RegistryContext, name: str, session: UploadSession) -> UploadSession:
    """The session, moved to the first healthy location when it holds no bytes yet and its own
    location is unhealthy."""
    if session.byte_offset != 0 or context.locations.health.is_healthy(session.location):
        return session
    best = context.locations.write_order()[0]
    if best == session.location or not context.locations.health.is_healthy(best):
        return session
    return await _relocated(context, name, session, best)


async def _relocated(
    context: RegistryContext, name: str, session: UploadSession, location: str
) -> UploadSession:
    moved = await relocate_empty_session(context.pool, session, location)
    if moved is None:
        raise await _session_changed(context, name, session)
    return moved


def _storage_unavailable(location: str) -> RegistryError:
    return RegistryError(
        "UNAVAILABLE",
        "blob storage unavailable, retry the upload",
        detail={"location": location},
        status=503,
    )


class _ReplayableBody:
    """A request body that can be read again from its start as long as at most `limit` bytes of it
    have been read (they are kept in memory)."""

    def __init__(self, body: AsyncIterator[bytes], limit: int) -> None:
        self._body = body
        self._limit = limit
        self._kept: list[bytes] = []
        self._kept_bytes = 0
        self.replayable = True

    async def read(self) -> AsyncIterator[bytes]:
        """The body from its start: the pieces read before, then the rest of the request."""
        for piece in list(self._kept):
            yield piece
        async for piece in self._body:
            self._keep(piece)
            yield piece

    def _keep(self, piece: bytes) -> None:
        if not self.replayable:
            return
        self._kept_bytes += len(piece)
        if self._kept_bytes > self._limit:
            self.replayable = False
            self._kept.clear()
        else:
            self._kept.append(piece)


async def _complete(
    context: RegistryContext, name: str, repository: Repository, session: UploadSession, digest: str
) -> Response:
    driver = context.locations.driver(session.location)
    try:
        await complete_session(context.pool, driver, context.upload_hashers, session, digest, repository)
    except DigestMismatchError as error:
        raise RegistryError(
            "DIGEST_INVALID",
            "provided digest did not match uploaded content",
            detail={"digest": error.expected, "computed": error.computed},
        ) from error
    except SessionChangedError:
        raise await _session_changed(context, name, session) from None
    except StoredChunksError as error:
        raise _upload_invalid(str(error)) from error
    except StorageError as error:
        logger.warning("upload %s: completing in location %s failed: %s", session.id, session.location, error)
        raise _storage_unavailable(session.location) from error
    return _created(name, digest)


async def _session_changed(context: RegistryContext, name: str, session: UploadSession) -> RegistryError:
    """416 with the session's current state, or BLOB_UPLOAD_UNKNOWN when it has ended."""
    async with context.pool.acquire() as conn:
        current = await find_session(conn, session.id, session.repository_id)
    return _out_of_order(name, current) if current else _upload_unknown(str(session.id))


async def _mount(
    context: RegistryContext, request: Request, grant: Grant, digest: str, source_name: str | None
) -> bool:
    """Link digest from source_name into the grant's repository; False when the caller may not
    pull source_name or the blob is not there."""
    if source_name is None or not is_digest(digest):
        return False
    try:
        source = await authorize(context, request, source_name, "pull")
    except RegistryError:
        return False
    assert source.repository is not None
    async with context.pool.acquire() as conn, conn.transaction():
        await blob_guard.hold_for_push(conn, [digest])
        size = await linked_blob_size(conn, source.repository.id, digest)
        if size is None:
            return False
        repository = await grant.repository_for_write(conn)
        await link_blob(conn, repository.id, digest)
        await blob_guard.touch_links(conn, repository.id, [digest])
        locations = in_preference_order(context.locations, await placement_locations(conn, digest))
        event = BlobPushed(
            namespace=repository.namespace,
            repository=repository.name,
            digest=digest,
            size=size,
            location=locations[0] if locations else context.locations.preferred,
        )
        await enqueue(conn, event)
    return True


@router.post("/v2/{name:path}/blobs/uploads/", status_code=202)
@router.post("/v2/{name:path}/blobs/uploads", status_code=202, include_in_schema=False)
async def start_upload(
    name: str,
    request: Request,
    digest: str | None = None,
    mount: str | None = None,
    mount_from: str | None = Query(default=None, alias="from"),
    context: RegistryContext = Depends(get_context),
) -> Response:
    """Start an upload session (202), or in one request: mount a blob from another repository
    (?mount=&from=, 201; a new session when the mount is not possible) or upload the body as a
    whole blob (?digest=, 201)."""
    grant = await authorize(context, request, name, "push", also_challenged=pull_scope(mount and mount_from))
    assert grant.namespace_id is not None  # push access exists only in a known namespace
    default_reject_bytes = context.settings.default_system_reject_quota_bytes
    with quota_denied():
        await refuse_upload_when_over(context.pool, grant.namespace_id, grant.namespace, default_reject_bytes)
    if mount is not None and await _mount(context, request, grant, mount, mount_from):
        return _created(name, mount)
    if digest is not None:
        checked_digest(digest)
    async with context.pool.acquire() as conn:
        repository = await grant.repository_for_write(conn)
        session = await start_session(conn, repository.id, context.locations.write_order()[0])
    if digest is None:
        return _accepted(name, session)
    try:
        session = await _append(context, request, name, session)
    except RegistryError:
        await discard_session(
            context.pool, context.locations.driver(session.location), context.upload_hashers, session
        )
        raise
    return await _complete(context, name, repository, session, digest)


@router.patch("/v2/{name:path}/blobs/uploads/{upload_id}", status_code=202)
async def upload_chunk(
    name: str, upload_id: str, request: Request, context: RegistryContext = Depends(get_context)
) -> Response:
    """Append the body to the session (202); a Content-Range must start at its offset (else 416)."""
    grant = await authorize(context, request, name, "push")
    _, session = await _session(context, grant, upload_id)
    return _accepted(name, await _append(context, request, name, session))


@router.put("/v2/{name:path}/blobs/uploads/{upload_id}", status_code=201)
async def finish_upload(
    name: str,
    upload_id: str,
    request: Request,
    digest: str | None = None,
    context: RegistryContext = Depends(get_context),
) -> Response:
    """Append the body, if any, verify everything against ?digest= and publish the blob (201)."""
    grant = await authorize(context, request, name, "push")
    repository, session = await _session(context, grant, upload_id)
    if digest is None:
        raise RegistryError("DIGEST_INVALID", "digest parameter missing")
    checked_digest(digest)
    session = await _append(context, request, name, session)
    return await _complete(context, name, repository, session, digest)


@router.get("/v2/{name:path}/blobs/uploads/{upload_id}", status_code=204)
async def upload_status(
    name: str, upload_id: str, request: Request, context: RegistryContext = Depends(get_context)
) -> Response:
    """Where the session stands (204 with Range and Location)."""
    grant = await authorize(context, request, name, "push")
    _, session = await _session(context, grant, upload_id)
    return Response(status_code=204, headers=_session_headers(name, session))


@router.delete("/v2/{name:path}/blobs/uploads/{upload_id}", status_code=204)
async def cancel_upload(
    name: str, upload_id: str, request: Request, context: RegistryContext = Depends(get_context)
) -> Response:
    """End the session and drop its bytes (204)."""
    grant = await authorize(context, request, name, "push")
    _, session = await _session(context, grant, upload_id)
    driver = context.locations.driver(session.location)
    await discard_session(context.pool, driver, context.upload_hashers, session)
    return Response(status_code=204)
