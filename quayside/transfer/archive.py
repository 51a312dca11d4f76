"""The archive: an OCI image layout in a tar, plus Quayside's metadata and a checksum list.

Members, in this order::

    oci-layout
    blobs/sha256/<hex>      every blob and manifest, once
    index.json              one entry per exported tag, named "<namespace>/<repository>:<tag>"
    quayside-export.json    ExportMetadata
    checksums.sha256        "<sha256>  <member>" for every member above (sha256sum -c reads it)
    checksums.sha256.sig    optional: base64 Ed25519 signature of checksums.sha256

Blob contents are streamed: the writer gets chunks, the reader hands out a file object per member.
Every function doing file I/O is blocking: async callers run it through asyncio.to_thread.
"""

from __future__ import annotations

import hashlib
import tarfile
import time
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import IO, Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.oci.digest import is_digest
from shared.oci.names import is_valid_repository_name, is_valid_tag

OCI_LAYOUT = "oci-layout"
INDEX = "index.json"
METADATA = "quayside-export.json"
CHECKSUMS = "checksums.sha256"
SIGNATURE = "checksums.sha256.sig"
BLOBS_PREFIX = "blobs/sha256/"
REF_NAME = "org.opencontainers.image.ref.name"
FORMAT: Literal["quayside-export/1"] = "quayside-export/1"
LAYOUT_DOCUMENT = b'{"imageLayoutVersion":"1.0.0"}'
CHUNK = 1024 * 1024
_BLOCK = 512
# Bounds on the small members an importer reads whole (the archive is untrusted input).
MAX_METADATA_BYTES = 256 * 1024 * 1024
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_LABEL_VALUE = 65536


class ArchiveError(Exception):
    """The archive is unreadable, incomplete or tampered with; the message says what and where."""


def blob_member(digest: str) -> str:
    return BLOBS_PREFIX + digest.removeprefix("sha256:")


def member_digest(name: str) -> str | None:
    """The digest a blobs/sha256/ member holds; None for the other members."""
    if not name.startswith(BLOBS_PREFIX):
        return None
    digest = "sha256:" + name.removeprefix(BLOBS_PREFIX)
    return digest if is_digest(digest) else None


def _digest(value: str) -> str:
    if not is_digest(value) or not value.startswith("sha256:"):
        raise ValueError(f"not a sha256 digest: {value[:100]!r}")
    return value


Sha256Digest = Annotated[str, AfterValidator(_digest)]


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class LabelRecord(_Record):
    """A label added through Quay's API (labels from the image config come back with the push)."""

    key: str = Field(min_length=1, max_length=255)
    value: str = Field(max_length=MAX_LABEL_VALUE)
    media_type: Literal["text/plain", "application/json"] | None = None


class ManifestRecord(_Record):
    """A manifest of a repository: a tagged one, an index child or a referrer."""

    digest: Sha256Digest
    media_type: str = Field(min_length=1, max_length=255)
    labels: list[LabelRecord] = Field(default_factory=list, max_length=10_000)


class TagRecord(_Record):
    name: str
    digest: Sha256Digest
    expiration: int | None = Field(default=None, ge=0, le=253_402_300_799, description="Unix seconds")

    @field_validator("name")
    @classmethod
    def _valid_tag(cls, value: str) -> str:
        if not is_valid_tag(value):
            raise ValueError(f"invalid tag {value[:200]!r}")
        return value


class RepositoryRecord(_Record):
    namespace: str
    name: str
    visibility: Literal["public", "private"] = "private"
    tags: list[TagRecord] = Field(max_length=1_000_000)
    manifests: list[ManifestRecord] = Field(max_length=1_000_000, description="Children and subjects first")

    @model_validator(mode="after")
    def _valid_name(self) -> RepositoryRecord:
        if not is_valid_repository_name(self.full_name):
            raise ValueError(f"invalid repository name {self.full_name[:300]!r}")
        return self

    @property
    def full_name(self) -> str:
        return f"{self.namespace}/{self.name}"


class BlobRecord(_Record):
    digest: Sha256Digest
    size: int = Field(ge=0, le=2**63 - 1)


class ExportMetadata(_Record):
    """quayside-export.json: what the archive holds and how it was made."""

    format: Literal["quayside-export/1"] = FORMAT
    created_at: datetime
    source: str = Field(max_length=2000, description="The registry exported from")
    base: str | None = Field(
        default=None, description="Incremental archives: the id of the archive given to --since"
    )
    repositories: list[RepositoryRecord] = Field(max_length=100_000)
    blobs: list[BlobRecord] = Field(
        max_length=10_000_000, description="Layers and configs (not manifests), each once"
    )
    omitted: list[Sha256Digest] = Field(
        default_factory=list,
        max_length=10_000_000,
        description="Contents (blobs and manifests) left out because an earlier archive holds them",
    )


def archive_id(checksums: bytes) -> str:
    """An archive's identity: the sha256 of its checksum list, which covers every other member."""
    return "sha256:" + hashlib.sha256(checksums).hexdigest()


class ArchiveWriter:
    """Writes tar members one after another to a file; `finish` ends the tar."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._mtime = int(time.time())
        self.checksums: list[tuple[str, str]] = []

    def start_member(self, name: str, size: int) -> None:
        info = tarfile.TarInfo(name)
        info.size = size
        info.mode = 0o644
        info.mtime = self._mtime
        self._stream.write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))

    def write(self, chunk: bytes, hasher: hashlib._Hash) -> None:
        self._stream.write(chunk)
        hasher.update(chunk)

    def end_member(self, name: str, size: int, hasher: hashlib._Hash) -> None:
        remainder = size % _BLOCK
        if remainder:
            self._stream.write(b"\0" * (_BLOCK - remainder))
        self.checksums.append((hasher.hexdigest(), name))

    def add_bytes(self, name: str, data: bytes) -> str:
        """Write a whole member; its sha256 hex."""
        hasher = hashlib.sha256()
        self.start_member(name, len(data))
        self.write(data, hasher)
        self.end_member(name, len(data), hasher)
        return hasher.hexdigest()

    def finish(self) -> None:
        self._stream.write(b"\0" * (2 * _BLOCK))
        self._stream.flush()


def checksum_document(entries: Iterable[tuple[str, str]]) -> bytes:
    return "".join(f"{hexdigest}  {name}\n" for hexdigest, name in entries).encode()


def parse_checksums(document: bytes) -> dict[str, str]:
    """member name → sha256 hex, from a sha256sum-style list; ArchiveError when malformed."""
    entries: dict[str, str] = {}
    try:
        text = document.decode("ascii")
    except UnicodeDecodeError as error:
        raise ArchiveError(f"{CHECKSUMS} is not ASCII text") from error
    for number, line in enumerate(text.splitlines(), start=1):
        hexdigest, separator, name = line.partition("  ")
        if not separator or len(hexdigest) != 64 or not is_digest(f"sha256:{hexdigest}") or not name:
            raise ArchiveError(f"{CHECKSUMS} line {number} is not '<sha256>  <member>'")
        if name in entries:
            raise ArchiveError(f"{CHECKSUMS} lists {name} twice")
        entries[name] = hexdigest
    return entries


class ArchiveReader:
    """An archive opened for reading: its members' headers indexed once, contents read on demand."""

    def __init__(self, path: Path) -> None:
        try:
            self._tar = tarfile.open(path, mode="r:")  # noqa: SIM115 - closed by close()
            self.members = {member.name: member for member in self._tar.getmembers() if member.isfile()}
        except (tarfile.TarError, OSError) as error:
            raise ArchiveError(f"{path} is not a readable tar archive: {error}") from error

    def close(self) -> None:
        self._tar.close()

    def has(self, name: str) -> bool:
        return name in self.members

    def size(self, name: str) -> int:
        return self.members[name].size

    def open(self, name: str) -> IO[bytes]:
        member = self.members.get(name)
        if member is None:
            raise ArchiveError(f"the archive has no member {name}")
        stream = self._tar.extractfile(member)
        if stream is None:
            raise ArchiveError(f"{name} in the archive is not a regular file")
        return stream

    def read_small(self, name: str, limit: int) -> bytes:
        """A member's whole content, refused when larger than `limit` bytes."""
        if name in self.members and self.size(name) > limit:
            raise ArchiveError(f"{name} is larger than {limit} bytes")
        with self.open(name) as stream:
            return stream.read(limit + 1)
