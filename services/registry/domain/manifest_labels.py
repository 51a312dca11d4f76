"""Labels on manifests: those set through the API, and those a pushed manifest carries.

A pushed manifest's labels are its annotations and, for images, the ``config.Labels`` of its image
config (what ``docker build --label`` and ``LABEL`` write). They are stored with source 'manifest'
and cannot be deleted; labels added through the API have source 'api'. Keys added through the API
follow Quay's rules: its key format, and none of its reserved prefixes.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from typing import Literal

import asyncpg
from pydantic import BaseModel

from services.registry.context import RegistryContext
from services.registry.domain import blobstore, tag_lifecycle
from shared.bounded_json import is_storable_text, loads_bounded
from shared.oci.manifest import ImageManifest, ParsedManifest
from shared.oci.names import LABEL_KEY_PATTERN, is_valid_label_key

LabelMediaType = Literal["text/plain", "application/json"]
INVALID_KEY_MESSAGE = (
    f"Label is of an invalid format or missing please use {LABEL_KEY_PATTERN} format for labels"
)
RESERVED_PREFIX_MESSAGE = "Label has a reserved prefix"
# Quay's DEFAULT_LABEL_KEY_RESERVED_PREFIXES: keys kept for images' own and the registry's use.
RESERVED_KEY_PREFIXES: tuple[str, ...] = (
    "com.docker.",
    "io.docker.",
    "org.dockerproject.",
    "org.opencontainers.",
    "io.cncf.",
    "io.kubernetes.",
    "io.k8s.",
    "io.quay",
    "com.coreos",
    "com.tectonic",
    "internal",
    "quay",
)
# Image configs whose config.Labels are read on push, and the largest read (bigger ones are skipped).
IMAGE_CONFIG_MEDIA_TYPES = frozenset(
    {"application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json"}
)
MAX_CONFIG_BYTES = 1024 * 1024


class InvalidLabelError(ValueError):
    """A label the API refuses; the message is Quay's."""


class ImmutableLabelError(ValueError):
    """A label read from the manifest itself cannot be deleted."""


class Label(BaseModel):
    id: uuid.UUID
    key: str
    value: str
    media_type: LabelMediaType
    source_type: Literal["api", "manifest"]


def check_label_key(key: str) -> None:
    """InvalidLabelError unless the key may be set through the API."""
    if not is_valid_label_key(key):
        raise InvalidLabelError(INVALID_KEY_MESSAGE)
    if key.startswith(RESERVED_KEY_PREFIXES):
        raise InvalidLabelError(RESERVED_PREFIX_MESSAGE)


def inferred_media_type(value: str) -> LabelMediaType:
    """application/json for a JSON object or array, else text/plain (Quay's inference)."""
    if value[:1] + value[-1:] in ("{}", "[]"):
        try:
            loads_bounded(value.encode())
        except ValueError:  # not JSON, or nested too deeply to decode safely
            return "text/plain"
        return "application/json"
    return "text/plain"


_COLUMNS = "l.uuid AS id, l.key, l.value, l.media_type, l.source_type"


async def find_manifest_id(
    db: asyncpg.Pool | asyncpg.Connection, repository_id: int, digest: str
) -> int | None:
    """The id of the repository's manifest with this digest, if any."""
    found = await db.fetchval(
        "SELECT id FROM manifest WHERE repository_id = $1 AND digest = $2", repository_id, digest
    )
    return int(found) if found is not None else None


async def list_labels(
    db: asyncpg.Pool | asyncpg.Connection, manifest_id: int, key_prefix: str | None = None
) -> list[Label]:
    """The manifest's labels in the order they were added, only keys starting with the prefix if given."""
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM label l WHERE l.manifest_id = $1"
        " AND ($2::text IS NULL OR starts_with(l.key, $2)) ORDER BY l.id",
        manifest_id,
        key_prefix,
    )
    return [Label(**dict(row)) for row in rows]


async def find_label(
    db: asyncpg.Pool | asyncpg.Connection, manifest_id: int, label_id: uuid.UUID
) -> Label | None:
    row = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM label l WHERE l.manifest_id = $1 AND l.uuid = $2", manifest_id, label_id
    )
    return Label(**dict(row)) if row else None


async def add_label(
    conn: asyncpg.Connection, manifest_id: int, key: str, value: str, media_type: LabelMediaType | None
) -> Label:
    """Add an API label (InvalidLabelError for a refused key); the media type is inferred when None."""
    check_label_key(key)
    row = await conn.fetchrow(
        "INSERT INTO label AS l (uuid, manifest_id, key, value, media_type, source_type)"
        f" VALUES ($1, $2, $3, $4, $5, 'api') RETURNING {_COLUMNS}",
        uuid.uuid4(),
        manifest_id,
        key,
        value,
        media_type or inferred_media_type(value),
    )
    return Label(**dict(row))


async def delete_label(conn: asyncpg.Connection, manifest_id: int, label_id: uuid.UUID) -> Label | None:
    """Delete an API label; None when there is no such label, ImmutableLabelError for a manifest's own."""
    async with conn.transaction():
        label = await find_label(conn, manifest_id, label_id)
        if label is None:
            return None
        if label.source_type != "api":
            raise ImmutableLabelError("Cannot delete immutable label")
        await conn.execute("DELETE FROM label WHERE manifest_id = $1 AND uuid = $2", manifest_id, label_id)
    return label


def _config_labels_of(config: bytes) -> dict[str, str]:
    """The image config's string labels that can be stored as text (no NUL); none when it is not
    JSON within bounds."""
    try:
        document = loads_bounded(config)
    except ValueError:  # not JSON, or beyond the bounds (JsonBoundsError)
        return {}
    section = document.get("config") if isinstance(document, dict) else None
    labels = section.get("Labels") if isinstance(section, dict) else None
    if not isinstance(labels, dict):
        return {}
    return {
        key: value
        for key, value in labels.items()
        if isinstance(value, str) and is_storable_text(key) and is_storable_text(value)
    }


async def pushed_labels(context: RegistryContext, manifest: ParsedManifest) -> dict[str, str]:
    """The labels a pushed manifest carries: its annotations, then its image config's labels.

    The config is read from storage (only image configs up to MAX_CONFIG_BYTES); an unreadable or
    missing one gives no labels: the push itself decides whether the config is there.
    """
    labels = dict(manifest.annotations or {})
    document = manifest.document
    if not isinstance(document, ImageManifest):
        return labels
    config = document.config
    if config.media_type not in IMAGE_CONFIG_MEDIA_TYPES or config.size > MAX_CONFIG_BYTES:
        return labels
    content = await blobstore.read_small_blob(context.pool, context.locations, config.digest, config.size)
    if content is not None:
        labels |= await asyncio.to_thread(_config_labels_of, content)
    return labels


async def apply_pushed_labels(
    conn: asyncpg.Connection, repository_id: int, manifest_id: int, tags: list[str], labels: Mapping[str, str]
) -> None:
    """Store a pushed manifest's labels (once per key) and let ``quay.expires-after`` expire the pushed tags.

    Run it in the push's transaction, after the tags were pointed at the manifest.
    """
    if not labels:
        return
    keys = list(labels)
    values = [labels[key] for key in keys]
    await conn.execute(
        "INSERT INTO label (uuid, manifest_id, key, value, media_type, source_type)"
        " SELECT gen_random_uuid(), $1, entry.key, entry.value, entry.media_type, 'manifest'"
        " FROM unnest($2::text[], $3::text[], $4::text[]) AS entry (key, value, media_type)"
        " ON CONFLICT (manifest_id, key) WHERE source_type = 'manifest' DO NOTHING",
        manifest_id,
        keys,
        values,
        [inferred_media_type(value) for value in values],
    )
    await tag_lifecycle.expire_pushed_tags(conn, repository_id, manifest_id, tags, labels)
