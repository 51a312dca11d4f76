"""Blob pulls that miss in a cache organization: streamed from the upstream to the client while the
same bytes are written to storage and verified against the digest, then recorded and linked.

Only blobs that a manifest of the cache repository references are fetched. A blob already stored
(for another repository) is linked, not fetched again. The fill runs as a task of its own that
feeds the client through a short queue: a client that goes away does not stop it (the others
waiting for it need it to finish). Requests that miss the same blob meanwhile, in this process or
another, wait for the fill (coalescing) and are then served from storage like any stored blob. A
HEAD or a ranged GET of a blob not stored yet fills it too, then is answered from storage (Quay's
HEAD downloads a placeholder blob the same way). Once stored, a blob takes the normal blob path.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid
from collections.abc import AsyncIterator

import asyncpg
from fastapi import Request, Response
from fastapi.responses import StreamingResponse

from services.registry.context import RegistryContext
from services.registry.domain.blobstore import link_blob, record_blob
from services.registry.domain.repositories import Repository
from services.registry.proxy import metrics
from services.registry.proxy.coalescing import DATABASE_UNAVAILABLE, Lead
from services.registry.proxy.config import ProxyCacheConfig
from services.registry.proxy.upstream import refuse_fills_while_read_only, upstream_failure
from services.registry.v2.errors import RegistryError
from shared import blob_guard
from shared.events.models import BlobPushed
from shared.events.outbox import enqueue
from shared.oci.upstream_client import UpstreamError
from shared.secret_box import UnreadableSecretError
from shared.storage.paths import blob_path, upload_chunk_path, upload_folder

CACHE_HEADER = "X-Quayside-Cache"
_BATCH_BYTES = 1024 * 1024
# Bytes waiting for the leading client beyond which the fill waits for it; and how long a piece
# for it waits to be joined by more (see _Fill).
_CLIENT_BUFFER_BYTES = 8 * _BATCH_BYTES
_GATHER_S = 0.002
# Batches on their way to storage: up to this many MiB of a fill are held in memory.
_QUEUE_BATCHES = 8


_PLACED = "SELECT EXISTS (SELECT 1 FROM blob_placement WHERE digest = $1)"
# Whether a manifest of the repository ($1) references the blob ($2), and whether it is stored.
_REFERENCED_AND_PLACED = (
    "SELECT EXISTS (SELECT 1 FROM manifest_blob mb JOIN manifest m ON m.id = mb.manifest_id"
    " WHERE mb.digest = $2 AND m.repository_id = $1),"
    " EXISTS (SELECT 1 FROM blob_placement WHERE digest = $2)"
)


async def fill_missing_blob(
    context: RegistryContext, request: Request, repository: Repository, digest: str
) -> Response | None:
    """The response to a GET/HEAD of a blob the cache repository lacks; None when the blob is now
    linked (the usual path serves it) or is not the cache's to fetch (the usual 404)."""
    full_name = f"{repository.namespace}/{repository.name}"
    config = await context.proxy.config_for(context.pool, context.manifests, full_name)
    if config is None:
        return None
    async with context.pool.acquire() as conn:
        referenced, placed = await conn.fetchrow(_REFERENCED_AND_PLACED, repository.id, digest)
        if not referenced:
            return None
        if placed and await _link_if_stored(conn, repository.id, digest):
            return None
    metrics.MISSES.labels("blob").inc()
    try:
        await refuse_fills_while_read_only(context.pool, context.settings)

        async def stored() -> bool | None:
            async with context.pool.acquire() as conn:
                if not await conn.fetchval(_PLACED, digest):
                    return None  # the usual answer while a fill runs: one statement, no transaction
                return True if await _link_if_stored(conn, repository.id, digest) else None

        claimed = await context.proxy.flights.claim(
            f"proxy:blob:{digest}", stored, context.settings.proxy_cache_fill_wait_s
        )
        if not isinstance(claimed, Lead):
            return None
        # A HEAD fills as Quay's does (its HEAD reads the blob through the same model call that
        # downloads a placeholder), and so does a range: both are answered from storage after it.
        whole_body = request.method == "GET" and "range" not in request.headers
        return await _streamed_fill(context, config, repository, digest, claimed, to_client=whole_body)
    except UpstreamError as error:
        raise upstream_failure(error, full_name, digest, "BLOB_UNKNOWN") from error
    except UnreadableSecretError as error:
        raise RegistryError("UNAUTHORIZED", str(error), status=401) from error
    except TimeoutError as error:
        raise RegistryError(
            "UNAVAILABLE", "timed out waiting for the upstream fetch of this blob", status=503
        ) from error
    except DATABASE_UNAVAILABLE as error:
        raise RegistryError("UNAVAILABLE", "the registry database is unavailable", status=503) from error


async def _link_if_stored(conn: asyncpg.Connection, repository_id: int, digest: str) -> bool:
    """Link the blob when some location holds it (stored for another repository, or just filled).

    Under the blob's guard, as a mount: a collector deleting it either has not re-checked yet (and
    sees the link) or has deleted its rows (and the blob is filled again)."""
    async with conn.transaction():
        await blob_guard.hold_for_push(conn, [digest])
        placed = await conn.fetchval(_PLACED, digest)
        if placed:
            await link_blob(conn, repository_id, digest)
            await blob_guard.touch_links(conn, repository_id, [digest])
    return bool(placed)


def _headers(digest: str, size: int | None) -> dict[str, str]:
    headers = {
        "Docker-Content-Digest": digest,
        "Content-Type": "application/octet-stream",
        CACHE_HEADER: "miss",
    }
    if size is not None:
        headers["Content-Length"] = str(size)
    return headers


class _Fill:
    """One blob's copy from the upstream into storage, feeding the leading client as it goes.

    The client is sent what arrived, gathered into pieces of about 1 MiB: every send passes the
    whole middleware stack, which for the upstream's 64 KiB reads cost more than the bytes. A piece
    waits at most _GATHER_S for more bytes, so a slow upstream's first bytes still go out at once.
    The reading waits only while more than _CLIENT_BUFFER_BYTES wait for a slow client."""

    def __init__(self) -> None:
        self._pieces: list[bytes] = []
        self._size = 0
        self._ended = False
        self._error: BaseException | None = None
        self._arrived = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self.client_gone = False

    async def offer(self, chunk: bytes) -> None:
        if self.client_gone:
            return
        self._pieces.append(chunk)
        self._size += len(chunk)
        self._arrived.set()
        if self._size >= _CLIENT_BUFFER_BYTES:
            self._drained.clear()
            await self._drained.wait()

    def end(self, error: BaseException | None = None) -> None:
        """No more bytes: the body is complete (verified), or fails with the error."""
        self._ended, self._error = True, error
        self._arrived.set()

    async def to_client(self) -> AsyncIterator[bytes]:
        try:
            while True:
                await self._arrived.wait()
                if self._size < _BATCH_BYTES and not self._ended:
                    await asyncio.sleep(_GATHER_S)  # coalescing, as Nagle's algorithm does
                # Taken together: whatever arrives while this piece is being sent comes next.
                ended, error = self._ended, self._error
                pieces, self._pieces, self._size = self._pieces, [], 0
                self._arrived.clear()
                self._drained.set()
                if pieces:
                    yield pieces[0] if len(pieces) == 1 else b"".join(pieces)
                if ended:
                    if error is not None:
                        raise error
                    return
        finally:
            self.client_gone = True
            self._pieces, self._size = [], 0
            self._drained.set()  # a fill waiting for room goes on storing


async def _streamed_fill(
    context: RegistryContext,
    config: ProxyCacheConfig,
    repository: Repository,
    digest: str,
    lead: Lead,
    *,
    to_client: bool,
) -> Response | None:
    """Start the fill; the response streaming it when ``to_client``, else None once it is stored."""
    stack = contextlib.AsyncExitStack()
    await stack.enter_async_context(lead)
    try:
        upstream = await stack.enter_async_context(context.proxy.clients.use(config, repository.name))
        size, chunks = await stack.enter_async_context(upstream.open_sized_blob(digest))
    except BaseException:
        await stack.aclose()
        raise
    fill = _Fill()
    task = asyncio.create_task(_copy(context, repository, digest, size, chunks, fill, stack))
    context.proxy.keep(task)
    if not to_client:
        fill.client_gone = True
        await asyncio.shield(task)
        return None
    return StreamingResponse(fill.to_client(), headers=_headers(digest, size))


async def _copy(
    context: RegistryContext,
    repository: Repository,
    digest: str,
    size: int | None,
    chunks: AsyncIterator[bytes],
    fill: _Fill,
    stack: contextlib.AsyncExitStack,
) -> None:
    """Read the upstream, handing every piece to the client at once and, hashed in batches of about
    1 MiB on a thread, to a writer task through a bounded queue: the upstream is read at the pace of
    the slower of the client and the storage, not of the two one after the other, and the client
    is not kept waiting for the storage's sync and the fill's commit."""
    location = context.locations.write_order()[0]  # the first healthy location in preference
    driver = context.locations.driver(location)
    staging = f"proxy-{uuid.uuid4()}"
    algorithm, _, expected_hex = digest.partition(":")
    hasher = hashlib.new(algorithm)
    batches: asyncio.Queue[bytes | None] = asyncio.Queue(_QUEUE_BATCHES)

    async def queued() -> AsyncIterator[bytes]:
        while (batch := await batches.get()) is not None:
            yield batch

    async def read() -> int:
        """Every byte to the client and, in batches of about 1 MiB, to the hasher (a thread, one
        batch behind the reading) and the writer; the client's response ends once the bytes are
        verified, while the writer may still be storing (and syncing) them."""
        received = 0
        pending: list[bytes] = []
        pending_bytes = 0
        hashing: asyncio.Future[None] | None = None

        async def hand_on(batch: bytes) -> asyncio.Future[None]:
            if hashing is not None:
                await hashing  # batches are hashed in order
            metrics.UPSTREAM_BYTES.inc(len(batch))
            await batches.put(batch)
            return asyncio.ensure_future(asyncio.to_thread(hasher.update, batch))

        async for chunk in chunks:
            received += len(chunk)
            await fill.offer(chunk)
            pending.append(chunk)
            pending_bytes += len(chunk)
            if pending_bytes >= _BATCH_BYTES:
                hashing = await hand_on(b"".join(pending))
                pending.clear()
                pending_bytes = 0
        await (await hand_on(b"".join(pending)))
        await batches.put(None)
        if hasher.hexdigest() != expected_hex or (size is not None and received != size):
            raise UpstreamError(f"the upstream served blob {digest} with the wrong content", "invalid")
        fill.end()
        return received

    try:
        async with stack:
            async with asyncio.TaskGroup() as group:  # a failure of either stops the other
                group.create_task(driver.put(upload_chunk_path(staging, 0), queued()))
                reading = group.create_task(read())
            received = reading.result()
            async with context.pool.acquire() as conn, conn.transaction():
                # From the move to the commit, garbage collection cannot delete these bytes.
                await blob_guard.hold_for_push(conn, [digest])
                await driver.move(upload_chunk_path(staging, 0), blob_path(digest))
                await record_blob(
                    conn, digest=digest, size=received, location=location, repository_id=repository.id
                )
                await blob_guard.touch_links(conn, repository.id, [digest])
                await enqueue(
                    conn,
                    BlobPushed(
                        namespace=repository.namespace,
                        repository=repository.name,
                        digest=digest,
                        size=received,
                        location=location,
                    ),
                )
    except BaseException as error:
        fill.end(error if isinstance(error, Exception) else RuntimeError("the fill was cancelled"))
        with contextlib.suppress(Exception):
            await driver.delete(upload_folder(staging))
        if not isinstance(error, Exception):
            raise
        return
    with contextlib.suppress(Exception):
        await driver.delete(upload_folder(staging))
