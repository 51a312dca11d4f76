"""OCI image layouts on disk (oci-layout, index.json, blobs/), as skopeo's `oci:DIR:tag` reads and writes them.

Every function here does blocking file I/O and hashing: call it from async code through
asyncio.to_thread.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from shared.oci.mediatypes import OCI_IMAGE_CONFIG, OCI_INDEX, OCI_MANIFEST

LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"
_LAYOUT_VERSION = {"imageLayoutVersion": "1.0.0"}
_READ_CHUNK = 1024 * 1024


class Platform(BaseModel):
    model_config = ConfigDict(frozen=True)

    architecture: str
    os: str = "linux"


AMD64 = Platform(architecture="amd64")
ARM64 = Platform(architecture="arm64")


class Descriptor(BaseModel):
    """An OCI content descriptor, serialised with the spec's camelCase names."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    media_type: str = Field(validation_alias="mediaType", serialization_alias="mediaType")
    digest: str
    size: int
    platform: Platform | None = None
    annotations: dict[str, str] | None = None

    def as_json(self) -> dict[str, object]:
        return self.model_dump(by_alias=True, exclude_none=True)


def _sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def random_layer(size: int) -> tuple[bytes, str]:
    """A gzip'd tar holding one file of `size` random bytes; returns (layer bytes, diff_id).

    Random content does not compress, so the layer is about `size` bytes on the wire.
    """
    tar_buffer = io.BytesIO()
    with tarfile.open(fileobj=tar_buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        member = tarfile.TarInfo(f"data-{os.urandom(4).hex()}.bin")
        member.size = size
        member.mode = 0o644
        archive.addfile(member, io.BytesIO(os.urandom(size)))
    tar = tar_buffer.getvalue()
    return gzip.compress(tar, compresslevel=1, mtime=0), _sha256(tar)


class OciLayout:
    """An OCI image layout directory; created (empty) when it does not exist yet."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs_dir = root / "blobs" / "sha256"
        if not (root / "oci-layout").exists():
            self.blobs_dir.mkdir(parents=True, exist_ok=True)
            (root / "oci-layout").write_text(json.dumps(_LAYOUT_VERSION))
            self._write_index([])

    def add_blob(self, data: bytes, media_type: str, *, platform: Platform | None = None) -> Descriptor:
        digest = _sha256(data)
        (self.blobs_dir / digest.removeprefix("sha256:")).write_bytes(data)
        return Descriptor(media_type=media_type, digest=digest, size=len(data), platform=platform)

    def add_image(self, layer_sizes: Sequence[int], platform: Platform = AMD64) -> Descriptor:
        """Write random layers, a config whose rootfs.diff_ids match them, and the image manifest."""
        layers: list[Descriptor] = []
        diff_ids: list[str] = []
        for size in layer_sizes:
            layer, diff_id = random_layer(size)
            layers.append(self.add_blob(layer, LAYER_GZIP))
            diff_ids.append(diff_id)
        config = {
            "architecture": platform.architecture,
            "os": platform.os,
            "config": {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": self.add_blob(json.dumps(config).encode(), OCI_IMAGE_CONFIG).as_json(),
            "layers": [layer.as_json() for layer in layers],
        }
        return self.add_blob(json.dumps(manifest).encode(), OCI_MANIFEST, platform=platform)

    def add_index(self, manifests: Sequence[Descriptor]) -> Descriptor:
        """Write an image index over manifests (which carry their platforms)."""
        index = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [manifest.as_json() for manifest in manifests],
        }
        return self.add_blob(json.dumps(index).encode(), OCI_INDEX)

    def add_multiarch_index(
        self, layer_sizes: Sequence[int], platforms: Sequence[Platform] = (AMD64, ARM64)
    ) -> Descriptor:
        """An index over one random image per platform."""
        return self.add_index([self.add_image(layer_sizes, platform) for platform in platforms])

    def tag(self, descriptor: Descriptor, name: str) -> None:
        """Make `oci:ROOT:name` refer to the descriptor (replacing an earlier entry of that name)."""
        entries = [entry for entry in self.entries() if (entry.annotations or {}).get(REF_NAME) != name]
        named = descriptor.model_copy(update={"platform": None, "annotations": {REF_NAME: name}})
        self._write_index([*entries, named])

    def entries(self) -> list[Descriptor]:
        """The descriptors listed in index.json."""
        index = json.loads((self.root / "index.json").read_text())
        return [Descriptor.model_validate(entry) for entry in index["manifests"]]

    def resolve(self, name: str) -> Descriptor:
        """The descriptor `oci:ROOT:name` refers to; LookupError when no entry has that name."""
        for entry in self.entries():
            if (entry.annotations or {}).get(REF_NAME) == name:
                return entry
        raise LookupError(f"no {name!r} in {self.root}")

    def blob_digests(self) -> set[str]:
        """Digests of every blob in the layout, checked against the bytes stored."""
        digests: set[str] = set()
        for path in self.blobs_dir.iterdir():
            digest = f"sha256:{path.name}"
            if _file_sha256(path) != digest:
                raise ValueError(f"{path} does not hold the content of {digest}")
            digests.add(digest)
        return digests

    def read_blob(self, digest: str) -> bytes:
        return (self.blobs_dir / digest.removeprefix("sha256:")).read_bytes()

    def _write_index(self, manifests: list[Descriptor]) -> None:
        index = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [entry.as_json() for entry in manifests],
        }
        (self.root / "index.json").write_text(json.dumps(index))


def _file_sha256(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_READ_CHUNK):
            hasher.update(chunk)
    return f"sha256:{hasher.hexdigest()}"
