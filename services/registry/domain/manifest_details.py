"""A stored manifest described as Quay's getRepoManifest answers it: its document, and for images
each layer with what the image config's history says of it (command, author, comment, date)."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any

import asyncpg
from pydantic import BaseModel

from services.registry.context import RegistryContext
from services.registry.domain import blobstore
from services.registry.domain.manifest_labels import IMAGE_CONFIG_MEDIA_TYPES, MAX_CONFIG_BYTES
from shared.oci.manifest import ImageManifest, parse_manifest


class LayerHistory(BaseModel):
    """What an image config's history entry says of the layer it made."""

    command: list[str] | None = None
    comment: str | None = None
    author: str | None = None
    created: datetime | None = None


class ManifestLayer(BaseModel):
    index: int
    blob_digest: str
    media_type: str
    compressed_size: int
    urls: list[str] | None
    history: LayerHistory


class ManifestDetails(BaseModel):
    digest: str
    media_type: str
    size: int
    manifest_data: str
    is_manifest_list: bool
    config_media_type: str | None
    layers: list[ManifestLayer] | None
    created_at: datetime


def _history_entry(entry: Any) -> LayerHistory:
    if not isinstance(entry, dict):
        return LayerHistory()
    created_by = entry.get("created_by")
    created: datetime | None = None
    if isinstance(entry.get("created"), str):
        try:
            created = datetime.fromisoformat(entry["created"])
        except ValueError:
            created = None
    return LayerHistory(
        command=[created_by] if isinstance(created_by, str) else None,
        comment=entry["comment"] if isinstance(entry.get("comment"), str) else None,
        author=entry["author"] if isinstance(entry.get("author"), str) else None,
        created=created,
    )


def layer_histories(config: bytes) -> list[LayerHistory]:
    """The history entries of an image config that made a layer, in layer order ([] if unreadable)."""
    try:
        document = json.loads(config)
    except ValueError:
        return []
    history = document.get("history") if isinstance(document, dict) else None
    if not isinstance(history, list):
        return []
    return [
        _history_entry(entry)
        for entry in history
        if not (isinstance(entry, dict) and entry.get("empty_layer") is True)
    ]


async def _histories(context: RegistryContext, image: ImageManifest) -> list[LayerHistory]:
    config = image.config
    if config.media_type not in IMAGE_CONFIG_MEDIA_TYPES or config.size > MAX_CONFIG_BYTES:
        return []
    content = await blobstore.read_small_blob(context.pool, context.locations, config.digest, config.size)
    return await asyncio.to_thread(layer_histories, content) if content is not None else []


def _layers(image: ImageManifest, histories: list[LayerHistory]) -> list[ManifestLayer]:
    return [
        ManifestLayer(
            index=index,
            blob_digest=layer.digest,
            media_type=layer.media_type,
            compressed_size=layer.size,
            urls=layer.urls,
            history=histories[index] if index < len(histories) else LayerHistory(),
        )
        for index, layer in enumerate(image.layers)
    ]


async def manifest_details(
    context: RegistryContext, conn: asyncpg.Connection, repository_id: int, digest: str
) -> ManifestDetails | None:
    """The repository's manifest with this digest, described; None when there is none."""
    row = await conn.fetchrow(
        "SELECT digest, media_type, size, content, created_at FROM manifest"
        " WHERE repository_id = $1 AND digest = $2",
        repository_id,
        digest,
    )
    if row is None:
        return None
    content: bytes = row["content"]
    parsed = await asyncio.to_thread(parse_manifest, content, row["media_type"])
    image = parsed.document if isinstance(parsed.document, ImageManifest) else None
    return ManifestDetails(
        digest=row["digest"],
        media_type=row["media_type"],
        size=row["size"],
        manifest_data=content.decode("utf-8", errors="replace"),
        is_manifest_list=image is None,
        config_media_type=image.config.media_type if image else None,
        layers=_layers(image, await _histories(context, image)) if image else None,
        created_at=row["created_at"],
    )
