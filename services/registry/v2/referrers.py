"""GET /v2/<name>/referrers/<digest>: the manifests whose subject is the digest, as an OCI index."""

from __future__ import annotations

import json

from fastapi import APIRouter, Depends, Query, Request, Response

from services.registry.context import RegistryContext, get_context
from services.registry.domain import manifest_store
from services.registry.v2.access import authorize
from services.registry.v2.errors import RegistryError
from shared.oci.digest import is_digest
from shared.oci.mediatypes import OCI_INDEX

router = APIRouter()


def _descriptor(referrer: manifest_store.Referrer) -> dict[str, object]:
    descriptor: dict[str, object] = {
        "mediaType": referrer.media_type,
        "digest": referrer.digest,
        "size": referrer.size,
    }
    if referrer.artifact_type:
        descriptor["artifactType"] = referrer.artifact_type
    if referrer.annotations:
        descriptor["annotations"] = referrer.annotations
    return descriptor


@router.get("/v2/{name:path}/referrers/{digest}")
async def list_referrers(
    name: str,
    digest: str,
    request: Request,
    artifact_type: str | None = Query(default=None, alias="artifactType"),
    context: RegistryContext = Depends(get_context),
) -> Response:
    """An image index of the referrers (empty when there are none or the subject is unknown).

    With ``artifactType``, only referrers of that type, and the ``OCI-Filters-Applied`` header.
    """
    grant = await authorize(context, request, name, "pull")
    assert grant.repository is not None  # authorize answers NAME_UNKNOWN to pulls of unknown repositories
    if not is_digest(digest):
        raise RegistryError("DIGEST_INVALID", "invalid digest", detail={"digest": digest[:200]})
    artifact_type = artifact_type or None
    referrers = await manifest_store.referrers(context.pool, grant.repository.id, digest, artifact_type)
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [_descriptor(r) for r in referrers]}
    headers = {"OCI-Filters-Applied": "artifactType"} if artifact_type else None
    return Response(json.dumps(index).encode(), media_type=OCI_INDEX, headers=headers)
