"""One manifest of a repository, Quay's GET /api/v1/repository/{namespace}/{repository}/manifest/{manifestref}
(getRepoManifest): its document, whether it is a manifest list, its config's media type and its
layers (sizes, media types, and the image config's history of each). Needs read permission."""

from __future__ import annotations

from typing import Any

from fastapi import Depends

from services.registry.api.common import api_router, format_date, not_found
from services.registry.api.repositories import REPOSITORY_PATH, RepositoryAccess, readable_repository
from services.registry.context import RegistryContext, get_context
from services.registry.domain.manifest_details import ManifestDetails, ManifestLayer, manifest_details
from shared.oci.digest import is_digest

router = api_router(tags=["Manifests"])


def layer_view(layer: ManifestLayer) -> dict[str, Any]:
    return {
        "index": layer.index,
        "compressed_size": layer.compressed_size,
        "is_remote": bool(layer.urls),
        "urls": layer.urls,
        "command": layer.history.command,
        "comment": layer.history.comment,
        "author": layer.history.author,
        "blob_digest": layer.blob_digest,
        "created_datetime": format_date(layer.history.created),
        "media_type": layer.media_type,
    }


def manifest_view(details: ManifestDetails) -> dict[str, Any]:
    return {
        "digest": details.digest,
        "is_manifest_list": details.is_manifest_list,
        "manifest_data": details.manifest_data,
        "config_media_type": details.config_media_type,
        "layers": [layer_view(layer) for layer in details.layers] if details.layers is not None else None,
        "media_type": details.media_type,
        "size": details.size,
        "created": format_date(details.created_at),
    }


@router.get(f"{REPOSITORY_PATH}/manifest/{{manifestref}}")
async def get_repository_manifest(
    manifestref: str,
    access: RepositoryAccess = Depends(readable_repository),
    context: RegistryContext = Depends(get_context),
) -> dict[str, Any]:
    """The manifest with this digest (404 for an unknown or malformed one)."""
    if not is_digest(manifestref):
        raise not_found(f"no manifest {manifestref[:200]!r} in this repository")
    details = await manifest_details(context, access.conn, access.repository.id, manifestref)
    if details is None:
        raise not_found(f"no manifest {manifestref} in this repository")
    return manifest_view(details)
