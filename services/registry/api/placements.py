"""Where each blob of a manifest is placed, a Quayside extra (Quay shows no placements):
GET /api/v1/repository/{namespace}/{repository}/manifest/{manifestref}/placements.

Placements are operational information (which regions hold a copy, which are still missing one),
so the caller needs admin permission on the repository (repository and organization admins, and
superusers) and the repo:admin scope, as for the repository's settings. Answers
services.registry.domain.placements.ManifestPlacements; 400 for a malformed digest, 404 for a
manifest the repository does not hold.
"""

from __future__ import annotations

from fastapi import Depends

from services.registry.api.common import api_router, bad_request, not_found
from services.registry.api.repositories import REPOSITORY_PATH, RepositoryAccess, administered_repository
from services.registry.context import RegistryContext, get_context
from services.registry.domain.placements import ManifestPlacements, manifest_placements
from shared.oci.digest import is_digest

router = api_router(tags=["Placements"])


@router.get(f"{REPOSITORY_PATH}/manifest/{{manifestref}}/placements", response_model=ManifestPlacements)
async def get_manifest_placements(
    manifestref: str,
    access: RepositoryAccess = Depends(administered_repository),
    context: RegistryContext = Depends(get_context),
) -> ManifestPlacements:
    """Each blob of the manifest (an index: of its child manifests too) with the storage locations
    holding it and the ones its namespace's replication policy requires but that hold none yet."""
    if not is_digest(manifestref):
        raise bad_request(f"invalid manifest digest {manifestref[:200]!r}")
    repository = access.repository
    placements = await manifest_placements(
        access.conn, context.settings, repository.id, repository.namespace_id, manifestref
    )
    if placements is None:
        raise not_found(f"no manifest {manifestref} in this repository")
    return placements
