"""Parsing of the manifests the registry understands: OCI image manifest and index, Docker schema 2
manifest and manifest list.

``parse_manifest`` is the one entry point: it decides the media type, validates the document and
answers what the registry must know about it (blobs it needs, child manifests, subject, artifact
type). Unknown properties are ignored, as the image spec requires of readers.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.bounded_json import INT64_MAX, JsonBoundsError, is_storable_text, loads_bounded
from shared.oci.digest import digest_bytes, parse_digest
from shared.oci.mediatypes import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    INDEX_MANIFESTS,
    MANIFEST_MEDIA_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
)

# Layers that registries are not expected to hold: their descriptors carry download URLs.
NON_DISTRIBUTABLE_LAYER_PREFIXES = (
    "application/vnd.docker.image.rootfs.foreign.diff.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
)
# Media types whose documents must declare their own mediaType (the Docker formats require it).
_MEDIA_TYPE_REQUIRED = frozenset({DOCKER_MANIFEST, DOCKER_MANIFEST_LIST})
# Content-Type values that say nothing about the manifest format.
_GENERIC_CONTENT_TYPES = frozenset({"", "application/json", "application/octet-stream"})


class InvalidManifestError(ValueError):
    """The document is not a manifest the registry accepts; the message says why."""


_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


def _without_control_characters(value: str) -> str:
    # Media types are RFC 6838 names: control characters (NUL among them) have no place in one.
    if _CONTROL_CHARACTERS.search(value):
        raise ValueError("a media type cannot contain control characters")
    return value


MediaType = Annotated[str, Field(min_length=1), AfterValidator(_without_control_characters)]


class Descriptor(BaseModel):
    """An OCI content descriptor (image-spec descriptor.md)."""

    model_config = ConfigDict(strict=True, frozen=True, populate_by_name=True)

    media_type: MediaType = Field(alias="mediaType")
    digest: str
    size: int = Field(ge=0, le=INT64_MAX)
    urls: list[str] | None = None
    annotations: dict[str, str] | None = None
    artifact_type: MediaType | None = Field(default=None, alias="artifactType")

    @field_validator("digest")
    @classmethod
    def _valid_digest(cls, value: str) -> str:
        parse_digest(value)
        return value

    @property
    def is_non_distributable(self) -> bool:
        """A foreign layer the registry need not hold: fetched by clients from its URLs."""
        return bool(self.urls) and self.media_type.startswith(NON_DISTRIBUTABLE_LAYER_PREFIXES)


class _Document(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, populate_by_name=True)

    schema_version: Literal[2] = Field(alias="schemaVersion")
    media_type: MediaType | None = Field(default=None, alias="mediaType")
    artifact_type: MediaType | None = Field(default=None, alias="artifactType")
    subject: Descriptor | None = None
    annotations: dict[str, str] | None = None

    @field_validator("schema_version", mode="before")
    @classmethod
    def _integer_two(cls, value: Any) -> Any:
        # Literal[2] alone also takes 2.0; the image spec wants the integer.
        if type(value) is not int:
            raise ValueError("schemaVersion must be the integer 2")
        return value


class ImageManifest(_Document):
    """OCI image manifest or Docker schema 2 manifest: a config and layers."""

    config: Descriptor
    layers: list[Descriptor]


class ImageIndex(_Document):
    """OCI image index or Docker manifest list: a list of manifests."""

    manifests: list[Descriptor]


class ParsedManifest(BaseModel):
    """A validated manifest and the facts the registry records about it."""

    model_config = ConfigDict(frozen=True)

    media_type: str
    digest: str
    size: int
    document: ImageManifest | ImageIndex

    @property
    def blob_digests(self) -> list[str]:
        """Blobs the repository must hold: config and layers, except non-distributable layers."""
        if not isinstance(self.document, ImageManifest):
            return []
        layers = [layer.digest for layer in self.document.layers if not layer.is_non_distributable]
        return list(dict.fromkeys([self.document.config.digest, *layers]))

    @property
    def child_digests(self) -> list[str]:
        """Manifests an index refers to (they must exist in the repository)."""
        if not isinstance(self.document, ImageIndex):
            return []
        return list(dict.fromkeys(child.digest for child in self.document.manifests))

    @property
    def config_digest(self) -> str | None:
        return self.document.config.digest if isinstance(self.document, ImageManifest) else None

    @property
    def subject_digest(self) -> str | None:
        return self.document.subject.digest if self.document.subject else None

    @property
    def artifact_type(self) -> str | None:
        """artifactType, else the config's media type for OCI image manifests (as the referrers API wants)."""
        if self.document.artifact_type:
            return self.document.artifact_type
        if self.media_type == OCI_MANIFEST and isinstance(self.document, ImageManifest):
            return self.document.config.media_type
        return None

    @property
    def annotations(self) -> dict[str, str] | None:
        """The annotations that can be stored as text (labels, the referrers list): the spec allows
        any string, but PostgreSQL takes no NUL. The raw manifest keeps them all."""
        if self.document.annotations is None:
            return None
        return {
            key: value
            for key, value in self.document.annotations.items()
            if is_storable_text(key) and is_storable_text(value)
        }


def _content_type_essence(content_type: str | None) -> str:
    """'application/x+json; charset=utf-8' -> 'application/x+json'."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def _decode(body: bytes) -> dict[str, object]:
    try:
        document = loads_bounded(body)
    except JsonBoundsError as error:
        raise InvalidManifestError(f"manifest refused: {error}") from error
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidManifestError(f"manifest is not valid JSON: {error}") from error
    if not isinstance(document, dict):
        raise InvalidManifestError("manifest must be a JSON object")
    return document


def resolve_media_type(content_type: str | None, document: dict[str, object]) -> str:
    """The manifest's media type from the Content-Type header and the document's mediaType.

    A specific Content-Type wins but must agree with the document's mediaType when both are set.
    Without either, OCI documents are told apart by shape (mediaType is optional in OCI).
    """
    declared = document.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise InvalidManifestError("mediaType must be a string")
    header = _content_type_essence(content_type)
    if header not in _GENERIC_CONTENT_TYPES:
        if declared is not None and declared != header:
            raise InvalidManifestError(
                f"Content-Type {header!r} does not match the manifest's mediaType {declared!r}"
            )
        media_type = header
    else:
        media_type = declared or (OCI_INDEX if "manifests" in document else OCI_MANIFEST)
    if media_type not in MANIFEST_MEDIA_TYPES:
        raise InvalidManifestError(f"unsupported manifest media type {media_type!r}")
    if media_type in _MEDIA_TYPE_REQUIRED and declared is None:
        raise InvalidManifestError(f"a {media_type} manifest must declare its mediaType")
    return media_type


def _validation_summary(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in item['loc']) or 'manifest'}: {item['msg']}"
        for item in error.errors(include_url=False)
    )


def parse_manifest(body: bytes, content_type: str | None, digest_algorithm: str = "sha256") -> ParsedManifest:
    """Validate a manifest as pushed; InvalidManifestError says what is wrong.

    CPU-bound for large documents (JSON decoding, hashing): call it off the event loop.
    """
    document = _decode(body)
    media_type = resolve_media_type(content_type, document)
    model = ImageIndex if media_type in INDEX_MANIFESTS else ImageManifest
    try:
        parsed = model.model_validate(document)
    except ValidationError as error:
        raise InvalidManifestError(f"invalid {media_type} manifest: {_validation_summary(error)}") from error
    return ParsedManifest(
        media_type=media_type, digest=digest_bytes(body, digest_algorithm), size=len(body), document=parsed
    )
