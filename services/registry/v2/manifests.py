"""Manifests: PUT, GET/HEAD and DELETE /v2/<name>/manifests/<reference> (a tag or a digest)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import asyncpg
from fastapi import APIRouter, Depends, Request, Response

from services.registry.context import RegistryContext, get_context
from services.registry.domain import (
    audit,
    immutability,
    manifest_labels,
    manifest_store,
    quota_enforcement,
    tag_lifecycle,
)
from services.registry.proxy import manifests as proxy_manifests
from services.registry.v2.access import authorize, identify, may_pull
from services.registry.v2.artifact_policy import check_artifact_policy
from services.registry.v2.errors import RegistryError
from services.registry.v2.manifest_cache import CachedManifest, ManifestRow, ReadManifest
from shared import blob_guard
from shared.events.models import ManifestPushed
from shared.events.outbox import enqueue
from shared.oci.digest import is_digest
from shared.oci.manifest import InvalidManifestError, ParsedManifest, parse_manifest
from shared.oci.names import is_valid_tag

router = APIRouter()

_PATH = "/v2/{name:path}/manifests/{reference}"


def is_digest_reference(reference: str) -> bool:
    """True for a digest, False for a tag; DIGEST_INVALID for a malformed digest (tags have no ':')."""
    if ":" not in reference:
        return False
    if not is_digest(reference):
        raise RegistryError("DIGEST_INVALID", "invalid digest", detail={"digest": reference[:200]})
    return True


def manifest_unknown(name: str, reference: str) -> RegistryError:
    return RegistryError(
        "MANIFEST_UNKNOWN", "manifest unknown", detail={"name": name, "reference": reference[:200]}
    )


def _too_large(limit: int) -> RegistryError:
    return RegistryError(
        "MANIFEST_INVALID", f"manifest exceeds {limit} bytes", detail={"limit": limit}, status=413
    )


async def read_manifest_body(request: Request, limit: int) -> bytes:
    """The request body; 413 as soon as it is known to exceed the limit, without reading further."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    received = bytearray()
    async for chunk in request.stream():
        received += chunk
        if len(received) > limit:
            raise _too_large(limit)
    return bytes(received)


def _parse(body: bytes, content_type: str | None, algorithm: str) -> ParsedManifest:
    try:
        return parse_manifest(body, content_type, algorithm)
    except InvalidManifestError as error:
        raise RegistryError("MANIFEST_INVALID", str(error)) from error


async def _check_references(conn: asyncpg.Connection, repository_id: int, manifest: ParsedManifest) -> None:
    """MANIFEST_BLOB_UNKNOWN unless every blob is linked to the repository and every child is in it."""
    missing = await manifest_store.missing_blobs(conn, repository_id, manifest.blob_digests)
    missing += await manifest_store.missing_manifests(conn, repository_id, manifest.child_digests)
    if missing:
        raise RegistryError(
            "MANIFEST_BLOB_UNKNOWN",
            f"manifest references unknown content {missing[0]}",
            detail={"digest": missing[0], "missing": missing},
        )


@contextlib.contextmanager
def _immutable_tags_denied() -> Iterator[None]:
    """A change refused by a tag immutability policy answers DENIED, as other refused writes do."""
    try:
        yield
    except immutability.ImmutableTagError as error:
        raise RegistryError("DENIED", str(error), detail={"tag": error.tag}) from error


@contextlib.contextmanager
def quota_denied() -> Iterator[None]:
    """A push over the namespace's Reject limit answers DENIED, as Quay (and podman prints it)."""
    try:
        yield
    except quota_enforcement.QuotaExceededError as error:
        raise RegistryError("DENIED", str(error), detail={"namespace": error.namespace}) from error


@router.put(_PATH, status_code=201)
async def put_manifest(
    name: str, reference: str, request: Request, context: RegistryContext = Depends(get_context)
) -> Response:
    """Store a manifest under a tag or its digest; 201 with its location and digest."""
    grant = await authorize(context, request, name, "push")
    by_digest = is_digest_reference(reference)
    if not by_digest and not is_valid_tag(reference):
        raise RegistryError(
            "MANIFEST_INVALID",
            "invalid tag: at most 128 characters of [a-zA-Z0-9_.-], not starting with '.' or '-'",
            detail={"tag": reference[:200]},
        )
    body = await read_manifest_body(request, context.settings.max_manifest_bytes)
    algorithm = reference.partition(":")[0] if by_digest else "sha256"
    manifest = await asyncio.to_thread(_parse, body, request.headers.get("content-type"), algorithm)
    check_artifact_policy(manifest, context.settings)
    if by_digest and manifest.digest != reference:
        raise RegistryError(
            "DIGEST_INVALID",
            "the manifest's digest does not match the reference",
            detail={"reference": reference, "digest": manifest.digest},
        )
    tags = [] if by_digest else [reference]
    labels = await manifest_labels.pushed_labels(context, manifest)
    async with context.pool.acquire() as conn, conn.transaction():
        repository = await grant.repository_for_write(conn)
        await blob_guard.hold_for_push(conn, manifest.blob_digests)
        await _check_references(conn, repository.id, manifest)
        with _immutable_tags_denied():
            await immutability.refuse_moving_immutable_tags(conn, repository.id, tags, manifest.digest)
        charge = quota_enforcement.ManifestCharge(
            conn, repository, manifest.blob_digests, context.settings.default_system_reject_quota_bytes
        )
        await charge.lock()
        previous_targets = await audit.live_tag_targets(conn, repository.id, tags)
        manifest_id = await manifest_store.save_manifest(conn, repository.id, manifest, body)
        with quota_denied():
            await charge.commit()
        for tag in tags:
            await manifest_store.point_tag(conn, repository.id, tag, manifest_id)
        await manifest_labels.apply_pushed_labels(conn, repository.id, manifest_id, tags, labels)
        identity = grant.caller.identity
        await audit.log_push(
            conn, request, identity, grant.namespace, grant.name, manifest.digest, previous_targets
        )
        await enqueue(
            conn,
            ManifestPushed(
                namespace=grant.namespace,
                repository=grant.name,
                digest=manifest.digest,
                media_type=manifest.media_type,
                size=manifest.size,
                tags=tags,
                pusher=identity.name if identity else None,
            ),
        )
    headers = {
        "Location": f"/v2/{name}/manifests/{manifest.digest}",
        "Docker-Content-Digest": manifest.digest,
    }
    if manifest.subject_digest:
        headers["OCI-Subject"] = manifest.subject_digest
    return Response(status_code=201, headers=headers)


@router.api_route(_PATH, methods=["GET", "HEAD"])
async def get_manifest(
    name: str, reference: str, request: Request, context: RegistryContext = Depends(get_context)
) -> Response:
    """The manifest's bytes exactly as pushed, with its media type and digest (headers only for HEAD)."""
    proxy = await context.proxy.config_for(context.pool, context.manifests, name)
    with_content = request.method == "GET"
    if with_content and (cached := await _cached_pull(context, request, name, reference)):
        context.pull_stats.record(cached.repository_id, reference, cached.digest)
        response = _manifest_response(cached.digest, cached.media_type, cached.content)
        if proxy:  # a cache organization's fresh manifest, as serve_manifest cached it
            proxy_manifests.mark_memory_hit(response)
        else:
            context.manifests.refresh_ahead(name, reference, cached, _read_again(context, cached, reference))
        return response
    if proxy:
        return await proxy_manifests.serve_manifest(context, request, proxy, name, reference)
    read_at_generation = context.manifests.generation
    grant = await authorize(context, request, name, "pull")
    assert grant.repository is not None  # authorize answers NAME_UNKNOWN to pulls of unknown repositories
    manifest = await manifest_store.find_manifest(
        context.pool,
        grant.repository.id,
        reference,
        by_digest=is_digest_reference(reference),
        with_content=with_content,
    )
    if manifest is None:
        raise manifest_unknown(name, reference)
    if manifest.content is None:
        return _manifest_response(manifest.digest, manifest.media_type, b"", size=manifest.size)
    entry = (grant.repository.id, manifest.digest, manifest.media_type, manifest.content)
    context.manifests.put(name, reference, entry, read_at_generation)
    context.pull_stats.record(grant.repository.id, reference, manifest.digest)
    return _manifest_response(manifest.digest, manifest.media_type, manifest.content)


async def _cached_pull(
    context: RegistryContext, request: Request, name: str, reference: str
) -> CachedManifest | None:
    """The cached manifest, when the caller may pull from the repository."""
    cached = context.manifests.get(name, reference)
    if cached is None or not await may_pull(context, await identify(context, request), name):
        return None
    return cached


def _read_again(context: RegistryContext, cached: CachedManifest, reference: str) -> ReadManifest:
    """What the cached entry's repository and reference name now (None: nothing, or no content)."""

    async def read() -> ManifestRow | None:
        manifest = await manifest_store.find_manifest(
            context.pool,
            cached.repository_id,
            reference,
            by_digest=is_digest_reference(reference),
            with_content=True,
        )
        if manifest is None or manifest.content is None:
            return None
        return cached.repository_id, manifest.digest, manifest.media_type, manifest.content

    return read


def _manifest_response(digest: str, media_type: str, content: bytes, size: int | None = None) -> Response:
    headers = {
        "Content-Type": media_type,
        "Content-Length": str(len(content) if size is None else size),
        "Docker-Content-Digest": digest,
        "ETag": f'"{digest}"',
    }
    return Response(content=content, headers=headers)


@router.delete(_PATH, status_code=202)
async def delete_manifest(
    name: str, reference: str, request: Request, context: RegistryContext = Depends(get_context)
) -> Response:
    """By digest: delete the manifest and its tags. By tag: end the tag (kept in history). 202."""
    grant = await authorize(context, request, name, "delete")
    if grant.repository is None:
        raise RegistryError("NAME_UNKNOWN", "repository name not known to registry", detail={"name": name})
    by_digest = is_digest_reference(reference)
    async with context.pool.acquire() as conn, conn.transaction():
        if by_digest:
            ended = await audit.live_tags_pointing_at(conn, grant.repository.id, reference)
            with _immutable_tags_denied():
                await immutability.refuse_immutable(conn, grant.repository.id, ended)
            found = await manifest_store.delete_manifest(
                conn,
                namespace_id=grant.repository.namespace_id,
                repository_id=grant.repository.id,
                digest=reference,
                default_reject_bytes=context.settings.default_system_reject_quota_bytes,
            )
        else:
            targets = await audit.live_tag_targets(conn, grant.repository.id, [reference])
            ended = {tag: digest for tag, digest in targets.items() if digest is not None}
            with _immutable_tags_denied():
                await immutability.refuse_immutable(conn, grant.repository.id, ended)
            found = await manifest_store.end_tag(conn, grant.repository.id, reference)
        await audit.log_tag_deletions(
            conn, request, grant.caller.identity, grant.namespace, grant.name, ended
        )
        performer = grant.caller.identity.name if grant.caller.identity else None
        await tag_lifecycle.announce_deleted_tags(conn, grant.namespace, grant.name, ended, performer)
    if not found:
        raise manifest_unknown(name, reference)
    return Response(status_code=202)
