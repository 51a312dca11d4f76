"""Blob upload sessions: the resumable state machine behind /v2/<name>/blobs/uploads.

A session is a row of table upload: its storage location (the first healthy push location when it
started; a session still without bytes moves to another when its location fails),
the bytes received (byte_offset) and the chunk slots used (chunk_count). Each PATCH or PUT body
becomes one object, upload_chunk_path(id, slot), in that location, so any replica can continue a
session and a restart loses nothing.

A body is stored in three steps: claim the next slot (only while the offset is still the one the
request started from), write the body there, then advance the offset (only if no other request
advanced it meanwhile). A request that loses a race deletes its own slot's object, so concurrent
requests on one session never overwrite each other's bytes. The session's bytes are its stored
chunks in slot order. At completion their sizes must add up to byte_offset exactly, which rules
out a chunk still being written by a concurrent request (or left by a crash: the client then
starts over).

The running sha256 of a session is kept in memory (HasherCache), valid while its offset equals the
row's. Without it (restart, another replica) and for sha512 digests, the stored chunks are read
again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterable, AsyncIterator

import asyncpg
from pydantic import BaseModel, ConfigDict

from services.registry.domain.blobstore import has_placement, record_blob, store_chunks_as_blob
from services.registry.domain.repositories import Repository
from shared import blob_guard
from shared.events.models import BlobPushed
from shared.events.outbox import enqueue
from shared.oci.digest import new_hasher, parse_digest
from shared.storage import StorageDriver, StorageError
from shared.storage.paths import upload_chunk_path, upload_folder

logger = logging.getLogger(__name__)

BUFFER_BYTES = 1024 * 1024
HASHER_CACHE_ENTRIES = 4096
_SESSION_COLUMNS = "id, repository_id, location, byte_offset, chunk_count"


class UploadSession(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: uuid.UUID
    repository_id: int
    location: str
    byte_offset: int
    chunk_count: int

    @property
    def folder(self) -> str:
        return upload_folder(str(self.id))


class UploadError(Exception):
    """Base class of the errors an upload request can end with."""


class SessionChangedError(UploadError):
    """Another request moved the session on (or ended it) while this one worked on it."""


class InvalidBodyError(UploadError):
    """The body did not match its declared length, or the client stopped sending it."""


class StoredChunksError(UploadError):
    """The stored chunks do not add up to the session's offset."""


class DigestMismatchError(UploadError):
    def __init__(self, expected: str, computed: str) -> None:
        super().__init__(f"content has digest {computed}, not {expected}")
        self.expected = expected
        self.computed = computed


class HasherCache:
    """Running sha256 states of recent sessions, by upload id, each valid at one offset.

    Process-local and bounded: the least recently used states are dropped, to be rebuilt from
    storage when their session continues.
    """

    def __init__(self, capacity: int = HASHER_CACHE_ENTRIES) -> None:
        self._capacity = capacity
        self._entries: OrderedDict[uuid.UUID, tuple[int, hashlib._Hash]] = OrderedDict()

    def get(self, upload_id: uuid.UUID, offset: int) -> hashlib._Hash | None:
        """A copy of the state after offset bytes, or None when not known."""
        entry = self._entries.get(upload_id)
        if entry is None or entry[0] != offset:
            return None
        self._entries.move_to_end(upload_id)
        return entry[1].copy()

    def put(self, upload_id: uuid.UUID, offset: int, hasher: hashlib._Hash) -> None:
        """Remember hasher (the caller no longer updates it) as the state after offset bytes."""
        self._entries[upload_id] = (offset, hasher)
        self._entries.move_to_end(upload_id)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)

    def discard(self, upload_id: uuid.UUID) -> None:
        self._entries.pop(upload_id, None)


async def start_session(conn: asyncpg.Connection, repository_id: int, location: str) -> UploadSession:
    row = await conn.fetchrow(
        f"INSERT INTO upload (id, repository_id, location) VALUES ($1, $2, $3) RETURNING {_SESSION_COLUMNS}",
        uuid.uuid4(),
        repository_id,
        location,
    )
    return UploadSession(**dict(row))


async def relocate_empty_session(
    pool: asyncpg.Pool, session: UploadSession, location: str
) -> UploadSession | None:
    """Move a session that holds no bytes yet to another storage location (its own is failing);
    None when the session has moved on or ended meanwhile."""
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "UPDATE upload SET location = $3, updated_at = now()"
            f" WHERE id = $1 AND byte_offset = 0 AND location = $2 RETURNING {_SESSION_COLUMNS}",
            session.id,
            session.location,
            location,
        )
    return UploadSession(**dict(row)) if row else None


async def find_session(
    conn: asyncpg.Connection, upload_id: uuid.UUID, repository_id: int
) -> UploadSession | None:
    """The session, when it exists and belongs to the repository."""
    row = await conn.fetchrow(
        f"SELECT {_SESSION_COLUMNS} FROM upload WHERE id = $1 AND repository_id = $2",
        upload_id,
        repository_id,
    )
    return UploadSession(**dict(row)) if row else None


async def append_chunk(
    pool: asyncpg.Pool,
    driver: StorageDriver,
    hashers: HasherCache,
    session: UploadSession,
    body: AsyncIterable[bytes],
    expected_length: int | None,
) -> UploadSession:
    """Store body as the session's next chunk and return the session after it.

    expected_length is the body's declared length (None: unknown); 0 stores nothing. Raises
    InvalidBodyError when the body does not match it, SessionChangedError when another request
    moved the session on first; in both cases nothing of the body is kept.
    """
    if expected_length == 0:
        return session
    hasher = await _session_hasher(driver, hashers, session, "sha256")
    slot = await _claim_slot(pool, session)
    path = upload_chunk_path(str(session.id), slot)
    received = _HashedBody(body, hasher, expected_length)
    await driver.put(path, received.buffers())
    advanced = await _advance(pool, session, received.size)
    if advanced is None:
        await driver.delete(path)
        raise SessionChangedError(f"upload {session.id} moved on while a chunk was written")
    hashers.put(session.id, advanced.byte_offset, received.hasher)
    return advanced


async def complete_session(
    pool: asyncpg.Pool,
    driver: StorageDriver,
    hashers: HasherCache,
    session: UploadSession,
    digest: str,
    repository: Repository,
) -> None:
    """Verify the session's bytes against digest and make them a blob of the repository.

    On a mismatch the session is discarded and DigestMismatchError raised: nothing is stored.
    Otherwise the bytes go to blob_path(digest) in the session's location (unless a copy is
    already placed there), and one transaction records the blob, its placement and its link to
    the repository, ends the session and enqueues BlobPushed. Raises SessionChangedError or
    StoredChunksError when the stored chunks are not exactly the session's bytes.
    """
    algorithm, _ = parse_digest(digest)
    hasher = await _session_hasher(driver, hashers, session, algorithm)
    computed = f"{algorithm}:{hasher.hexdigest()}"
    if computed != digest:
        await discard_session(pool, driver, hashers, session)
        raise DigestMismatchError(digest, computed)
    chunks = await _stored_chunks(driver, session)
    sizes = await asyncio.gather(*(driver.stat(chunk) for chunk in chunks))
    if sum(sizes) != session.byte_offset:
        raise StoredChunksError(
            f"upload {session.id}: chunks hold {sum(sizes)} bytes, not {session.byte_offset}"
        )
    async with pool.acquire() as conn, conn.transaction():
        # From the placement check to the commit, garbage collection cannot delete these bytes.
        await blob_guard.hold_for_push(conn, [digest])
        if not await has_placement(conn, digest, session.location):
            await store_chunks_as_blob(driver, chunks, digest)
        await _end(conn, session)
        await record_blob(
            conn,
            digest=digest,
            size=session.byte_offset,
            location=session.location,
            repository_id=repository.id,
        )
        await blob_guard.touch_links(conn, repository.id, [digest])
        event = BlobPushed(
            namespace=repository.namespace,
            repository=repository.name,
            digest=digest,
            size=session.byte_offset,
            location=session.location,
        )
        await enqueue(conn, event)
    hashers.discard(session.id)
    await _drop_folder(driver, session)


async def discard_session(
    pool: asyncpg.Pool, driver: StorageDriver, hashers: HasherCache, session: UploadSession
) -> None:
    """End the session and delete every byte it received."""
    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM upload WHERE id = $1", session.id)
    hashers.discard(session.id)
    await _drop_folder(driver, session)


async def _drop_folder(driver: StorageDriver, session: UploadSession) -> None:
    """Delete the ended session's chunks; a storage failure leaves them to the GC janitor, which
    deletes upload folders without a session."""
    try:
        await driver.delete(session.folder)
    except StorageError as error:
        logger.warning("upload %s: chunks left in location %s: %s", session.id, session.location, error)


async def _claim_slot(pool: asyncpg.Pool, session: UploadSession) -> int:
    """Reserve the next chunk slot while the session is still at session.byte_offset."""
    async with pool.acquire() as conn:
        slot = await conn.fetchval(
            "UPDATE upload SET chunk_count = chunk_count + 1, updated_at = now()"
            " WHERE id = $1 AND byte_offset = $2 RETURNING chunk_count - 1",
            session.id,
            session.byte_offset,
        )
    if slot is None:
        raise SessionChangedError(f"upload {session.id} is no longer at offset {session.byte_offset}")
    return int(slot)


async def _advance(pool: asyncpg.Pool, session: UploadSession, size: int) -> UploadSession | None:
    """Add size bytes to the offset unless it moved from session.byte_offset; None when it did."""
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "UPDATE upload SET byte_offset = byte_offset + $3, updated_at = now()"
            f" WHERE id = $1 AND byte_offset = $2 RETURNING {_SESSION_COLUMNS}",
            session.id,
            session.byte_offset,
            size,
        )
    return UploadSession(**dict(row)) if row else None


async def _end(conn: asyncpg.Connection, session: UploadSession) -> None:
    """Delete the session's row, provided no chunk was added since session was read."""
    status = await conn.execute(
        "DELETE FROM upload WHERE id = $1 AND byte_offset = $2", session.id, session.byte_offset
    )
    if status == "DELETE 0":
        raise SessionChangedError(f"upload {session.id} changed or ended during completion")


async def _stored_chunks(driver: StorageDriver, session: UploadSession) -> list[str]:
    """The session's chunk objects in slot order (slots claimed later are left out)."""
    claimed = {upload_chunk_path(str(session.id), slot) for slot in range(session.chunk_count)}
    return [path for path in await driver.list(session.folder) if path in claimed]


async def _session_hasher(
    driver: StorageDriver, hashers: HasherCache, session: UploadSession, algorithm: str
) -> hashlib._Hash:
    """A hasher fed with the session's bytes so far: from the cache, else from the chunks that
    make up byte_offset (chunks after them are still being written, or were abandoned)."""
    if algorithm == "sha256" and (cached := hashers.get(session.id, session.byte_offset)) is not None:
        return cached
    hasher = new_hasher(algorithm)
    remaining = session.byte_offset
    for chunk in await _stored_chunks(driver, session):
        if remaining == 0:
            break
        async for data in driver.read(chunk):
            remaining -= len(data)
            if remaining < 0:
                raise StoredChunksError(f"upload {session.id}: a chunk crosses offset {session.byte_offset}")
            await asyncio.to_thread(hasher.update, data)
    if remaining:
        raise StoredChunksError(f"upload {session.id}: chunks lack {remaining} bytes")
    return hasher


class _HashedBody:
    """A request body on its way to storage: in buffers of about BUFFER_BYTES, length-checked,
    and hashed off the event loop."""

    def __init__(
        self, body: AsyncIterable[bytes], hasher: hashlib._Hash, expected_length: int | None
    ) -> None:
        self._body = body
        self._expected_length = expected_length
        self.hasher = hasher
        self.size = 0

    async def buffers(self) -> AsyncIterator[bytes]:
        """Yield the body; raise InvalidBodyError, before its end, when its length is wrong."""
        async for buffer in _rebuffered(self._body):
            self.size += len(buffer)
            if self._expected_length is not None and self.size > self._expected_length:
                raise InvalidBodyError(f"body longer than the declared {self._expected_length} bytes")
            # Hash in a thread while the consumer writes the same buffer; the next buffer waits.
            hashing = asyncio.ensure_future(asyncio.to_thread(self.hasher.update, buffer))
            try:
                yield buffer
            finally:
                await hashing
        if self._expected_length is not None and self.size != self._expected_length:
            raise InvalidBodyError(f"body of {self.size} bytes, {self._expected_length} declared")


async def _rebuffered(pieces: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    buffer = bytearray()
    async for piece in pieces:
        buffer += piece
        if len(buffer) >= BUFFER_BYTES:
            yield bytes(buffer)
            buffer.clear()
    if buffer:
        yield bytes(buffer)
