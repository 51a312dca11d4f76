"""`quayside import`: load an archive into a registry, verified, idempotent and resumable.

Order, so that nothing becomes visible unless the whole archive is sound:

1. Offline checks: the signature (with a key), every member against the checksum list and the list
   against the members, the metadata, every manifest (digest, parse) and that every blob a manifest
   needs is in the archive — or, for an incremental archive, already in the target repository.
2. Repositories (and missing namespaces, as organizations) are created.
3. Blobs are uploaded, each hashed while it streams; the last chunk is held back until the digest is
   confirmed, so a corrupt blob is never committed. Blobs the target has (HEAD) are skipped, a blob
   shared by several repositories is uploaded once and mounted into the others.
4. Manifests, children and subjects first; then labels; tags (and their expirations) last.

A re-run skips what an interrupted run finished.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ValidationError

from quayside.transfer import signing
from quayside.transfer.archive import (
    CHECKSUMS,
    CHUNK,
    INDEX,
    MAX_MANIFEST_BYTES,
    MAX_METADATA_BYTES,
    METADATA,
    OCI_LAYOUT,
    SIGNATURE,
    ArchiveError,
    ArchiveReader,
    ExportMetadata,
    ManifestRecord,
    RepositoryRecord,
    blob_member,
    member_digest,
    parse_checksums,
)
from quayside.transfer.client import RegistryClient
from quayside.transfer.progress import TransferProgress
from shared.bounded_json import JsonBoundsError, loads_bounded
from shared.oci.manifest import InvalidManifestError, ParsedManifest, parse_manifest
from shared.oci.names import is_valid_repository_name


class ImportSummary(BaseModel):
    repositories_created: int = 0
    blobs_uploaded: int = 0
    blobs_mounted: int = 0
    blobs_present: int = 0
    bytes_uploaded: int = 0
    manifests_pushed: int = 0
    labels_added: int = 0
    tags_set: int = 0
    tags_expired: list[str] = []


@dataclass
class _Repository:
    """A repository of the archive under its name in the target registry."""

    target: str
    record: RepositoryRecord
    parsed: dict[str, ParsedManifest]  # the manifests the archive holds
    omitted: set[str] = field(default_factory=set)  # contents an earlier archive brought

    @property
    def record_digests(self) -> set[str]:
        return {manifest.digest for manifest in self.record.manifests}

    @property
    def blobs(self) -> list[str]:
        return list(
            dict.fromkeys(blob for manifest in self.parsed.values() for blob in manifest.blob_digests)
        )


@dataclass
class _Plan:
    repositories: list[_Repository]
    blob_sizes: dict[str, int]
    manifests: dict[str, bytes]
    base: str | None


def parse_mapping(pairs: list[str]) -> dict[str, str]:
    """`old=new` namespace mappings; ValueError for a malformed one."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        old, separator, new = pair.partition("=")
        if (
            not separator
            or not is_valid_repository_name(f"{old}/x")
            or not is_valid_repository_name(f"{new}/x")
        ):
            raise ValueError(f"invalid --map-namespace {pair!r}: expected OLD=NEW namespace names")
        mapping[old] = new
    return mapping


def _checked_member(reader: ArchiveReader, expected: Mapping[str, str], name: str, limit: int) -> bytes:
    data = reader.read_small(name, limit)
    if hashlib.sha256(data).hexdigest() != expected.get(name):
        raise ArchiveError(f"{name} does not match its checksum: the archive is corrupt or was altered")
    return data


def _verify_offline(
    reader: ArchiveReader, verify_key: Ed25519PublicKey | None, mapping: Mapping[str, str]
) -> _Plan:
    """Step 1; blocking (reads the archive's small members): run it in a thread."""
    if not reader.has(CHECKSUMS):
        raise ArchiveError(f"the archive has no {CHECKSUMS}: not a Quayside export")
    checksums = reader.read_small(CHECKSUMS, MAX_METADATA_BYTES)
    if verify_key is not None:
        if not reader.has(SIGNATURE):
            raise ArchiveError(f"the archive is not signed ({SIGNATURE} missing) but a key was given")
        signing.verify(verify_key, checksums, reader.read_small(SIGNATURE, 4096))
    expected = parse_checksums(checksums)
    unlisted = sorted(set(reader.members) - set(expected) - {CHECKSUMS, SIGNATURE})
    if unlisted:
        raise ArchiveError(f"the archive holds {unlisted[0]}, which its checksum list does not name")
    absent = sorted(set(expected) - set(reader.members))
    if absent:
        raise ArchiveError(f"the archive lacks {absent[0]}, which its checksum list names (missing blob)")
    for name in (OCI_LAYOUT, INDEX):
        _checked_member(reader, expected, name, MAX_METADATA_BYTES)
    try:
        metadata = ExportMetadata.model_validate(
            loads_bounded(_checked_member(reader, expected, METADATA, MAX_METADATA_BYTES))
        )
    except (ValidationError, JsonBoundsError, ValueError) as error:
        raise ArchiveError(
            f"{METADATA} is not valid export metadata: {str(error).splitlines()[0]}"
        ) from error
    omitted = set(metadata.omitted)
    blob_sizes = {blob.digest: blob.size for blob in metadata.blobs}
    manifests: dict[str, bytes] = {}
    repositories: list[_Repository] = []
    for record in metadata.repositories:
        namespace = mapping.get(record.namespace, record.namespace)
        repository = _Repository(target=f"{namespace}/{record.name}", record=record, parsed={})
        if not is_valid_repository_name(repository.target):
            raise ArchiveError(f"{record.full_name} cannot be imported as {repository.target!r}")
        listed = {manifest.digest for manifest in record.manifests}
        for manifest in record.manifests:
            if not reader.has(blob_member(manifest.digest)) and manifest.digest in omitted:
                repository.omitted.add(manifest.digest)
                continue
            document = _checked_manifest(reader, expected, manifest, manifests)
            repository.parsed[manifest.digest] = document
            for child in document.child_digests:
                if child not in listed:
                    raise ArchiveError(
                        f"{record.full_name}: index {manifest.digest} names {child}, not listed"
                    )
            for blob in document.blob_digests:
                if reader.has(blob_member(blob)):
                    continue
                if blob not in omitted:
                    raise ArchiveError(
                        f"the archive lacks blob {blob}, needed by {record.full_name}@{manifest.digest}"
                    )
                repository.omitted.add(blob)
        for tag in record.tags:
            if tag.digest not in listed:
                raise ArchiveError(
                    f"{record.full_name}:{tag.name} points at {tag.digest}, which is not listed"
                )
        repositories.append(repository)
    for digest, size in blob_sizes.items():
        name = blob_member(digest)
        if reader.has(name) and reader.size(name) != size:
            raise ArchiveError(f"{name} holds {reader.size(name)} bytes, the manifests say {size}")
    for name in reader.members:
        digest = member_digest(name)
        if digest is not None and digest not in manifests:
            _check_blob_content(reader, name, digest)
    return _Plan(repositories=repositories, blob_sizes=blob_sizes, manifests=manifests, base=metadata.base)


def _check_blob_content(reader: ArchiveReader, name: str, digest: str) -> None:
    """Hash a blob member whole before anything is written to the target, so a corrupt archive
    leaves no trace there (no repository, no blob); the upload hashes it again as it streams."""
    hasher = hashlib.sha256()
    with reader.open(name) as stream:
        while chunk := stream.read(CHUNK):
            hasher.update(chunk)
    if f"sha256:{hasher.hexdigest()}" != digest:
        raise ArchiveError(
            f"{name} does not match its digest (it hashes to sha256:{hasher.hexdigest()}):"
            " the archive is corrupt or was altered; nothing was made visible"
        )


def _checked_manifest(
    reader: ArchiveReader,
    expected: Mapping[str, str],
    record: ManifestRecord,
    manifests: dict[str, bytes],
) -> ParsedManifest:
    name = blob_member(record.digest)
    if record.digest not in manifests:
        if not reader.has(name):
            raise ArchiveError(f"the archive lacks manifest {record.digest} (missing blob)")
        manifests[record.digest] = _checked_member(reader, expected, name, MAX_MANIFEST_BYTES)
    raw = manifests[record.digest]
    try:
        parsed = parse_manifest(raw, record.media_type)
    except InvalidManifestError as error:
        raise ArchiveError(f"manifest {record.digest}: {error}") from error
    if parsed.digest != record.digest:
        raise ArchiveError(f"manifest {record.digest} holds other content ({parsed.digest})")
    return parsed


async def _check_omitted(client: RegistryClient, plan: _Plan) -> dict[tuple[str, str], str]:
    """Where the target holds what an incremental archive left out: (repository, blob) → a repository
    to mount it from (its own when it has it). ArchiveError naming the base archive otherwise."""
    sources: dict[tuple[str, str], str] = {}
    for repository in plan.repositories:
        for digest in sorted(repository.omitted):
            if digest in repository.record_digests:
                if await client.has_manifest(repository.target, digest):
                    continue
            else:
                holder = await _holder(client, plan, repository.target, digest)
                if holder is not None:
                    sources[(repository.target, digest)] = holder
                    continue
            raise ArchiveError(
                f"{digest} ({repository.target}) is in neither this incremental archive nor the registry:"
                f" import the archive it builds on ({plan.base}) first"
            )
    return sources


async def _holder(client: RegistryClient, plan: _Plan, preferred: str, digest: str) -> str | None:
    for candidate in dict.fromkeys([preferred, *(repository.target for repository in plan.repositories)]):
        if await client.has_blob(candidate, digest):
            return candidate
    return None


def _read_hashed(stream: IO[bytes], hasher: hashlib._Hash) -> bytes:
    chunk = stream.read(CHUNK)
    hasher.update(chunk)
    return chunk


async def _verified_chunks(
    reader: ArchiveReader, digest: str, progress: TransferProgress
) -> AsyncIterator[bytes]:
    """The blob's content, the next chunk read (and hashed) while the current one is sent; the last
    chunk is yielded only once the whole content hashed to `digest` (ArchiveError otherwise), so an
    upload of corrupt content never completes."""
    name = blob_member(digest)
    stream = await asyncio.to_thread(reader.open, name)
    hasher = hashlib.sha256()

    def mismatch() -> ArchiveError:
        return ArchiveError(
            f"{name} does not match its digest (it hashes to sha256:{hasher.hexdigest()}):"
            " the archive is corrupt or was altered; nothing was made visible"
        )

    held = await asyncio.to_thread(_read_hashed, stream, hasher)
    following = await asyncio.to_thread(_read_hashed, stream, hasher) if held else b""
    if not held and f"sha256:{hasher.hexdigest()}" != digest:
        raise mismatch()
    while held:
        if not following and f"sha256:{hasher.hexdigest()}" != digest:
            raise mismatch()
        ahead = asyncio.ensure_future(asyncio.to_thread(_read_hashed, stream, hasher)) if following else None
        progress.advance_bytes(len(held))
        yield held
        held, following = following, (await ahead if ahead is not None else b"")


async def _upload(
    client: RegistryClient,
    reader: ArchiveReader,
    repository: str,
    digest: str,
    size: int,
    progress: TransferProgress,
) -> None:
    location = await client.start_upload(repository)
    try:
        await client.finish_upload(location, digest, size, _verified_chunks(reader, digest, progress))
    except BaseException:
        await asyncio.shield(client.cancel_upload(location))
        raise


def _push_order(repository: _Repository) -> list[str]:
    """The archive's manifests of a repository, every index after its children and every referrer
    after its subject."""
    ordered: list[str] = []
    placed: set[str] = set()

    def place(digest: str, path: frozenset[str]) -> None:
        if digest in placed or digest not in repository.parsed:
            return
        if digest in path:
            raise ArchiveError(f"{repository.record.full_name}: manifests refer to each other in a cycle")
        document = repository.parsed[digest]
        for before in [*document.child_digests, *filter(None, [document.subject_digest])]:
            place(before, path | {digest})
        placed.add(digest)
        ordered.append(digest)

    for digest in repository.parsed:
        place(digest, frozenset())
    return ordered


async def import_archive(
    client: RegistryClient,
    archive: Path,
    *,
    mapping: Mapping[str, str] | None = None,
    verify_key: Ed25519PublicKey | None = None,
    show_progress: bool = True,
) -> ImportSummary:
    reader = await asyncio.to_thread(ArchiveReader, archive)
    try:
        return await _import(client, reader, mapping or {}, verify_key, show_progress)
    finally:
        await asyncio.to_thread(reader.close)


async def _import(
    client: RegistryClient,
    reader: ArchiveReader,
    mapping: Mapping[str, str],
    verify_key: Ed25519PublicKey | None,
    show_progress: bool,
) -> ImportSummary:
    plan = await asyncio.to_thread(_verify_offline, reader, verify_key, mapping)
    summary = ImportSummary()
    mount_sources = await _check_omitted(client, plan) if plan.base is not None else {}

    for repository in plan.repositories:
        namespace, _, name = repository.target.partition("/")
        if await client.ensure_repository(namespace, name, repository.record.visibility):
            summary.repositories_created += 1

    work = [(repository.target, blob) for repository in plan.repositories for blob in repository.blobs]

    def archived_size(blob: str) -> int:
        return reader.size(blob_member(blob)) if reader.has(blob_member(blob)) else 0

    total = sum(archived_size(blob) for _, blob in work)
    placed: dict[str, str] = {}  # blob -> a target repository holding it
    with TransferProgress(
        "import", total_bytes=total, total_blobs=len(work), enabled=show_progress
    ) as progress:
        for target, blob in work:
            size = archived_size(blob)
            source = placed.get(blob) or mount_sources.get((target, blob))
            if source == target or await client.has_blob(target, blob):
                summary.blobs_present += 1
                progress.blob_done(skipped_bytes=size)
            elif source is not None and await client.mount_blob(target, blob, source):
                summary.blobs_mounted += 1
                progress.blob_done(skipped_bytes=size)
            else:
                await _upload(client, reader, target, blob, size, progress)
                summary.blobs_uploaded += 1
                summary.bytes_uploaded += size
                progress.blob_done()
            placed.setdefault(blob, target)

    for repository in plan.repositories:
        for digest in _push_order(repository):
            if not await client.has_manifest(repository.target, digest):
                media_type = repository.parsed[digest].media_type
                await client.put_manifest(repository.target, digest, plan.manifests[digest], media_type)
                summary.manifests_pushed += 1
        for manifest in repository.record.manifests:
            if not manifest.labels:
                continue
            present = {
                (label["key"], label["value"])
                for label in await client.labels(repository.target, manifest.digest)
            }
            for label in manifest.labels:
                if (label.key, label.value) not in present:
                    await client.add_label(
                        repository.target, manifest.digest, label.model_dump(exclude_none=True)
                    )
                    summary.labels_added += 1

    now = time.time()
    for repository in plan.repositories:
        for tag in repository.record.tags:
            if tag.expiration is not None and tag.expiration <= now:
                summary.tags_expired.append(f"{repository.target}:{tag.name}")
                continue
            await client.set_tag(repository.target, tag.name, tag.digest, tag.expiration)
            summary.tags_set += 1
    return summary
