"""Which media types a pushed manifest may use (see shared.config.Settings).

By default every media type is accepted: OCI 1.1 makes artifacts of any type first-class. An
operator may restrict them, with RESTRICT_OCI_ARTIFACT_TYPES (images and the artifact types of
ALLOWED_OCI_ARTIFACT_TYPES) or FEATURE_GENERAL_OCI_SUPPORT false (images only); Quay's
IGNORE_UNKNOWN_MEDIATYPES lifts both.

Under a restriction, images (an OCI or Docker image config with image layers) are always accepted.
Anything else is an artifact: its type (artifactType, else the config's media type) must be a key of
ALLOWED_OCI_ARTIFACT_TYPES, and each layer an image layer or one of the types listed for it.
Extra layer types under an image config (cosign signatures, SBOMs) are listed under the image
config's media type. Indexes are not checked: their children are manifests, checked when pushed.
"""

from __future__ import annotations

from services.registry.v2.errors import RegistryError
from shared.config import Settings
from shared.oci.manifest import ImageManifest, ParsedManifest
from shared.oci.mediatypes import OCI_EMPTY_CONFIG, OCI_IMAGE_CONFIG

IMAGE_CONFIG_TYPES = frozenset({OCI_IMAGE_CONFIG, "application/vnd.docker.container.image.v1+json"})
IMAGE_LAYER_TYPES = frozenset(
    {
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.oci.image.layer.v1.tar+zstd",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
        "application/vnd.docker.image.rootfs.diff.tar",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        # The empty descriptor stands in for the content of an artifact that has none.
        OCI_EMPTY_CONFIG,
    }
)


def _refused(message: str, media_type: str) -> RegistryError:
    return RegistryError("MANIFEST_INVALID", message, detail={"mediaType": media_type[:200]})


def declared_types(document: ImageManifest) -> list[str]:
    """The types a manifest declares itself to be: its artifactType and its config's media type,
    except the empty config that merely accompanies an artifactType."""
    types = [document.artifact_type] if document.artifact_type else []
    if not (document.artifact_type and document.config.media_type == OCI_EMPTY_CONFIG):
        types.append(document.config.media_type)
    return list(dict.fromkeys(types))


def _allowed_artifact_types(settings: Settings) -> dict[str, list[str]] | None:
    """The artifact types a restriction allows, with their extra layer types; None: no restriction."""
    if settings.ignore_unknown_mediatypes:
        return None
    if not settings.feature_general_oci_support:
        return {}
    return settings.allowed_oci_artifact_types if settings.restrict_oci_artifact_types else None


def check_artifact_policy(manifest: ParsedManifest, settings: Settings) -> None:
    """Return when the registry accepts the manifest's media types; MANIFEST_INVALID (400) naming
    the first refused type otherwise."""
    document = manifest.document
    allowed = _allowed_artifact_types(settings)
    if allowed is None or not isinstance(document, ImageManifest):
        return
    types = declared_types(document)
    for kind in types:
        if kind not in IMAGE_CONFIG_TYPES and kind not in allowed:
            raise _refused(f"artifact type {kind} is not allowed on this registry", kind)
    layer_types = IMAGE_LAYER_TYPES.union(*(allowed.get(kind, ()) for kind in types))
    for layer in document.layers:
        if layer.media_type not in layer_types:
            raise _refused(
                f"layer media type {layer.media_type} is not allowed for artifact type {types[0]}",
                layer.media_type,
            )
