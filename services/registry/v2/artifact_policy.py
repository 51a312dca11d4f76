"""Which media types a pushed manifest may use: Quay's FEATURE_GENERAL_OCI_SUPPORT,
ALLOWED_OCI_ARTIFACT_TYPES and IGNORE_UNKNOWN_MEDIATYPES (see shared.config.Settings).

Images (an OCI or Docker image config with image layers) are always accepted. Anything else is an
artifact: its type (artifactType, else the config's media type) must be a key of
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


def check_artifact_policy(manifest: ParsedManifest, settings: Settings) -> None:
    """Return when the registry accepts the manifest's media types; MANIFEST_INVALID (400) naming
    the first refused type otherwise."""
    document = manifest.document
    if settings.ignore_unknown_mediatypes or not isinstance(document, ImageManifest):
        return
    allowed = settings.allowed_oci_artifact_types if settings.feature_general_oci_support else {}
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
