"""`quayside export`: chosen repositories of a registry, with everything their tags need, into one archive.

For every selected tag: its manifest, an index's children, the referrers of each (signatures,
SBOMs, and their own referrers), the labels added through the API and the tag's expiration. Each
blob is written once however many repositories share it; with `since`, contents an earlier archive
(or its own base) holds are left out and listed as omitted.
"""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import json
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel, ConfigDict

from quayside.transfer import signing
from quayside.transfer.archive import (
    CHECKSUMS,
    CHUNK,
    INDEX,
    LAYOUT_DOCUMENT,
    MAX_METADATA_BYTES,
    METADATA,
    OCI_LAYOUT,
    REF_NAME,
    SIGNATURE,
    ArchiveError,
    ArchiveReader,
    ArchiveWriter,
    BlobRecord,
    ExportMetadata,
    LabelRecord,
    ManifestRecord,
    RepositoryRecord,
    TagRecord,
    archive_id,
    blob_member,
    checksum_document,
    member_digest,
    parse_checksums,
)
from quayside.transfer.client import RegistryClient
from quayside.transfer.progress import TransferProgress
from shared.bounded_json import loads_bounded
from shared.oci.digest import digest_bytes
from shared.oci.manifest import ImageManifest, InvalidManifestError, parse_manifest
from shared.oci.mediatypes import OCI_INDEX
from shared.oci.names import is_valid_repository_name


class Selection(BaseModel):
    """`ns/repo[:tag-pattern]`: a repository and a glob its tags must match (every tag by default)."""

    model_config = ConfigDict(frozen=True)

    repository: str
    pattern: str = "*"

    @classmethod
    def parse(cls, text: str) -> Selection:
        repository, _, pattern = text.partition(":")
        if not is_valid_repository_name(repository):
            raise ValueError(f"invalid repository {repository!r}: expected namespace/name[:tag-pattern]")
        return cls(repository=repository, pattern=pattern or "*")


class ExportSummary(BaseModel):
    archive_id: str
    repositories: int
    tags: int
    blobs_written: int
    bytes_written: int
    omitted: int


class _Collected:
    """What the archive will hold, gathered from the registry before anything is written."""

    def __init__(self) -> None:
        self.manifests: dict[str, tuple[bytes, str]] = {}
        self.blobs: dict[str, tuple[int, str]] = {}  # digest -> (size, a repository holding it)
        self.repositories: list[RepositoryRecord] = []
        self.index: list[dict[str, object]] = []


async def _collect_repository(client: RegistryClient, collected: _Collected, selection: Selection) -> None:
    repository = selection.repository
    details = await client.repository(repository)
    tags = [
        tag
        for tag in await client.live_tags(repository)
        if fnmatch.fnmatchcase(tag["name"], selection.pattern)
    ]
    records: list[ManifestRecord] = []
    seen: set[str] = set()

    async def visit(digest: str) -> str:
        """Record the manifest, its children before it and its referrers after it; its media type."""
        if digest in seen:
            return collected.manifests[digest][1]
        seen.add(digest)
        if digest not in collected.manifests:
            raw, media_type = await client.manifest(repository, digest)
            if digest_bytes(raw) != digest:
                raise ArchiveError(f"{repository}@{digest}: the registry answered other content")
            collected.manifests[digest] = (raw, media_type)
        raw, media_type = collected.manifests[digest]
        try:
            parsed = parse_manifest(raw, media_type)
        except InvalidManifestError as error:
            raise ArchiveError(f"{repository}@{digest}: {error}") from error
        for child in parsed.child_digests:
            await visit(child)
        if isinstance(parsed.document, ImageManifest):
            sizes = {parsed.document.config.digest: parsed.document.config.size}
            sizes.update((layer.digest, layer.size) for layer in parsed.document.layers)
            for blob in parsed.blob_digests:
                collected.blobs.setdefault(blob, (sizes[blob], repository))
        labels = [
            LabelRecord(key=label["key"], value=label["value"], media_type=label.get("media_type"))
            for label in await client.labels(repository, digest)
            if label.get("source_type") == "api"
        ]
        records.append(ManifestRecord(digest=digest, media_type=parsed.media_type, labels=labels))
        for referrer in await client.referrers(repository, digest):
            await visit(str(referrer["digest"]))
        return parsed.media_type

    tag_records: list[TagRecord] = []
    for tag in tags:
        digest = str(tag["manifest_digest"])
        media_type = await visit(digest)
        tag_records.append(TagRecord(name=tag["name"], digest=digest, expiration=tag.get("end_ts")))
        collected.index.append(
            {
                "mediaType": media_type,
                "digest": digest,
                "size": len(collected.manifests[digest][0]),
                "annotations": {REF_NAME: f"{repository}:{tag['name']}"},
            }
        )
    namespace, _, name = repository.partition("/")
    collected.repositories.append(
        RepositoryRecord(
            namespace=namespace,
            name=name,
            visibility="public" if details.get("is_public") else "private",
            tags=tag_records,
            manifests=records,
        )
    )


def _previous_contents(path: Path) -> tuple[str, set[str]]:
    """The id of an earlier archive and the digests it holds or had omitted (held by its base)."""
    reader = ArchiveReader(path)
    try:
        checksums = reader.read_small(CHECKSUMS, MAX_METADATA_BYTES)
        held = {digest for name in parse_checksums(checksums) if (digest := member_digest(name))}
        metadata = ExportMetadata.model_validate(
            loads_bounded(reader.read_small(METADATA, MAX_METADATA_BYTES))
        )
    finally:
        reader.close()
    return archive_id(checksums), held | set(metadata.omitted)


async def _write_blob(
    client: RegistryClient,
    writer: ArchiveWriter,
    digest: str,
    size: int,
    repository: str,
    progress: TransferProgress,
) -> None:
    """Stream one blob from the registry into the archive, checking its digest and size on the way."""
    name = blob_member(digest)
    hasher = hashlib.sha256()
    await asyncio.to_thread(writer.start_member, name, size)
    written = 0
    pending: asyncio.Future[None] | None = None
    async for chunk in client.blob_chunks(repository, digest, CHUNK):
        written += len(chunk)
        if written > size:
            break
        if pending is not None:
            await pending
        pending = asyncio.ensure_future(asyncio.to_thread(writer.write, chunk, hasher))
        progress.advance_bytes(len(chunk))
    if pending is not None:
        await pending
    if written != size or f"sha256:{hasher.hexdigest()}" != digest:
        raise ArchiveError(
            f"{repository}: blob {digest} arrived with other content or size ({written} bytes)"
        )
    await asyncio.to_thread(writer.end_member, name, size, hasher)
    progress.blob_done()


def _open_partial(output: Path) -> IO[bytes]:
    return output.with_name(output.name + ".partial").open("wb")


async def export_archive(
    client: RegistryClient,
    output: Path,
    *,
    selections: Sequence[Selection] = (),
    namespaces: Sequence[str] = (),
    since: Path | None = None,
    sign_key: Ed25519PrivateKey | None = None,
    show_progress: bool = True,
) -> ExportSummary:
    """Write the archive to `output` (through OUTPUT.partial, renamed once complete)."""
    chosen = list(selections)
    for namespace in namespaces:
        for entry in await client.repositories(namespace):
            chosen.append(Selection(repository=f"{entry['namespace']}/{entry['name']}"))
    if not chosen:
        raise ValueError("nothing to export: give --repository or --namespace")
    collected = _Collected()
    for selection in dict.fromkeys(chosen):
        await _collect_repository(client, collected, selection)

    base: str | None = None
    available: set[str] = set()
    if since is not None:
        base, available = await asyncio.to_thread(_previous_contents, since)
    blobs = {digest: entry for digest, entry in collected.blobs.items() if digest not in available}
    manifests = {digest: entry for digest, entry in collected.manifests.items() if digest not in available}
    omitted = sorted((set(collected.blobs) | set(collected.manifests)) - set(blobs) - set(manifests))
    metadata = ExportMetadata(
        created_at=datetime.now(UTC),
        source=client.url,
        base=base,
        repositories=collected.repositories,
        blobs=[BlobRecord(digest=digest, size=size) for digest, (size, _) in collected.blobs.items()],
        omitted=omitted,
    )
    total = sum(size for size, _ in blobs.values()) + sum(len(raw) for raw, _ in manifests.values())

    stream = await asyncio.to_thread(_open_partial, output)
    writer = ArchiveWriter(stream)
    try:
        with TransferProgress(
            "export", total_bytes=total, total_blobs=len(blobs) + len(manifests), enabled=show_progress
        ) as progress:
            await asyncio.to_thread(writer.add_bytes, OCI_LAYOUT, LAYOUT_DOCUMENT)
            for digest, (size, repository) in blobs.items():
                await _write_blob(client, writer, digest, size, repository, progress)
            for digest, (raw, _) in manifests.items():
                await asyncio.to_thread(writer.add_bytes, blob_member(digest), raw)
                progress.advance_bytes(len(raw))
                progress.blob_done()
            index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": collected.index}
            await asyncio.to_thread(writer.add_bytes, INDEX, json.dumps(index, indent=1).encode())
            await asyncio.to_thread(writer.add_bytes, METADATA, metadata.model_dump_json(indent=1).encode())
            checksums = checksum_document(writer.checksums)
            await asyncio.to_thread(writer.add_bytes, CHECKSUMS, checksums)
            if sign_key is not None:
                await asyncio.to_thread(writer.add_bytes, SIGNATURE, signing.sign(sign_key, checksums))
            await asyncio.to_thread(writer.finish)
    except BaseException:
        await asyncio.to_thread(stream.close)
        await asyncio.to_thread(Path(stream.name).unlink, missing_ok=True)
        raise
    await asyncio.to_thread(stream.close)
    await asyncio.to_thread(os.replace, stream.name, output)
    return ExportSummary(
        archive_id=archive_id(checksums),
        repositories=len(collected.repositories),
        tags=sum(len(record.tags) for record in collected.repositories),
        blobs_written=len(blobs) + len(manifests),
        bytes_written=total,
        omitted=len(omitted),
    )
