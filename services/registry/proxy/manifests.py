"""Manifest pulls in a cache organization: answered from the cache while fresh, else checked against
the upstream (a HEAD when a copy is cached; without one, the manifest is fetched at once), fetched
when the upstream names content the cache lacks, and stored: an image or an index with every child
manifest it lacks in one transaction, charged against the organization's Reject limit, evicting the
least recently pulled cached images when it is reached (proxy/eviction.py).

A fresh tag's manifest is handed to the process's in-memory manifest cache, so that later pulls take
the same path (and the same queries: none) as a normal repository's (v2/manifests.py).

A tag is fresh for ``expiration_s`` after its last check against the upstream (proxy_cache_tag);
every pull keeps it alive that long (its lifetime_end, as Quay does), so a tag nobody pulls expires
and goes through the time machine and garbage collection like any other. When the upstream is
unreachable, answers 5xx or 429, a cached tag that is still alive is served (``X-Quayside-Cache:
stale`` and a pull_repo usage-log entry say so); its 404 and 401/403 are passed on. Manifests named
by digest never change: once cached they are served without asking. An index is stored with every
child manifest, fetched at once, so any platform can be pulled later even while the upstream is down.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
from fastapi import Request, Response

from services.registry.context import RegistryContext
from services.registry.domain import manifest_store, quota_enforcement
from services.registry.domain.audit import client_ip
from services.registry.domain.repositories import Repository, ensure_repository
from services.registry.proxy import eviction, metrics
from services.registry.proxy.coalescing import DATABASE_UNAVAILABLE, Lead
from services.registry.proxy.config import ProxyCacheConfig
from services.registry.proxy.upstream import (
    ReadOnlyFillError,
    is_outage,
    refuse_fills_while_read_only,
    upstream_failure,
)
from services.registry.v2.access import Grant, authorize
from services.registry.v2.errors import RegistryError
from shared import blob_guard
from shared.events.models import ManifestPushed
from shared.events.outbox import enqueue
from shared.oci.digest import is_digest
from shared.oci.manifest import ImageManifest, InvalidManifestError, ParsedManifest, parse_manifest
from shared.oci.names import is_valid_tag
from shared.oci.upstream_client import UpstreamError, UpstreamManifest, UpstreamRegistry
from shared.readonly_state import registry_read_only
from shared.secret_box import UnreadableSecretError
from shared.usage_logs import record

CACHE_HEADER = "X-Quayside-Cache"
# Indexes of indexes are followed this deep (OCI allows nesting; real images use one level).
_MAX_INDEX_DEPTH = 3
# A manifest collected between its fetch and its tag's pointing is fetched again, this many times in all.
_POINT_ATTEMPTS = 3
# A fresh tag is handed to the in-memory manifest cache (entries of a few seconds) only while it
# stays fresh at least this much longer, so that no entry outlives the tag's freshness.
_MEMORY_CACHE_MARGIN_S = 60


@dataclass(frozen=True, slots=True)
class CachedTag:
    tag_id: int
    manifest: manifest_store.StoredManifest
    lifetime_end: datetime | None
    checked_at: datetime | None


async def serve_manifest(
    context: RegistryContext, request: Request, config: ProxyCacheConfig, name: str, reference: str
) -> Response:
    """GET or HEAD of a manifest in a cache organization."""
    grant = await authorize(context, request, name, "pull", allow_missing=True)
    if ":" in reference and not is_digest(reference):
        raise RegistryError("DIGEST_INVALID", "invalid digest", detail={"digest": reference[:200]})
    if ":" not in reference and not is_valid_tag(reference):
        raise RegistryError("MANIFEST_UNKNOWN", "manifest unknown", detail={"reference": reference[:200]})
    repository = await _repository(context, grant)
    read_at_generation = context.manifests.generation
    try:
        if ":" in reference:
            stored, state = await _by_digest(context, config, repository, grant, reference)
            cacheable = state == "hit"
        else:
            stored, state, cacheable = await _by_tag(context, request, config, repository, grant, reference)
    except TimeoutError as error:  # waiting for another request's fetch (QUAYSIDE_PROXY_CACHE_FILL_WAIT_S)
        raise RegistryError(
            "UNAVAILABLE", "timed out waiting for the upstream fetch of this manifest", status=503
        ) from error
    except DATABASE_UNAVAILABLE as error:
        raise RegistryError("UNAVAILABLE", "the registry database is unavailable", status=503) from error
    context.pull_stats.record(repository.id, reference, stored.digest)
    if cacheable and stored.content is not None:
        # Served like a normal repository's manifest from now on (v2/manifests.py), while fresh.
        entry = (repository.id, stored.digest, stored.media_type, stored.content)
        context.manifests.put(name, reference, entry, read_at_generation)
    content = stored.content if request.method == "GET" and stored.content is not None else b""
    headers = {
        "Content-Type": stored.media_type,
        "Content-Length": str(stored.size),
        "Docker-Content-Digest": stored.digest,
        "ETag": f'"{stored.digest}"',
        CACHE_HEADER: state,
    }
    return Response(content=content, headers=headers)


def mark_memory_hit(response: Response) -> None:
    """A manifest of a cache organization answered from the in-memory manifest cache: a hit."""
    metrics.HITS.inc()
    response.headers[CACHE_HEADER] = "hit"


async def _repository(context: RegistryContext, grant: Grant) -> Repository:
    """The cache repository, created on its first pull (by whoever may create repositories here);
    while the registry is read-only, an uncached repository's pull is refused before writing it."""
    if grant.repository is not None:
        return grant.repository
    assert grant.namespace_id is not None
    try:
        await refuse_fills_while_read_only(context.pool, context.settings)
    except UpstreamError as error:
        raise upstream_failure(error, grant.full_name, "") from error
    async with context.pool.acquire() as conn:
        return await ensure_repository(
            conn, grant.namespace_id, grant.namespace, grant.name, grant.caller.identity
        )


def _wait_s(context: RegistryContext) -> float:
    return context.settings.proxy_cache_fill_wait_s


async def _by_digest(
    context: RegistryContext, config: ProxyCacheConfig, repository: Repository, grant: Grant, digest: str
) -> tuple[manifest_store.StoredManifest, str]:
    async def cached() -> manifest_store.StoredManifest | None:
        return await manifest_store.find_manifest(
            context.pool, repository.id, digest, by_digest=True, with_content=True
        )

    found = await cached()
    if found is not None:
        metrics.HITS.inc()
        return found, "hit"
    metrics.MISSES.labels("manifest").inc()
    claimed = await context.proxy.flights.claim(
        f"proxy:manifest:{repository.id}:{digest}", cached, _wait_s(context)
    )
    if isinstance(claimed, Lead):
        async with claimed:
            try:
                await refuse_fills_while_read_only(context.pool, context.settings)
                await _fill_digest(context, config, repository, grant, digest)
            except UpstreamError as error:
                raise upstream_failure(error, grant.full_name, digest) from error
            except UnreadableSecretError as error:
                raise RegistryError("UNAUTHORIZED", str(error), status=401) from error
        filled = await cached()
        if filled is None:
            raise _collected_meanwhile()
        return filled, "miss"
    return claimed, "miss"


async def _fill_digest(
    context: RegistryContext, config: ProxyCacheConfig, repository: Repository, grant: Grant, digest: str
) -> None:
    async with context.proxy.clients.use(config, grant.name) as upstream:
        manifest = await upstream.fetch_manifest(digest)
        for _ in range(_POINT_ATTEMPTS):
            image = await _fetch_image(context, upstream, repository, manifest)
            if await _store_image(context, config, grant, repository, image, None):
                return
    raise _collected_meanwhile()


async def _cached_tag(
    db: asyncpg.Pool | asyncpg.Connection, repository_id: int, tag: str
) -> CachedTag | None:
    row = await db.fetchrow(
        "SELECT t.id, m.digest, m.media_type, m.size, m.content, t.lifetime_end, c.checked_at"
        " FROM tag t JOIN manifest m ON m.id = t.manifest_id"
        " LEFT JOIN proxy_cache_tag c ON c.repository_id = t.repository_id AND c.tag = t.name"
        " WHERE t.repository_id = $1 AND t.name = $2 AND (t.lifetime_end IS NULL OR t.lifetime_end > now())",
        repository_id,
        tag,
    )
    if row is None:
        return None
    stored = manifest_store.StoredManifest(row["digest"], row["media_type"], row["size"], row["content"])
    return CachedTag(row["id"], stored, row["lifetime_end"], row["checked_at"])


def _is_fresh(cached: CachedTag | None, config: ProxyCacheConfig, now: datetime) -> bool:
    return (
        cached is not None
        and cached.checked_at is not None
        and cached.checked_at + timedelta(seconds=config.expiration_s) > now
    )


async def _by_tag(
    context: RegistryContext,
    request: Request,
    config: ProxyCacheConfig,
    repository: Repository,
    grant: Grant,
    tag: str,
) -> tuple[manifest_store.StoredManifest, str, bool]:
    """The tag's manifest, the X-Quayside-Cache state, and whether it stays fresh long enough for
    the in-memory manifest cache (whose entries live a few seconds)."""
    cached = await _cached_tag(context.pool, repository.id, tag)
    now = datetime.now(UTC)
    if _is_fresh(cached, config, now):
        assert cached is not None
        metrics.HITS.inc()
        await _renew(context, cached, config)
        lasting = _is_fresh(cached, config, now + timedelta(seconds=_MEMORY_CACHE_MARGIN_S))
        return cached.manifest, "hit", lasting
    metrics.MISSES.labels("manifest").inc()

    async def refreshed() -> CachedTag | None:
        found = await _cached_tag(context.pool, repository.id, tag)
        return found if _is_fresh(found, config, datetime.now(UTC)) else None

    try:
        await refuse_fills_while_read_only(context.pool, context.settings)
        claimed = await context.proxy.flights.claim(
            f"proxy:tag:{repository.id}:{tag}", refreshed, _wait_s(context)
        )
        if isinstance(claimed, Lead):
            async with claimed:
                await _refresh_tag(context, config, repository, grant, tag, cached_before=cached is not None)
            refreshed_now = await _cached_tag(context.pool, repository.id, tag)
            if refreshed_now is None:  # deleted by its owner meanwhile
                raise _collected_meanwhile()
            return refreshed_now.manifest, "miss", False
    except UpstreamError as error:
        if cached is None or not is_outage(error):
            raise upstream_failure(error, grant.full_name, tag) from error
        metrics.STALE_SERVES.inc()
        if isinstance(error, ReadOnlyFillError):
            return cached.manifest, "stale", False  # nothing is written while read-only
        async with context.pool.acquire() as conn:
            await record(
                conn,
                "pull_repo",
                performer=grant.caller.identity,
                ip=client_ip(request),
                namespace=grant.namespace,
                repository=grant.name,
                metadata={
                    "tag": tag,
                    "manifest_digest": cached.manifest.digest,
                    "proxy_cache": "stale",
                    "upstream_error": str(error)[:500],
                },
            )
        return cached.manifest, "stale", False
    except UnreadableSecretError as error:
        raise RegistryError("UNAUTHORIZED", str(error), status=401) from error
    return claimed.manifest, "miss", False


async def _renew(context: RegistryContext, cached: CachedTag, config: ProxyCacheConfig) -> None:
    """Keep the tag alive expiration_s from now; written only once a tenth of that has passed, and
    not while the registry is read-only."""
    renewed_end = datetime.now(UTC) + timedelta(seconds=config.expiration_s)
    if cached.lifetime_end is not None and renewed_end - cached.lifetime_end < timedelta(
        seconds=config.expiration_s / 10
    ):
        return
    if await registry_read_only(context.pool, context.settings):
        return
    await context.pool.execute(
        "UPDATE tag SET lifetime_end = now() + make_interval(secs => $2), expiry_pending = true"
        " WHERE id = $1 AND lifetime_end IS NOT NULL AND lifetime_end > now()",
        cached.tag_id,
        float(config.expiration_s),
    )


async def _refresh_tag(
    context: RegistryContext,
    config: ProxyCacheConfig,
    repository: Repository,
    grant: Grant,
    tag: str,
    *,
    cached_before: bool,
) -> None:
    """Ask the upstream what the tag names now; fetch it unless cached; point the tag at it.

    With a cached copy, a HEAD asks (nothing is downloaded while the tag did not move); without one,
    the tag's manifest is fetched at once (one request). A manifest collected by garbage collection
    between its lookup and the tag's pointing is fetched again."""
    async with context.proxy.clients.use(config, grant.name) as upstream:
        fetched: UpstreamManifest | None = None
        if cached_before:
            digest = await upstream.manifest_digest(tag)
        else:
            fetched = await upstream.fetch_manifest(tag)
            digest = fetched.digest
        for _ in range(_POINT_ATTEMPTS):
            known = await manifest_store.find_manifest(
                context.pool, repository.id, digest, by_digest=True, with_content=False
            )
            if known is not None:
                async with context.pool.acquire() as conn, conn.transaction():
                    if await _point_tag(conn, config, repository, tag, digest):
                        return
                continue
            if fetched is None or fetched.digest != digest:
                fetched = await upstream.fetch_manifest(digest)
            image = await _fetch_image(context, upstream, repository, fetched)
            if await _store_image(context, config, grant, repository, image, tag):
                return
    raise _collected_meanwhile()


def _collected_meanwhile() -> RegistryError:
    return RegistryError("UNAVAILABLE", "the manifest was removed while it was being cached", status=503)


async def _point_tag(
    conn: asyncpg.Connection, config: ProxyCacheConfig, repository: Repository, tag: str, digest: str
) -> bool:
    """Point the tag at the stored manifest, alive expiration_s from now, checked now; False when
    the manifest is not stored (any more). Locked FOR KEY SHARE: garbage collection skips it."""
    manifest_id = await conn.fetchval(
        "SELECT id FROM manifest WHERE repository_id = $1 AND digest = $2 FOR KEY SHARE",
        repository.id,
        digest,
    )
    if manifest_id is None:
        return False
    await manifest_store.point_tag(conn, repository.id, tag, manifest_id)
    await conn.execute(
        "UPDATE tag SET lifetime_end = now() + make_interval(secs => $3), expiry_pending = true"
        " WHERE repository_id = $1 AND name = $2 AND (lifetime_end IS NULL OR lifetime_end > now())",
        repository.id,
        tag,
        float(config.expiration_s),
    )
    await conn.execute(
        "INSERT INTO proxy_cache_tag (repository_id, tag, digest, checked_at) VALUES ($1, $2, $3, now())"
        " ON CONFLICT (repository_id, tag) DO UPDATE SET digest = EXCLUDED.digest, checked_at = now()",
        repository.id,
        tag,
        digest,
    )
    return True


def _parsed(manifest: UpstreamManifest) -> ParsedManifest:
    try:
        return parse_manifest(manifest.body, manifest.content_type, manifest.digest.partition(":")[0])
    except InvalidManifestError as error:
        raise UpstreamError(
            f"the upstream's manifest {manifest.digest} is invalid: {error}", "invalid"
        ) from error


# An upstream manifest with the child manifests the cache lacks, each parsed: children first, the
# manifest asked for last (the order they are saved in).
_Image = list[tuple[UpstreamManifest, ParsedManifest]]


async def _fetch_image(
    context: RegistryContext, upstream: UpstreamRegistry, repository: Repository, manifest: UpstreamManifest
) -> _Image:
    """The manifest and, for an index, every child manifest the repository lacks (fetched at once,
    followed _MAX_INDEX_DEPTH levels deep)."""
    image: _Image = []

    async def visit(current: UpstreamManifest, depth: int) -> None:
        parsed = await asyncio.to_thread(_parsed, current)
        if parsed.child_digests:
            if depth >= _MAX_INDEX_DEPTH:
                raise UpstreamError(f"indexes nested deeper than {_MAX_INDEX_DEPTH} levels", "invalid")
            async with context.pool.acquire() as conn:
                missing = await manifest_store.missing_manifests(conn, repository.id, parsed.child_digests)
            for child in await asyncio.gather(*(upstream.fetch_manifest(digest) for digest in missing)):
                await visit(child, depth + 1)
        image.append((current, parsed))

    await visit(manifest, 0)
    return image


async def _store_image(
    context: RegistryContext,
    config: ProxyCacheConfig,
    grant: Grant,
    repository: Repository,
    image: _Image,
    tag: str | None,
) -> bool:
    """Store the image in one transaction: every manifest of it, the tag (when given) pointed at
    its top manifest, the fill's log entry and event. An index is thus never visible without its
    children. False when a child the cache held before was collected meanwhile (fetch again).

    Charged against the organization's Reject limit as a push is; at the limit, the least recently
    pulled cached images are evicted to make room (proxy/eviction.py), and the fill is refused
    (DENIED) only when the image alone is larger than the limit."""
    saving = [parsed.digest for _, parsed in image]
    blob_digests = sorted({digest for _, parsed in image for digest in parsed.blob_digests})
    listed = sorted({child for _, parsed in image for child in parsed.child_digests} - set(saving))
    default_reject_bytes = context.settings.default_system_reject_quota_bytes
    async with context.pool.acquire() as conn, conn.transaction():
        # As a manifest PUT: a collector deleting one of these blobs has either not re-checked it yet
        # (and sees this manifest's reference) or deleted its rows (announced again here, refetched).
        await blob_guard.hold_for_push(conn, blob_digests)
        if listed and await manifest_store.missing_manifests(conn, repository.id, listed):
            return False
        for _, parsed in image:
            await _record_announced_blobs(conn, parsed)
        charge = quota_enforcement.ManifestCharge(conn, repository, blob_digests, default_reject_bytes)
        try:
            await charge.lock()
            if charge.enforced:
                await eviction.make_room(conn, repository, blob_digests, saving, default_reject_bytes)
            for manifest, parsed in image:
                await manifest_store.save_manifest(conn, repository.id, parsed, manifest.body)
            await charge.commit()
        except quota_enforcement.QuotaExceededError as error:
            raise RegistryError("DENIED", str(error), detail={"namespace": error.namespace}) from error
        top = image[-1][1]
        if tag is not None and not await _point_tag(conn, config, repository, tag, top.digest):
            return False
        await _log_fill(conn, grant, top, tag)
    return True


async def _record_announced_blobs(conn: asyncpg.Connection, parsed: ParsedManifest) -> None:
    """Blob rows (digest, size as the manifest says) for the blobs a cached manifest references:
    their bytes come on demand, with a placement once fetched and verified."""
    if not isinstance(parsed.document, ImageManifest):
        return
    wanted = set(parsed.blob_digests)
    sizes = {
        descriptor.digest: descriptor.size
        for descriptor in (parsed.document.config, *parsed.document.layers)
        if descriptor.digest in wanted
    }
    await conn.execute(
        "INSERT INTO blob (digest, size) SELECT * FROM unnest($1::text[], $2::bigint[]) ON CONFLICT DO NOTHING",
        list(sizes),
        list(sizes.values()),
    )


async def _log_fill(conn: asyncpg.Connection, grant: Grant, stored: ParsedManifest, tag: str | None) -> None:
    """A fill is a pull (usage log pull_repo, marked proxy_cache: fill) and, for the other services
    (quota, replication, notifications), new content: ManifestPushed."""
    metadata: dict[str, str] = {"manifest_digest": stored.digest, "proxy_cache": "fill"}
    if tag is not None:
        metadata["tag"] = tag
    await record(
        conn,
        "pull_repo",
        performer=grant.caller.identity,
        ip=None,
        namespace=grant.namespace,
        repository=grant.name,
        metadata=metadata,
    )
    await enqueue(
        conn,
        ManifestPushed(
            namespace=grant.namespace,
            repository=grant.name,
            digest=stored.digest,
            media_type=stored.media_type,
            size=stored.size,
            tags=[tag] if tag else [],
            pusher=None,
        ),
    )
