"""The conformance suite's test content (its setup.go), built the same way: a unique image config and
manifest per workflow over one gzip layer, a manifest without layers, two small blobs (one pushed in
two chunks), and the referrers of the discovery workflow: artifacts of two types unknown to any
registry (as config media type, and as artifactType over the empty config), an index artifact, and
an artifact whose subject is never pushed.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import os
import tarfile
from dataclasses import dataclass

from shared.oci.digest import digest_bytes
from shared.oci.mediatypes import OCI_EMPTY_CONFIG, OCI_IMAGE_CONFIG, OCI_INDEX, OCI_MANIFEST
from tests.support.oci import LAYER_TYPE

# Types no registry knows: OCI 1.1 registries must take them.
ARTIFACT_TYPE_A = "application/vnd.quayside.conformance.peanut-butter-bagel"
ARTIFACT_TYPE_B = "application/vnd.quayside.conformance.strawberry-jam-croissant"
ARTIFACT_TYPE_INDEX = "application/vnd.quayside.conformance.food-stand"
ANNOTATION_KEY = "org.opencontainers.conformance.test"
TEST_TAG = "tagtest0"
EMPTY_LAYER_TAG = "emptylayer"
NONEXISTENT_MANIFEST = ".INVALID_MANIFEST_NAME"
INVALID_MANIFEST = b"blablabla"
DUMMY_DIGEST = digest_bytes(b"hello world")
ERROR_CODES = frozenset(
    {
        "BLOB_UNKNOWN",
        "BLOB_UPLOAD_INVALID",
        "BLOB_UPLOAD_UNKNOWN",
        "DIGEST_INVALID",
        "MANIFEST_BLOB_UNKNOWN",
        "MANIFEST_INVALID",
        "MANIFEST_UNKNOWN",
        "MANIFEST_UNVERIFIED",
        "NAME_INVALID",
        "NAME_UNKNOWN",
        "SIZE_INVALID",
        "TAG_INVALID",
        "UNAUTHORIZED",
        "DENIED",
        "UNSUPPORTED",
    }
)
# The workflows use configs[0] (pull) to configs[4] (discovery's subject), each with its manifest.
_CONFIGS = 5


@dataclass(frozen=True)
class Blob:
    content: bytes

    @property
    def digest(self) -> str:
        return digest_bytes(self.content)

    @property
    def length(self) -> str:
        return str(len(self.content))

    def descriptor(self, media_type: str) -> dict[str, object]:
        return {"mediaType": media_type, "size": len(self.content), "digest": self.digest}


def _json(document: dict[str, object]) -> Blob:
    # Indented like Go's json.MarshalIndent: the registry must keep the exact bytes.
    return Blob(json.dumps(document, indent="\t").encode())


def _layer() -> Blob:
    payload = b"you bothered to find out what was in here. Congratulations!\n"
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        entry = tarfile.TarInfo("test.txt")
        entry.size = len(payload)
        tar.addfile(entry, io.BytesIO(payload))
    return Blob(gzip.compress(archive.getvalue(), mtime=0))


def _config() -> Blob:
    # A random author makes each config, hence each manifest, unique.
    author = base64.urlsafe_b64encode(os.urandom(12)).decode()
    return _json(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": []},
            "author": author,
        }
    )


def _config_descriptor(config: Blob) -> dict[str, object]:
    # The suite checks that the embedded data and an unspecified field are accepted.
    return {
        **config.descriptor(OCI_IMAGE_CONFIG),
        "data": base64.b64encode(config.content).decode(),
        "newUnspecifiedField": base64.b64encode(b"hello world").decode(),
    }


def _subject(manifest: Blob) -> dict[str, object]:
    return manifest.descriptor(OCI_MANIFEST)


@dataclass(frozen=True)
class Content:
    """Everything one run of the suite pushes."""

    configs: list[Blob]
    layer: Blob
    manifests: list[Blob]
    empty_layer_manifest: Blob
    blob_a: Blob
    blob_b: Blob
    empty_json: Blob
    ref_blob_a: Blob
    ref_blob_b: Blob
    refs_a_config: Blob
    refs_a_layer: Blob
    refs_b_config: Blob
    refs_b_layer: Blob
    refs_c_layer: Blob
    refs_index: Blob
    annotations: dict[str, str]

    @property
    def blob_b_chunks(self) -> tuple[bytes, bytes]:
        middle = len(self.blob_b.content) // 2 + 1
        return self.blob_b.content[:middle], self.blob_b.content[middle:]

    @property
    def blob_b_ranges(self) -> tuple[str, str]:
        first, second = self.blob_b_chunks
        return f"0-{len(first) - 1}", f"{len(first)}-{len(first) + len(second) - 1}"


def _image_manifest(config: Blob, layers: list[dict[str, object]], *, media_type: bool = True) -> Blob:
    document: dict[str, object] = {"schemaVersion": 2}
    if media_type:
        document["mediaType"] = OCI_MANIFEST
    document |= {"config": _config_descriptor(config), "layers": layers}
    return _json(document)


def _referrer(
    subject: Blob,
    config: dict[str, object],
    layer: dict[str, object],
    annotation: str | None,
    artifact_type: str | None = None,
) -> Blob:
    document: dict[str, object] = {"schemaVersion": 2, "mediaType": OCI_MANIFEST}
    if artifact_type:
        document["artifactType"] = artifact_type
    document |= {"config": config, "subject": _subject(subject), "layers": [layer]}
    if annotation:
        document["annotations"] = {ANNOTATION_KEY: annotation}
    return _json(document)


def build_content() -> Content:
    configs = [_config() for _ in range(_CONFIGS)]
    layer = _layer()
    manifests = [_image_manifest(config, [layer.descriptor(LAYER_TYPE)]) for config in configs]
    empty_json = Blob(b"{}")
    ref_blob_a = Blob(b"NHL Peanut Butter on my NHL bagel")
    ref_blob_b = Blob(b"NBA Strawberry Jam on my NBA croissant")
    subject = manifests[4]
    empty = empty_json.descriptor(OCI_EMPTY_CONFIG)
    refs_a_config = _referrer(subject, ref_blob_a.descriptor(ARTIFACT_TYPE_A), empty, "test config a")
    refs_b_config = _referrer(subject, ref_blob_b.descriptor(ARTIFACT_TYPE_B), empty, "test config b")
    refs_a_layer = _referrer(
        subject, empty, ref_blob_a.descriptor(ARTIFACT_TYPE_A), "test layer a", ARTIFACT_TYPE_A
    )
    refs_b_layer = _referrer(
        subject, empty, ref_blob_b.descriptor(ARTIFACT_TYPE_B), "test layer b", ARTIFACT_TYPE_B
    )
    # The same as B's layer artifact, about a subject that is never pushed.
    refs_c_layer = _referrer(
        manifests[3], empty, ref_blob_b.descriptor(ARTIFACT_TYPE_B), None, ARTIFACT_TYPE_B
    )
    refs_index = _json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "artifactType": ARTIFACT_TYPE_INDEX,
            "manifests": [refs_a_config.descriptor(OCI_MANIFEST), refs_a_layer.descriptor(OCI_MANIFEST)],
            "subject": _subject(subject),
            "annotations": {ANNOTATION_KEY: "test index"},
        }
    )
    annotations = {
        refs_a_config.digest: "test config a",
        refs_b_config.digest: "test config b",
        refs_a_layer.digest: "test layer a",
        refs_b_layer.digest: "test layer b",
        refs_index.digest: "test index",
    }
    return Content(
        configs=configs,
        layer=layer,
        manifests=manifests,
        empty_layer_manifest=_image_manifest(configs[1], [], media_type=False),
        blob_a=Blob(os.urandom(42)),
        blob_b=Blob(os.urandom(42)),
        empty_json=empty_json,
        ref_blob_a=ref_blob_a,
        ref_blob_b=ref_blob_b,
        refs_a_config=refs_a_config,
        refs_a_layer=refs_a_layer,
        refs_b_config=refs_b_config,
        refs_b_layer=refs_b_layer,
        refs_c_layer=refs_c_layer,
        refs_index=refs_index,
        annotations=annotations,
    )
