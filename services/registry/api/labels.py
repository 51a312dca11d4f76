"""Manifest labels, Quay's /api/v1/repository/{namespace}/{repository}/manifest/{manifestref}/labels[/{labelid}].

Reading needs read permission; adding and deleting need write permission and a NORMAL repository.
Keys added here follow Quay's format and reserved prefixes (manifest_labels); labels that came with
the pushed manifest cannot be deleted.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import Depends, Query, Response
from fastapi.responses import JSONResponse
from pydantic import Field

from services.registry.api.common import ApiModel, api_router, bad_request, not_found
from services.registry.api.repositories import (
    REPOSITORY_PATH,
    RepositoryAccess,
    readable_repository,
    writable_repository,
)
from services.registry.domain import manifest_labels
from shared.oci.digest import is_digest

router = api_router(tags=["Manifest labels"])

_LABELS_PATH = f"{REPOSITORY_PATH}/manifest/{{manifestref}}/labels"


class NewLabel(ApiModel):
    key: str = Field(max_length=1024, description="Lowercase letters, digits, '.' and '-'")
    value: str = Field(max_length=65536)
    media_type: manifest_labels.LabelMediaType | None = Field(
        default=None, description="text/plain or application/json; inferred from the value when null"
    )


def label_view(label: manifest_labels.Label) -> dict[str, Any]:
    return {
        "id": str(label.id),
        "key": label.key,
        "value": label.value,
        "source_type": label.source_type,
        "media_type": label.media_type,
    }


async def _manifest_id(access: RepositoryAccess, digest: str) -> int:
    if not is_digest(digest):
        raise bad_request(f"invalid manifest digest {digest[:200]!r}")
    manifest_id = await manifest_labels.find_manifest_id(access.conn, access.repository.id, digest)
    if manifest_id is None:
        raise not_found(f"no manifest {digest} in this repository")
    return manifest_id


def _label_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError as error:
        raise not_found(f"no label {text[:100]!r} on this manifest") from error


@router.get(_LABELS_PATH)
async def list_labels(
    manifestref: str,
    key_prefix: str | None = Query(
        default=None, alias="filter", max_length=255, description="Keys starting so"
    ),
    access: RepositoryAccess = Depends(readable_repository),
) -> dict[str, Any]:
    """The manifest's labels, those whose key starts with ``filter`` if given."""
    manifest_id = await _manifest_id(access, manifestref)
    labels = await manifest_labels.list_labels(access.conn, manifest_id, key_prefix)
    return {"labels": [label_view(label) for label in labels]}


@router.post(_LABELS_PATH, status_code=201)
async def add_label(
    manifestref: str, body: NewLabel, access: RepositoryAccess = Depends(writable_repository)
) -> JSONResponse:
    """Add a label; 400 with Quay's message for a key of a bad format or with a reserved prefix."""
    manifest_id = await _manifest_id(access, manifestref)
    access.require_normal_state()
    async with access.conn.transaction():
        try:
            label = await manifest_labels.add_label(
                access.conn, manifest_id, body.key, body.value, body.media_type
            )
        except manifest_labels.InvalidLabelError as error:
            raise bad_request(str(error)) from error
        await access.log(
            "manifest_label_add",
            {
                "id": str(label.id),
                "key": label.key,
                "value": label.value,
                "manifest_digest": manifestref,
                "media_type": label.media_type,
            },
        )
    repository = access.repository
    location = f"/api/v1/repository/{repository.namespace}/{repository.name}/manifest/{manifestref}/labels/{label.id}"
    return JSONResponse({"label": label_view(label)}, status_code=201, headers={"Location": location})


@router.get(f"{_LABELS_PATH}/{{labelid}}")
async def get_label(
    manifestref: str, labelid: str, access: RepositoryAccess = Depends(readable_repository)
) -> dict[str, Any]:
    manifest_id = await _manifest_id(access, manifestref)
    label = await manifest_labels.find_label(access.conn, manifest_id, _label_id(labelid))
    if label is None:
        raise not_found(f"no label {labelid!r} on this manifest")
    return label_view(label)


@router.delete(f"{_LABELS_PATH}/{{labelid}}", status_code=204)
async def delete_label(
    manifestref: str, labelid: str, access: RepositoryAccess = Depends(writable_repository)
) -> Response:
    """Delete a label added through the API (400 for the manifest's own labels)."""
    manifest_id = await _manifest_id(access, manifestref)
    access.require_normal_state()
    async with access.conn.transaction():
        try:
            label = await manifest_labels.delete_label(access.conn, manifest_id, _label_id(labelid))
        except manifest_labels.ImmutableLabelError as error:
            raise bad_request(str(error)) from error
        if label is None:
            raise not_found(f"no label {labelid!r} on this manifest")
        await access.log(
            "manifest_label_delete",
            {"id": labelid, "key": label.key, "value": label.value, "manifest_digest": manifestref},
        )
    return Response(status_code=204)
